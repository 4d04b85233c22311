# Concert ticketing service. `make run` and `make test` need only Go (and, for
# `make run` on a machine without PostgreSQL, apt-get); nothing is generated.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
BIN := $(CURDIR)/bin
PROTOC_GEN_GO_VERSION := v1.36.12
# Extra arguments for `make run`, e.g. make run RUN_ARGS='-log-level=debug'.
RUN_ARGS ?=

.PHONY: help run build test bench bench-http bench-ab vet lint lint-openapi proto db-stop db-wipe cluster test-cluster ops-browser-test bench-streams chaos

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  make %-8s %s\n", $$1, $$2 }'

run: ## start a local PostgreSQL (unless DATABASE_URL is set) and run the server with demo data
	@if [[ -z "$${DATABASE_URL:-}" ]]; then \
		out="$$(bash scripts/pg-local.sh start)"; \
		export DATABASE_URL="$${out##*$$'\n'}"; \
		echo "DATABASE_URL=$$DATABASE_URL"; \
	fi; \
	$(GO) build -o bin/concertd ./cmd/concertd; \
	exec bin/concertd -demo $(RUN_ARGS)

cluster: ## three nodes on loopback as one cluster (local PostgreSQL; CLUSTER_PROVIDER=etcd for a local etcd); Ctrl-C stops them
	bash scripts/cluster-local.sh

build: ## build bin/concertd
	$(GO) build -o bin/concertd ./cmd/concertd

test: ## run every test; tests start their own PostgreSQL (or use TEST_DATABASE_URL)
	@# -race needs cgo and so a C compiler; a bare Debian with Go may lack one.
	@if ! command -v gcc >/dev/null; then \
		echo "gcc not found (needed by -race); installing Debian's gcc"; \
		sudo=""; [[ "$$(id -u)" -eq 0 ]] || sudo="sudo"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev; \
	fi
	@# The tests start their own PostgreSQL from its binaries: install them if missing.
	@if [[ -z "$${TEST_DATABASE_URL:-}" ]]; then bash scripts/pg-local.sh install; fi
	$(GO) test -race -count=1 -timeout 15m ./...

# The long chaos run (chaos/): kill -9, database outages and a misbehaving
# database connection under a mixed load, each history checked for the
# contract's invariants and for linearizability. The short version of each
# runs in `make test`. Histories, drawings and server logs go to
# .data/chaos/<test>. Another seed: make chaos CHAOS_SEED=7. The kill -9
# run against a static cluster of CHAOS_NODES nodes (TestClusterKillChaos)
# runs too unless CHAOS_CLUSTER=0.
CHAOS_SEED ?= 1
CHAOS_CLUSTER ?= 1
CHAOS_NODES ?= 3
CHAOS_TESTS = TestKillNineChaos TestDatabaseOutageChaos TestDatabaseConnectionChaos $(if $(filter 1,$(CHAOS_CLUSTER)),TestClusterKillChaos)
chaos: ## the long chaos run: kill -9, database outages and faults under load; histories checked
	@if [[ -z "$${TEST_DATABASE_URL:-}" ]]; then bash scripts/pg-local.sh install; fi
	@mkdir -p .data/chaos
	set -o pipefail; for t in $(CHAOS_TESTS); do \
		$(GO) test -count=1 -timeout 60m -run "^$$t$$" -v ./chaos/ \
			-args -chaos.long -chaos.seed=$(CHAOS_SEED) -chaos.nodes=$(CHAOS_NODES) -chaos.out=$(CURDIR)/.data/chaos/$$t \
			| grep -vE '^=== (RUN|PAUSE|CONT)'; \
	done
# The long multi-process cluster tests (kill -9 with the static list and with
# etcd, a node joining under load, a rolling restart, a duplicate
# activation): several minutes. The nodes are built without -race (the
# library's own races, see test/cluster).
test-cluster: ## run the long cluster tests (real nodes on loopback; installs etcd if missing)
	@if [[ -z "$${TEST_DATABASE_URL:-}" ]]; then bash scripts/pg-local.sh install; fi
	bash scripts/cluster-etcd.sh install
	CLUSTER_LONG=1 $(GO) test -count=1 -timeout 20m -v -run 'Test' ./test/cluster/ 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|_test.go'

# The persistence and HTTP benchmarks need PostgreSQL; like the tests, they
# start their own (or use TEST_DATABASE_URL). Narrow with e.g.
#   make bench BENCH=Journal PKGS=./persistence/
BENCH ?= .
PKGS ?= ./...
bench: ## run the benchmarks
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(PKGS)

# The whole concertbench set (every scenario, closed and open loop, the three
# ceilings) against a concertd it starts on a throwaway PostgreSQL of its own
# (the make run database is not touched), then the HTML report checked in
# headless Chromium (installed with apt-get if missing). Outputs in
# $(BENCH_OUT): report.json, report.html, report.png. Shorter runs, e.g.
#   make bench-http BENCH_ARGS='-scale 0.1 -duration 5s -wallet-duration 3s'
BENCH_ARGS ?=
BENCH_OUT ?= $(BIN)/bench
bench-http: ## run concertbench against its own server and PostgreSQL; HTML report in bin/bench
	@bash scripts/pg-local.sh install
	$(GO) build -o bin/concertd ./cmd/concertd
	$(GO) build -o bin/concertbench ./cmd/concertbench
	@mkdir -p $(BENCH_OUT)
	@status=0; bin/concertbench self -concertd bin/concertd -report-json $(BENCH_OUT)/report.json \
		-html $(BENCH_OUT)/report.html $(BENCH_ARGS) || status=$$?; \
	if [[ -s $(BENCH_OUT)/report.html ]]; then \
		bash scripts/bench-check-html.sh $(BENCH_OUT)/report.html $(BENCH_OUT)/report.png || status=1; \
	fi; \
	echo "bench-http: report in $(BENCH_OUT)/report.html (exit $$status)"; exit $$status

# One scenario (default fresh-holds, closed loop) against an older commit's
# server, built beside this one in a temporary git worktree: AB_ROUNDS rounds
# of one run each, alternating which goes first, each on a fresh PostgreSQL
# and server; prints both binaries' figures, the ratios, and issue 8's target
# (≥ 4× the holds/s of BASE, by default issue 8's start). E.g.
#   make bench-ab BASE=HEAD~3 AB_ROUNDS=3 AB_ARGS='-want 1.1 -- -fresh-duration 10s'
BASE ?= 44b0db4
AB_ROUNDS ?= 2
AB_ARGS ?=
bench-ab: ## the hold path against an older commit (BASE), in alternating rounds on fresh databases
	@git rev-parse --verify --quiet '$(BASE)^{commit}' >/dev/null || { echo "bench-ab: BASE=$(BASE) is not a commit of this repository"; exit 2; }
	@bash scripts/pg-local.sh install
	$(GO) build -o bin/concertd ./cmd/concertd
	$(GO) build -o bin/concertbench ./cmd/concertbench
	@base_bin="$(BIN)/concertd-$$(git rev-parse --short '$(BASE)^{commit}')"; \
	if [[ ! -x "$$base_bin" ]]; then \
		tree="$$(mktemp -d)"; trap 'git worktree remove --force "$$tree"' EXIT; \
		git worktree add --detach --quiet "$$tree" '$(BASE)'; \
		(cd "$$tree" && $(GO) build -o "$$base_bin" ./cmd/concertd); \
	fi; \
	bin/concertbench ab -base "$$base_bin" -concertd bin/concertd -rounds $(AB_ROUNDS) $(AB_ARGS)

vet: ## go vet, and fail if any file is not gofmt-formatted
	$(GO) vet ./...
	@unformatted="$$(find . -type d \( -path './.*' -o -path ./bin -o -name testdata -o -name vendor \) -prune \
		-o -type f -name '*.go' -print | xargs -r gofmt -l)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; \
	fi

lint: vet ## same as vet

# Lints http/openapi.yaml with Redocly's CLI, pinned, from the npm registry,
# installed into ./bin on first use (needs Node.js >= 20.19 and npm; without
# npm, Debian's are installed with apt-get). docs/redocly.yaml holds the rules
# and the reason for each one that is off.
REDOCLY_VERSION := 2.77.0
REDOCLY_DIR := $(BIN)/redocly-$(REDOCLY_VERSION)
lint-openapi: ## lint http/openapi.yaml with @redocly/cli (installed into ./bin)
	@if ! command -v npm >/dev/null; then \
		echo "npm not found; installing Debian's nodejs and npm"; \
		sudo=""; [[ "$$(id -u)" -eq 0 ]] || sudo="sudo"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm; \
	fi
	@if [[ ! -x "$(REDOCLY_DIR)/node_modules/.bin/redocly" ]]; then \
		echo "installing @redocly/cli@$(REDOCLY_VERSION) into $(REDOCLY_DIR)"; \
		npm install --prefix "$(REDOCLY_DIR)" --no-save --no-audit --no-fund --loglevel=error \
			@redocly/cli@$(REDOCLY_VERSION); \
	fi
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		$(REDOCLY_DIR)/node_modules/.bin/redocly lint --config docs/redocly.yaml --format=stylish http/openapi.yaml

# Regenerates messages/*.pb.go. Needs protoc (Debian's protobuf-compiler,
# installed with apt-get if missing) and a pinned protoc-gen-go in ./bin.
# The generated files are committed: only run this after editing a .proto.
proto: ## regenerate messages/*.pb.go from messages/*.proto
	@if ! command -v protoc >/dev/null; then \
		echo "protoc not found; installing Debian's protobuf-compiler"; \
		sudo=""; [[ "$$(id -u)" -eq 0 ]] || sudo="sudo"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler; \
	fi
	@if [[ "$$($(BIN)/protoc-gen-go --version 2>/dev/null)" != "protoc-gen-go $(PROTOC_GEN_GO_VERSION)" ]]; then \
		echo "installing protoc-gen-go $(PROTOC_GEN_GO_VERSION) into $(BIN)"; \
		GOBIN="$(BIN)" $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION); \
	fi
	protoc -I messages --go_out=messages --go_opt=paths=source_relative \
		--plugin=protoc-gen-go=$(BIN)/protoc-gen-go messages/*.proto

db-stop: ## stop the local PostgreSQL of `make run`
	bash scripts/pg-local.sh stop

db-wipe: ## stop the local PostgreSQL and delete its data
	bash scripts/pg-local.sh wipe

ops-browser-test: ## check the live ops page in headless Chromium (installs Debian's chromium if missing)
	bash scripts/ops-browser-test.sh

# Needs a file descriptor per stream on each side: with `ulimit -n` below
# STREAMS plus a margin it measures as many as the limit allows.
STREAMS ?= 20000
bench-streams: ## hold STREAMS (20,000) idle token streams on one node; print memory and CPU, and polling's
	@if [[ -z "$${TEST_DATABASE_URL:-}" ]]; then bash scripts/pg-local.sh install; fi
	STREAMS=$(STREAMS) $(GO) test -count=1 -run '^$$' -bench '^BenchmarkTokenStreams$$' -benchtime 1x ./http/
