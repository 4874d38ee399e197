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
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "== creating $venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.kettle-requirements"
if ! cmp -s "$here/requirements.txt" "$stamp"; then
    echo "== installing pinned packages into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade "pip>=23"
    "$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

if [ -z "${KETTLE_BIN:-}" ]; then
    echo "== building kettle (release)" >&2
    cargo build --release --quiet -p kettle
    KETTLE_BIN="${CARGO_TARGET_DIR:-$root/target}/release/kettle"
fi
export KETTLE_BIN

exec "$venv/bin/python" "$here/differential.py" "$@"
