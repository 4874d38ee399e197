"""PennyLane's own device test suite (``pennylane.devices.tests``) on the
``kettle`` device against the real server, exactly and with shots, as

    pytest <pennylane>/devices/tests --device kettle --device-kwargs url=URL --skip-ops [--shots 10000]

in a subprocess bounded in time. ``--skip-ops`` turns the tests of
operations the device refuses by name into skips (``xfailed`` in the
summary). What is skipped, and why, is listed in the README (section
PennyLane); this test fails on any failure or error and on a pass count
below the one recorded there, so that a regression cannot hide as a skip.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "pennylane",
    reason="PennyLane is not installed in this venv (the Qiskit 1.4 one); the device needs no Qiskit and is tested in the default venv",
)
pytest.importorskip("flaky", reason="PennyLane's device tests need flaky (requirements-test.txt)")
pytest.importorskip("pytest_mock", reason="PennyLane's device tests need pytest-mock (requirements-test.txt)")

import pennylane.devices.tests as suite  # noqa: E402

#: Seconds one run of the suite may take (about 30 on a 2-core machine).
SUITE_TIMEOUT = 600
#: Passes recorded in the README (pennylane 0.45.1); fewer means something
#: that passed now fails, errors or skips.
MINIMUM_PASSED = {None: 380, 10000: 365}
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|warnings?|deselected)")


@pytest.mark.parametrize("shots", [None, 10000], ids=["analytic", "shots"])
def test_pennylane_device_suite(server_url: str, shots: int | None, tmp_path: Path) -> None:
    tests_dir = Path(suite.__file__).resolve().parent
    cmd = [
        sys.executable, "-m", "pytest", str(tests_dir), "--device", "kettle",
        "--device-kwargs", f"url={server_url}", "--skip-ops", "-q", "-p", "no:cacheprovider",
        "-W", "ignore::DeprecationWarning", "-rfE",
    ]  # fmt: skip
    if shots is not None:
        cmd += ["--shots", str(shots)]
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=SUITE_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"PennyLane's device suite took more than {SUITE_TIMEOUT} s:\n{(e.stdout or '')[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in SUMMARY.findall(last)}
    print(f"pennylane.devices.tests, shots={shots}: {last}")
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert counts.get("failed", 0) == 0 and counts.get("error", 0) == 0, tail
    assert proc.returncode == 0, tail
    assert counts.get("passed", 0) >= MINIMUM_PASSED[shots], tail
