# Sourced by the test scripts that need Python packages (tests/qiskit/run.sh,
# tests/reliability/schemathesis.sh): `kettle_venv VENV REQUIREMENTS` creates
# VENV with $PYTHON (default python3) unless it exists, and installs the
# pinned REQUIREMENTS into it unless the same file was installed last time.

kettle_venv() {
    local venv="$1" requirements="$2"
    local python="${PYTHON:-python3}"
    if [ ! -x "$venv/bin/python" ]; then
        echo "== creating $venv with $("$python" --version 2>&1)" >&2
        "$python" -m venv "$venv"
    fi
    local stamp="$venv/.kettle-requirements"
    if ! cmp -s "$requirements" "$stamp"; then
        echo "== installing pinned packages into $venv" >&2
        "$venv/bin/python" -m pip install --quiet --upgrade "pip>=23"
        "$venv/bin/python" -m pip install --quiet -r "$requirements"
        cp "$requirements" "$stamp"
    fi
}
