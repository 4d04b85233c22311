#!/usr/bin/env bash
# cluster-local.sh — three concertd nodes on loopback as one cluster, for
# `make cluster`. Stops them (gracefully: each leaves the cluster) on Ctrl-C.
#
#   CLUSTER_PROVIDER=static (default) or etcd (a local etcd is started)
#   NODES=3, HTTP ports 8081.., cluster ports 7101.. (static health 8101..)
#   DATABASE_URL: if unset, the local PostgreSQL of scripts/pg-local.sh
#   EXTRA_ARGS: more flags for every node, e.g. EXTRA_ARGS=-log-level=debug
#
# Logs go to .data/cluster/nodeN.log. Node 1 loads the demo data.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
NODES="${NODES:-3}"
PROVIDER="${CLUSTER_PROVIDER:-static}"
EXTRA_ARGS="${EXTRA_ARGS:-}"
LOGS="$ROOT/.data/cluster"
mkdir -p "$LOGS"

if [[ -z "${DATABASE_URL:-}" ]]; then
	out="$(bash scripts/pg-local.sh start)"
	DATABASE_URL="${out##*$'\n'}"
fi
membership=()
case "$PROVIDER" in
static)
	peers=""
	for i in $(seq 1 "$NODES"); do peers+="${peers:+,}127.0.0.1:$((7100 + i))"; done
	membership=(-cluster-provider=static "-cluster-peers=$peers")
	;;
etcd)
	out="$(bash scripts/cluster-etcd.sh start)"
	membership=(-cluster-provider=etcd "-etcd-endpoints=${out##*$'\n'}")
	;;
*) echo "CLUSTER_PROVIDER must be static or etcd" >&2; exit 2 ;;
esac

go build -o bin/concertd ./cmd/concertd

pids=()
stop() {
	echo "stopping ${#pids[@]} nodes (each leaves the cluster)..."
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[[ "$PROVIDER" == etcd ]] && bash scripts/cluster-etcd.sh stop || true
	exit 0
}
trap stop INT TERM

for i in $(seq 1 "$NODES"); do
	demo=()
	[[ $i -eq 1 ]] && demo=(-demo)
	# shellcheck disable=SC2086
	DATABASE_URL="$DATABASE_URL" bin/concertd "${demo[@]}" -http-addr="127.0.0.1:$((8080 + i))" \
		-node-id="node$i" -cluster-host=127.0.0.1 -cluster-port=$((7100 + i)) "${membership[@]}" \
		$EXTRA_ARGS >"$LOGS/node$i.log" 2>&1 &
	pids+=($!)
	if [[ $i -eq 1 ]]; then
		# Node 1 first, so the demo data is loaded once.
		for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:8081/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
	fi
done
for i in $(seq 1 "$NODES"); do
	for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$((8080 + i))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done

echo
echo "cluster of $NODES nodes ($PROVIDER), database $DATABASE_URL:"
for i in $(seq 1 "$NODES"); do
	echo "  node$i  http://127.0.0.1:$((8080 + i))   cluster 127.0.0.1:$((7100 + i))   log $LOGS/node$i.log"
done
echo "Any node answers any request. Ctrl-C stops them all."
wait
