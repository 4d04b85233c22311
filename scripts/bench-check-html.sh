#!/usr/bin/env bash
# bench-check-html.sh — open a concertbench HTML report in a real browser
# (Debian's headless Chromium) and check that it loads with no console error
# and that its charts are drawn.
#
# Usage: scripts/bench-check-html.sh REPORT.html [SCREENSHOT.png]
#        scripts/bench-check-html.sh --self-test
#
# Checks, on the page as Chromium rendered it (--dump-dom):
#   - no console message at error level, no uncaught exception and no failed
#     load (Chromium's log, --enable-logging=stderr);
#   - the verdict banner and the summary table are there;
#   - at least 4 charts (<svg class="chart">), every one with a drawn line
#     (<path class="series">) or saying "no data" — and none of them empty.
# With SCREENSHOT.png it also saves a picture of the top of the report.
# --self-test runs the checks on a deliberately broken page and fails if they
# pass it.
#
# Chromium is installed with apt-get if missing (as root, or with sudo). It
# runs with a fresh profile and without its background connections, which
# this machine's closed network refuses.
set -euo pipefail

log() { printf 'bench-check-html: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

find_chromium() {
	for c in chromium chromium-browser google-chrome; do
		if command -v "$c" >/dev/null; then
			command -v "$c"
			return
		fi
	done
	log "chromium not found; installing Debian's chromium"
	local sudo=""
	[[ "$(id -u)" -eq 0 ]] || sudo="sudo"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >&2
	command -v chromium
}

# check FILE [SCREENSHOT]: 0 if the page passes, else 1 with the reasons.
check() {
	local html shot browser profile dom errlog failed=0
	html="$(readlink -f "$1")"
	shot="${2:-}"
	[[ -f "$html" ]] || die "no such file: $1"
	browser="$(find_chromium)"
	profile="$(mktemp -d)"
	# shellcheck disable=SC2064
	trap "rm -rf '$profile'" RETURN
	local flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
		--disable-component-update --disable-sync --no-first-run --disable-quic
		--disable-default-apps --disable-extensions --user-data-dir="$profile"
		--enable-logging=stderr --v=0 --virtual-time-budget=3000)
	dom="$profile/dom.html"
	errlog="$profile/chromium.log"
	if ! timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$html" >"$dom" 2>"$errlog"; then
		log "chromium failed; its log:"
		tail -20 "$errlog" >&2
		return 1
	fi
	# Console messages: Chromium logs them as CONSOLE lines; errors and
	# failed loads also as "Uncaught", "Failed to load", net::ERR_.
	local console
	console="$(grep -E 'CONSOLE|Uncaught|Failed to load|net::ERR_' "$errlog" |
		grep -vE 'DevTools listening|dbus|Fontconfig' || true)"
	if [[ -n "$console" ]]; then
		log "console messages:"
		printf '%s\n' "$console" >&2
		failed=1
	fi
	grep -q 'id="verdict"' "$dom" || { log "no verdict banner"; failed=1; }
	grep -q 'id="summary"' "$dom" || { log "no summary table"; failed=1; }
	local charts drawn nodata
	charts="$(grep -o '<svg class="chart"' "$dom" | wc -l)"
	# Count per chart: split the DOM at each chart's end.
	drawn="$(awk 'BEGIN{RS="</svg>"} /<svg class="chart"/ && /class="series"/ {n++} END{print n+0}' "$dom")"
	nodata="$(awk 'BEGIN{RS="</svg>"} /<svg class="chart"/ && />no data</ {n++} END{print n+0}' "$dom")"
	if ((charts < 4)); then
		log "only $charts charts in the page (want at least 4)"
		failed=1
	fi
	if ((drawn + nodata < charts)); then
		log "$((charts - drawn - nodata)) of $charts charts have neither a line nor 'no data'"
		failed=1
	fi
	if ((drawn == 0)); then
		log "no chart has a line"
		failed=1
	fi
	if [[ -n "$shot" && $failed -eq 0 ]]; then
		shot="$(readlink -f "$shot")"
		timeout 120 "$browser" "${flags[@]}" --hide-scrollbars --window-size=1280,2200 \
			--screenshot="$shot" "file://$html" >/dev/null 2>>"$errlog" || { log "screenshot failed"; failed=1; }
		[[ -s "$shot" ]] && log "screenshot: $shot"
	fi
	if ((failed)); then
		return 1
	fi
	log "ok: $1 loads in $("$browser" --version 2>/dev/null | head -1) with no console error; $charts charts, $drawn with lines"
}

if [[ "${1:-}" == "--self-test" ]]; then
	dir="$(mktemp -d)"
	trap 'rm -rf "$dir"' EXIT
	cat >"$dir/broken.html" <<'EOF'
<!DOCTYPE html><html><head><meta charset="utf-8"><title>broken</title></head>
<body><div id="verdict">x</div><table id="summary"></table>
<svg class="chart"><path class="series" d="M0 0 L1 1"/></svg>
<svg class="chart"></svg><svg class="chart"></svg><svg class="chart"></svg>
<img src="missing.png"><script>console.error("deliberate"); undefinedFunction();</script>
</body></html>
EOF
	if check "$dir/broken.html" 2>"$dir/out"; then
		cat "$dir/out" >&2
		die "self-test: a broken page passed"
	fi
	grep -q 'deliberate\|undefinedFunction\|Uncaught' "$dir/out" || { cat "$dir/out" >&2; die "self-test: the console error went unseen"; }
	grep -q 'charts have neither' "$dir/out" || { cat "$dir/out" >&2; die "self-test: the empty charts went unseen"; }
	log "self-test ok: the broken page fails (console error and empty charts seen)"
	exit 0
fi

[[ $# -ge 1 ]] || { echo "usage: $0 REPORT.html [SCREENSHOT.png] | --self-test" >&2; exit 2; }
check "$@" || die "$1"
