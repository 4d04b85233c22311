#!/usr/bin/env bash
# pg-local.sh — a project-local PostgreSQL for `make run`.
#
# Usage: scripts/pg-local.sh start|stop|wipe|url
#
#   start  install PostgreSQL if needed (Debian, via apt-get), create the cluster
#          once, start it if it is not running, create database "concert", and
#          print the DATABASE_URL as the last line on stdout. Idempotent.
#   stop   stop the server (fast shutdown). No-op if it is not running.
#   wipe   stop the server and delete its data.
#   url    print the DATABASE_URL (does not start anything).
#
# Data lives in .data/pg inside the project (gitignored), the socket and the
# server log in .data/pg-run. The server listens on 127.0.0.1 only, port
# $PGLOCAL_PORT (default 5433, so it does not collide with a system cluster on
# 5432). Authentication is "trust": this is a development database.
#
# PostgreSQL refuses to run as root. As root the server programs run as the
# "postgres" system user, which then owns the data directory. If that user
# cannot reach .data (the project sits under a root-only path), the data goes
# to /var/tmp/concert-pg-<hash of the project path> instead and .data/pg is a
# symlink to it.
#
# Progress goes to stderr; stdout carries only the URL.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PORT="${PGLOCAL_PORT:-5433}"
DB_NAME=concert
DB_USER=postgres
PG_OS_USER=postgres # the system user the server runs as when we are root

DATA_LINK="$ROOT/.data/pg"      # the data dir, or a symlink to it (fallback)
LOCAL_RUN="$ROOT/.data/pg-run"  # socket and log when .data is usable

log() { printf 'pg-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [[ "$(id -u)" -eq 0 ]]; }

project_hash() {
	printf '%s' "$ROOT" | sha256sum | cut -c1-12
}

FALLBACK_BASE="/var/tmp/concert-pg-$(project_hash)"

case "$PORT" in
'' | *[!0-9]*) die "PGLOCAL_PORT must be a port number, got '$PORT'" ;;
esac
((PORT >= 1 && PORT <= 65535)) || die "PGLOCAL_PORT out of range: $PORT"

url() {
	printf 'postgres://%s@127.0.0.1:%s/%s?sslmode=disable\n' "$DB_USER" "$1" "$DB_NAME"
}

# as_pg CMD...: run a PostgreSQL program as the user that owns the cluster.
# The working directory is / so that the target user never needs access to the
# caller's working directory. File descriptor 9 (the start lock) is closed:
# the server daemonizes and would otherwise hold the lock for its lifetime.
as_pg() {
	if is_root; then
		(cd / && runuser -u "$PG_OS_USER" -- "$@") 9>&-
	else
		(cd / && "$@") 9>&-
	fi
}

# ---------------------------------------------------------------- binaries ---

PGBIN=""

# find_pgbin sets PGBIN to a directory holding initdb, pg_ctl and psql of the
# same version: the one of pg_ctl on PATH (following symlinks, so Debian's
# /usr/bin/psql wrapper is never used), else the newest /usr/lib/postgresql/*/bin.
find_pgbin() {
	local p dir
	if p="$(command -v pg_ctl 2>/dev/null)"; then
		dir="$(dirname "$(readlink -f "$p")")"
		if [[ -x "$dir/initdb" && -x "$dir/psql" ]]; then
			PGBIN="$dir"
			return 0
		fi
	fi
	dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
	if [[ -n "$dir" && -x "$dir/pg_ctl" && -x "$dir/initdb" && -x "$dir/psql" ]]; then
		PGBIN="$dir"
		return 0
	fi
	return 1
}

install_postgres() {
	command -v apt-get >/dev/null 2>&1 || die "PostgreSQL not found and apt-get is not available; install PostgreSQL (initdb, pg_ctl, psql) and put its bin directory on PATH"
	local sudo=()
	if ! is_root; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		else
			die "PostgreSQL not found; install it with: sudo apt-get install -y postgresql"
		fi
	fi
	log "PostgreSQL not found; installing the Debian package 'postgresql' (apt-get)"
	# Output goes to stderr: stdout is reserved for the URL.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
}

ensure_binaries() {
	find_pgbin && return 0
	install_postgres
	find_pgbin || die "PostgreSQL installed but initdb/pg_ctl/psql not found under /usr/lib/postgresql/*/bin"
}

ensure_os_user() {
	is_root || return 0
	id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
	log "creating system user '$PG_OS_USER' (PostgreSQL does not run as root)"
	useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_OS_USER"
}

# ---------------------------------------------------------------- layout -----

PGDATA_DIR="" # the real data directory
RUN_DIR=""    # socket directory and server log

# resolve_layout sets PGDATA_DIR and RUN_DIR from what exists, without creating
# anything. Returns 1 if there is no cluster yet.
resolve_layout() {
	if [[ -L "$DATA_LINK" ]]; then
		PGDATA_DIR="$(readlink -f "$DATA_LINK")" || PGDATA_DIR="$(readlink "$DATA_LINK")"
		RUN_DIR="$(dirname "$PGDATA_DIR")/run"
	else
		PGDATA_DIR="$DATA_LINK"
		RUN_DIR="$LOCAL_RUN"
	fi
	# Unix socket paths are limited to 107 bytes; keep deep checkouts working.
	if ((${#RUN_DIR} + 16 > 107)); then
		RUN_DIR="$FALLBACK_BASE/run"
	fi
	[[ -f "$PGDATA_DIR/PG_VERSION" ]]
}

# can_reach DIR: whether the server's user can traverse to DIR.
can_reach() {
	if is_root; then
		runuser -u "$PG_OS_USER" -- test -x "$1" 2>/dev/null
	else
		test -x "$1"
	fi
}

# make_owned_dir DIR: create DIR (mode 700) owned by the server's user.
make_owned_dir() {
	mkdir -p "$1"
	if is_root; then
		chown "$PG_OS_USER:" "$1"
	fi
	chmod 700 "$1"
}

# prepare_layout decides where a new cluster goes and creates its directories.
prepare_layout() {
	if [[ ! -d "$ROOT/.data" ]]; then
		mkdir -m 755 "$ROOT/.data"
	fi
	if [[ ! -e "$DATA_LINK" && ! -L "$DATA_LINK" ]]; then
		if can_reach "$ROOT/.data"; then
			make_owned_dir "$DATA_LINK"
		else
			log "user '$PG_OS_USER' cannot reach $ROOT/.data; keeping the data in $FALLBACK_BASE (symlinked from .data/pg)"
			mkdir -p -m 755 "$FALLBACK_BASE"
			make_owned_dir "$FALLBACK_BASE/pg"
			ln -s "$FALLBACK_BASE/pg" "$DATA_LINK"
		fi
	fi
	resolve_layout || true
	if [[ -L "$DATA_LINK" && ! -d "$PGDATA_DIR" ]]; then
		# The symlink survived but its target was cleaned from /var/tmp.
		mkdir -p -m 755 "$(dirname "$PGDATA_DIR")"
		make_owned_dir "$PGDATA_DIR"
	fi
	make_owned_dir "$RUN_DIR"
	if is_root && [[ -z "$(ls -A "$PGDATA_DIR")" ]]; then
		chown "$PG_OS_USER:" "$PGDATA_DIR"
	fi
	can_reach "$PGDATA_DIR" || die "user '$PG_OS_USER' cannot access $PGDATA_DIR"
}

# ---------------------------------------------------------------- server -----

# running_port prints the port of the running server; returns 1 if none runs.
running_port() {
	[[ -f "$PGDATA_DIR/postmaster.pid" ]] || return 1
	[[ -n "$PGBIN" ]] || find_pgbin || return 1
	as_pg "$PGBIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1 || return 1
	# Line 4 of postmaster.pid is the port.
	sed -n 4p "$PGDATA_DIR/postmaster.pid"
}

psql_admin() {
	as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U "$DB_USER" -d postgres "${@:2}"
}

cmd_start() {
	ensure_binaries
	ensure_os_user
	[[ -d "$ROOT/.data" ]] || mkdir -m 755 "$ROOT/.data"
	if command -v flock >/dev/null 2>&1; then
		# Serialize concurrent starts (two terminals running `make run`).
		exec 9>>"$ROOT/.data/.pg-local.lock"
		flock 9
	fi

	prepare_layout
	if [[ ! -f "$PGDATA_DIR/PG_VERSION" ]]; then
		[[ -z "$(ls -A "$PGDATA_DIR")" ]] || die "$PGDATA_DIR is not empty but holds no cluster; run: $0 wipe"
		log "creating a cluster in $PGDATA_DIR ($("$PGBIN/postgres" --version))"
		local out
		if ! out="$(as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -A trust -U "$DB_USER" -E UTF8 --locale=C 2>&1)"; then
			printf '%s\n' "$out" >&2
			die "initdb failed"
		fi
	fi

	local port
	if port="$(running_port)"; then
		log "already running on port $port ($PGDATA_DIR)"
		[[ "$port" == "$PORT" ]] || log "note: it runs on $port, not PGLOCAL_PORT=$PORT; run '$0 stop' first to change the port"
	else
		port="$PORT"
		log "starting on 127.0.0.1:$port ($PGDATA_DIR, log $RUN_DIR/postgres.log)"
		if ! as_pg "$PGBIN/pg_ctl" start -w -t 60 -D "$PGDATA_DIR" -l "$RUN_DIR/postgres.log" \
			-o "-p $port -k '$RUN_DIR' -c listen_addresses=127.0.0.1" >&2; then
			log "server log ($RUN_DIR/postgres.log):"
			tail -n 20 "$RUN_DIR/postgres.log" >&2 || true
			die "PostgreSQL did not start (is port $port taken? set PGLOCAL_PORT)"
		fi
	fi

	if [[ "$(psql_admin "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]]; then
		log "creating database $DB_NAME"
		psql_admin "$port" -c "CREATE DATABASE $DB_NAME" >&2
	fi
	url "$port"
}

cmd_stop() {
	if ! resolve_layout; then
		log "no local cluster"
		return 0
	fi
	if ! running_port >/dev/null; then
		log "not running"
		return 0
	fi
	log "stopping ($PGDATA_DIR)"
	as_pg "$PGBIN/pg_ctl" stop -m fast -w -t 60 -D "$PGDATA_DIR" >&2
}

cmd_wipe() {
	cmd_stop
	resolve_layout || true
	if [[ -L "$DATA_LINK" ]]; then
		local base
		base="$(dirname "$PGDATA_DIR")"
		# Only ever delete what this script creates.
		if [[ "$base" == "$FALLBACK_BASE" ]]; then
			rm -rf "$base"
		fi
		rm -f "$DATA_LINK"
	else
		rm -rf "$DATA_LINK"
	fi
	rm -rf "$LOCAL_RUN"
	rm -rf "$FALLBACK_BASE/run" 2>/dev/null || true
	rmdir "$FALLBACK_BASE" 2>/dev/null || true
	log "wiped"
}

cmd_url() {
	local port="$PORT" p
	if resolve_layout && find_pgbin && p="$(running_port)"; then
		port="$p"
	fi
	url "$port"
}

case "${1:-}" in
# install: make sure the PostgreSQL binaries (and, as root, the postgres
# user) exist; `make test` calls it so its test harness finds them.
install) ensure_binaries && ensure_os_user ;;
start) cmd_start ;;
stop) cmd_stop ;;
wipe) cmd_wipe ;;
url) cmd_url ;;
*)
	echo "usage: $0 install|start|stop|wipe|url" >&2
	exit 2
	;;
esac
