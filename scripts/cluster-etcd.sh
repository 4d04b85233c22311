#!/usr/bin/env bash
# cluster-etcd.sh — a project-local etcd for the etcd membership provider.
#
# Usage: scripts/cluster-etcd.sh install|start|stop|wipe
#
#   install  install Debian's etcd-server with apt-get if `etcd` is missing.
#   start    install if needed, start etcd on 127.0.0.1 (client port
#            $ETCD_PORT, default 2379; peer port +1) unless it runs, and
#            print the ETCD_ENDPOINTS value as the last line on stdout.
#   stop     stop it. wipe: stop it and delete its data.
#
# Data and log live in .data/etcd (gitignored). Development only: no TLS,
# no authentication, one member.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PORT="${ETCD_PORT:-2379}"
DIR="$ROOT/.data/etcd"
PIDFILE="$DIR/etcd.pid"

log() { printf 'cluster-etcd: %s\n' "$*" >&2; }

install() {
	if command -v etcd >/dev/null; then
		return
	fi
	log "etcd not found; installing Debian's etcd-server"
	local sudo=""
	[[ "$(id -u)" -eq 0 ]] || sudo="sudo"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server >&2
	# The package may start a system etcd on 2379; this script runs its own.
	if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
		$sudo systemctl stop etcd || true
	fi
}

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
	install
	mkdir -p "$DIR"
	if ! running; then
		log "starting etcd on 127.0.0.1:$PORT (log: $DIR/etcd.log)"
		nohup etcd --name local --data-dir "$DIR/data" \
			--listen-client-urls "http://127.0.0.1:$PORT" --advertise-client-urls "http://127.0.0.1:$PORT" \
			--listen-peer-urls "http://127.0.0.1:$((PORT + 1))" \
			--initial-advertise-peer-urls "http://127.0.0.1:$((PORT + 1))" \
			--initial-cluster "local=http://127.0.0.1:$((PORT + 1))" >"$DIR/etcd.log" 2>&1 &
		echo $! >"$PIDFILE"
		for _ in $(seq 1 100); do
			curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
			sleep 0.1
		done
		curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 || { log "etcd did not come up; see $DIR/etcd.log"; exit 1; }
	fi
	echo "http://127.0.0.1:$PORT"
}

stop() {
	if running; then
		kill "$(cat "$PIDFILE")" && log "stopped"
	fi
	rm -f "$PIDFILE"
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
wipe) stop; rm -rf "$DIR" ;;
*) echo "usage: $0 install|start|stop|wipe" >&2; exit 2 ;;
esac
