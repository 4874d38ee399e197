"""Every ``python`` block of this package's README, run as written against
the real server (its address in place of ``http://127.0.0.1:8080``), so a
snippet cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
ADDRESS = "http://127.0.0.1:8080"


def blocks() -> list[str]:
    found = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert found, "the README has python blocks"
    return found


@pytest.mark.parametrize("index", range(len(blocks())))
def test_readme_block_runs(index: int, server_url: str) -> None:
    code = blocks()[index]
    if "import pennylane" in code:
        pytest.importorskip("pennylane", reason="PennyLane is not installed in this venv (the Qiskit 1.4 one)")
    assert ADDRESS in code, "each block talks to the documented address"
    exec(compile(code.replace(ADDRESS, server_url), f"README.md block {index + 1}", "exec"), {})
