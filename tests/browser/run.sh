#!/usr/bin/env bash
# The web page at `/` in a real browser: headless Chromium (Debian's
# `chromium` package, installed here when /usr/bin/chromium is missing)
# driven by playwright-core (pinned in package-lock.json beside this file,
# installed under target/) against a `kettle serve` on 127.0.0.1 that
# requires an API key. What test.cjs checks is in README.md beside this
# file. Screenshots go to target/browser-test/.
#
#   tests/browser/run.sh
#   KETTLE_BIN=target/release/kettle tests/browser/run.sh
#
# Environment: KETTLE_BIN (default: build the debug binary), CARGO_TARGET_DIR,
# BROWSER_TEST_OUT (screenshots, default target/browser-test),
# BROWSER_TEST_TIMEOUT_S (the browser part's limit, default 120).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

target="${CARGO_TARGET_DIR:-$root/target}"
out="${BROWSER_TEST_OUT:-$target/browser-test}"
limit="${BROWSER_TEST_TIMEOUT_S:-120}"
chromium=/usr/bin/chromium
started=$SECONDS

# --- Chromium, from Debian -------------------------------------------------
apt_install() {
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
        || { "${sudo[@]}" apt-get update && \
             "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; }
}
if [ ! -x "$chromium" ]; then
    echo "== installing chromium (apt-get)" >&2
    apt_install chromium >&2
fi
echo "== $("$chromium" --version 2>/dev/null || echo "chromium (version unknown)")" >&2

# --- playwright-core, from package-lock.json, outside the source tree -------
node_dir="$target/browser-test/node"
if ! cmp -s "$here/package-lock.json" "$node_dir/package-lock.json" \
    || [ ! -f "$node_dir/node_modules/playwright-core/package.json" ]; then
    echo "== npm ci (playwright-core) in $node_dir" >&2
    mkdir -p "$node_dir"
    rm -rf "$node_dir/node_modules"
    cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
    npm ci --prefix "$node_dir" --ignore-scripts --no-audit --no-fund >&2
fi

# --- kettle ---------------------------------------------------------------
if [ -z "${KETTLE_BIN:-}" ]; then
    echo "== building kettle" >&2
    cargo build --quiet -p kettle
    KETTLE_BIN="$target/debug/kettle"
fi
# shellcheck source=tests/serve.sh
source "$root/tests/serve.sh"
# KETTLE_* variables are settings to kettle, which refuses unknown ones: the
# scripts' own are not passed on.
kettle_command "$KETTLE_BIN"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/kettle-browser.XXXXXX")"
test_pid=""
cleanup() {
    # The test runs in its own process group with its Chromium: end both.
    if [ -n "$test_pid" ] && kill -TERM -- "-$test_pid" 2>/dev/null; then
        sleep 0.5
        kill -KILL -- "-$test_pid" 2>/dev/null || true
    fi
    kettle_serve_stop
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One API key, so the page must ask for it. The memory budget leaves room
# for the 24-qubit job (256 MiB) that the test cancels.
"${kettle[@]}" keys create browser-test --data-dir "$tmp/data" >"$tmp/key"
key="$(tr -d '[:space:]' <"$tmp/key")"
[ -n "$key" ] || { echo "kettle keys create printed no key" >&2; exit 1; }
kettle_serve "$tmp/server.log" --data-dir "$tmp/data" --workers 1 --memory-budget 1GiB
addr="$kettle_serve_addr"
echo "== kettle serve on http://$addr" >&2
# And one in local mode (a new folder, no keys), as the README starts it.
kettle_serve "$tmp/local.log" --data-dir "$tmp/local" --workers 1
local_addr="$kettle_serve_addr"
echo "== kettle serve (local mode) on http://$local_addr" >&2

# --- the test ---------------------------------------------------------------
mkdir -p "$out"
rm -f "$out"/*.png
export BROWSER_TEST_BASE="http://$addr" BROWSER_TEST_KEY="$key" BROWSER_TEST_OUT="$out"
export BROWSER_TEST_LOCAL_BASE="http://$local_addr"
export BROWSER_TEST_CHROMIUM="$chromium" BROWSER_TEST_TIMEOUT_S="$limit"
export NODE_PATH="$node_dir/node_modules"
# Its own process group (setsid), so that cleanup ends Chromium with it.
setsid timeout --kill-after=5 "$((limit + 10))" node "$here/test.cjs" &
test_pid=$!
status=0
wait "$test_pid" || status=$?
if [ "$status" != 0 ]; then
    echo "== browser test FAILED (exit $status); server log (last 30 lines):" >&2
    tail -n 30 "$tmp/server.log" >&2
    exit 1
fi
echo "== browser test passed in $((SECONDS - started)) s; screenshots:" >&2
ls -1 "$out"/*.png >&2
