#!/usr/bin/env bash
# Tests of the Python client and the Qiskit provider against the real
# `kettle serve` (the fixtures in tests/conftest.py start it on 127.0.0.1).
# Creates a venv with the pinned test requirements (requirements-test.txt
# beside this file), reinstalls the package from this folder in it (not
# editable, so the tests see what a user would install), builds the kettle
# binary unless KETTLE_BIN names one, and runs pytest; extra arguments go to
# pytest.
#
#   clients/python/run-tests.sh
#   clients/python/run-tests.sh -k provider -x
#   clients/python/run-tests.sh --qiskit1     # the same tests on Qiskit 1.4
#   KETTLE_BIN=target/release/kettle clients/python/run-tests.sh
#
# `--qiskit1` (first argument) uses requirements-test-qiskit1.txt and its own
# venv, and skips mypy (which the default run does); it has no PennyLane, so
# the PennyLane tests skip there (the device does not use Qiskit).
#
# Environment: KETTLE_PYTHON_CLIENT_VENV (default target/python-client-venv,
# or target/python-client-qiskit1-venv), PYTHON (default python3, tested with
# CPython 3.11), KETTLE_BIN, CARGO_TARGET_DIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

requirements="$here/requirements-test.txt"
default_venv=target/python-client-venv
typecheck=1
if [ "${1:-}" = "--qiskit1" ]; then
    shift
    requirements="$here/requirements-test-qiskit1.txt"
    default_venv=target/python-client-qiskit1-venv
    typecheck=0
fi
venv="${KETTLE_PYTHON_CLIENT_VENV:-$default_venv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
# shellcheck source=tests/venv.sh
source "$root/tests/venv.sh"
kettle_venv "$venv" "$requirements"
# Packages whose declared requirements contradict the pins above but that work
# with them (pennylane-qiskit: see the file), installed without their
# dependencies, again only when the file changed.
nodeps="$here/requirements-test-nodeps.txt"
if [ "$typecheck" = 1 ] && ! cmp -s "$nodeps" "$venv/.kettle-requirements-nodeps"; then
    echo "== installing $(basename "$nodeps") (--no-deps) into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --no-deps -r "$nodeps"
    cp "$nodeps" "$venv/.kettle-requirements-nodeps"
fi

echo "== installing kettle-client from clients/python" >&2
# Dependencies and the build backend (hatchling) come pinned from the
# requirements: nothing is fetched here.
"$venv/bin/python" -m pip install --quiet --no-build-isolation --no-deps --force-reinstall "$here"

if [ -z "${KETTLE_BIN:-}" ]; then
    echo "== building kettle" >&2
    cargo build --quiet -p kettle
    KETTLE_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/kettle"
fi
# The tests run from another folder: a relative path is the repository's.
case "$KETTLE_BIN" in /*) ;; *) KETTLE_BIN="$root/$KETTLE_BIN" ;; esac
export KETTLE_BIN

# Run from the tests' folder with the source tree out of sys.path, so that
# the installed package is the one imported; pytest's testpaths is tests/,
# so arguments may name one file (tests/test_primitives.py) or none.
cd "$here"
if [ "$typecheck" = 1 ]; then
    echo "== mypy (settings in pyproject.toml)" >&2
    "$venv/bin/python" -m mypy
fi
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
