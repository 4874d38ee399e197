# Sourced by the test scripts that start `kettle serve` (tests/browser/run.sh,
# tests/reliability/schemathesis.sh).
#
# `kettle_command BIN` sets the array `kettle` to BIN run without the test
# scripts' own KETTLE_ variables (kettle refuses unknown ones).
# `kettle_serve LOG [SERVE ARGS...]` starts `kettle serve --addr 127.0.0.1:0
# ARGS` in the background, stderr to LOG, and waits until it says where it
# listens: it sets `kettle_serve_addr` (host:port) and appends the process to
# `kettle_serve_pids` (for the caller's cleanup, even when it fails); it fails,
# printing LOG, when the server exits first or is silent for 60 s.
# `kettle_serve_stop` stops every server `kettle_serve` started (for the
# caller's cleanup trap).

kettle_script_vars=(KETTLE_BIN KETTLE_QISKIT_VENV KETTLE_SCHEMATHESIS_VENV
    KETTLE_SCHEMATHESIS_SEED KETTLE_SCHEMATHESIS_LOCAL KETTLE_PYTHON_CLIENT_VENV)
kettle_serve_pids=()

kettle_command() {
    local var
    kettle=(env)
    for var in "${kettle_script_vars[@]}"; do
        kettle+=(-u "$var")
    done
    kettle+=("$1")
}

kettle_serve() {
    local log="$1" pid
    shift
    "${kettle[@]}" serve --addr 127.0.0.1:0 "$@" 2>"$log" &
    pid=$!
    kettle_serve_pids+=("$pid")
    kettle_serve_addr=""
    for _ in $(seq 600); do
        kettle_serve_addr="$(sed -n 's|.*listening on http://\([^ ]*\).*|\1|p' "$log" | head -n1)"
        [ -n "$kettle_serve_addr" ] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "kettle serve exited before listening:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "kettle serve did not listen in 60 s" >&2
    cat "$log" >&2
    return 1
}

kettle_serve_stop() {
    local pid
    for pid in "${kettle_serve_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
