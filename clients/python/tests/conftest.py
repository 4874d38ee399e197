"""Fixtures that start the real ``kettle serve`` on 127.0.0.1.

``KETTLE_BIN`` names the binary (default ``<repo>/target/debug/kettle``).
The server refuses ``KETTLE_*`` variables it does not know, so it is started
with none but ``KETTLE_LOG``. Fixtures other test files rely on (keep their
names): ``server_url`` (a local-mode server), ``client``, ``provider``,
``backend``; ``auth_server`` is a second server that requires an API key.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kettle_client import KettleClient
from qiskit_kettle import KettleBackend, KettleProvider

REPO = Path(__file__).resolve().parents[3]
LISTENING = re.compile(r"listening on (http://\S+)")


def kettle_bin() -> Path:
    path = Path(os.environ.get("KETTLE_BIN") or REPO / "target" / "debug" / "kettle")
    if not path.is_file():
        pytest.exit(f"kettle binary not found at {path} (build it, or set KETTLE_BIN)", returncode=2)
    return path


def kettle_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETTLE_")}
    env["KETTLE_LOG"] = "warn"
    return env


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: list[str]
    data_dir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(data_dir: Path, *extra: str) -> Server:
    """Starts ``kettle serve`` on a free loopback port and waits until it listens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(kettle_bin()), "serve", "--addr", "127.0.0.1:0", "--data-dir", str(data_dir),
        "--workers", "2", "--memory-budget", "512MiB", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=kettle_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    log: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            m = LISTENING.search(line)
            if m and not found.is_set():
                url.append(m.group(1))
                found.set()
        found.set()

    threading.Thread(target=drain, daemon=True).start()
    if not found.wait(60) or not url:
        proc.kill()
        raise RuntimeError("kettle serve did not start:\n" + "".join(log))
    server = Server(url[0], proc, log, data_dir)
    with KettleClient(server.url, retries=0) as c:
        for _ in range(100):
            try:
                c.ready()
                break
            except Exception:  # noqa: BLE001 - retried
                time.sleep(0.1)
    return server


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("kettle-local"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_url(local_server: Server) -> str:
    """Base URL of a local-mode (no API key) ``kettle serve``."""
    return local_server.url


@pytest.fixture(scope="session")
def client(server_url: str) -> Iterator[KettleClient]:
    with KettleClient(server_url) as c:
        yield c


@pytest.fixture(scope="session")
def provider(server_url: str) -> Iterator[KettleProvider]:
    p = KettleProvider(server_url)
    yield p
    p.close()


@pytest.fixture(scope="session")
def backend(provider: KettleProvider) -> KettleBackend:
    return provider.backend()


@dataclass
class AuthServer:
    url: str
    key: str
    tenant: str


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """A ``kettle serve`` that requires an API key (tenant ``tenant-a``)."""
    data = tmp_path_factory.mktemp("kettle-auth")
    out = subprocess.run(
        [str(kettle_bin()), "keys", "create", "tenant-a", "--data-dir", str(data)],
        env=kettle_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = out.stdout.strip().splitlines()[-1].strip()
    server = start_server(data)
    yield AuthServer(server.url, key, "tenant-a")
    server.stop()
