#!/usr/bin/env bash
# Checks the live operations page (GET /ops) in a real browser: installs
# Debian's chromium with apt-get if it is missing (as root, or with
# password-less sudo), then runs TestOpsPageInChromium, which starts a node
# on a throwaway PostgreSQL, puts load on it, loads /ops in headless
# Chromium and fails on any console error, uncaught exception, failed load
# or CSP refusal, or if the figures are missing or do not move.
#
#   scripts/ops-browser-test.sh          (or: make ops-browser-test)
#   CHROMIUM=/path/to/chrome scripts/ops-browser-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${CHROMIUM:-}" ]] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
	echo "ops-browser-test: chromium not found; installing Debian's chromium"
	sudo=""
	[[ "$(id -u)" -eq 0 ]] || sudo="sudo"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi
# The test starts its own PostgreSQL from the binaries, like `make test`.
if [[ -z "${TEST_DATABASE_URL:-}" ]]; then bash scripts/pg-local.sh install; fi
exec "${GO:-go}" test -count=1 -run '^TestOpsPageInChromium$' -v ./http/
