#!/usr/bin/env bash
# Differential test of `kettle run` against Qiskit (see README.md beside this
# file). Creates a venv with pinned Qiskit, Aer and the OpenQASM 3 importer,
# builds the kettle binary unless KETTLE_BIN names one, and runs
# differential.py; extra arguments are passed to it.
#
#   tests/qiskit/run.sh                       # 300 circuits, QASM 2 and 3
#   tests/qiskit/run.sh --count 1000 --seed 7
#   KETTLE_BIN=target/release/kettle tests/qiskit/run.sh --no-qasm3
#
# Environment: KETTLE_QISKIT_VENV (default target/qiskit-venv), PYTHON
# (default python3, tested with CPython 3.11), KETTLE_BIN, CARGO_TARGET_DIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

venv="${KETTLE_QISKIT_VENV:-target/qiskit-venv}"
# shellcheck source=tests/venv.sh
source "$root/tests/venv.sh"
kettle_venv "$venv" "$here/requirements.txt"

if [ -z "${KETTLE_BIN:-}" ]; then
    echo "== building kettle (release)" >&2
    cargo build --release --quiet -p kettle
    KETTLE_BIN="${CARGO_TARGET_DIR:-$root/target}/release/kettle"
fi
export KETTLE_BIN

exec "$venv/bin/python" "$here/differential.py" "$@"
