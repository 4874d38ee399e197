"""``KettleProvider``: the entry point, in the style of Qiskit's third-party providers."""

from __future__ import annotations

from typing import Any

from kettle_client import KettleClient

from .backend import KettleBackend

__all__ = ["KettleProvider"]


class KettleProvider:
    """Backends of one Kettle server.

    >>> from qiskit_kettle import KettleProvider
    >>> backend = KettleProvider("http://127.0.0.1:8080").backend()

    ``token`` is an API key (none in local mode); other keyword arguments
    (``timeout``, ``retries``, ``backoff``) go to
    :class:`kettle_client.KettleClient`.
    """

    def __init__(self, url: str = "http://127.0.0.1:8080", token: str | None = None, **client_options: Any) -> None:
        self.url = url
        self.client = KettleClient(url, token, **client_options)
        self._backend: KettleBackend | None = None

    def __repr__(self) -> str:
        return f"KettleProvider({self.url!r})"

    def backends(self, name: str | None = None, **filters: Any) -> list[KettleBackend]:
        """The server's backends (a Kettle server is one backend); ``name``
        filters by name."""
        backend = self._get()
        if name is not None and name != backend.name:
            return []
        return [backend]

    def backend(self, name: str | None = None) -> KettleBackend:
        """The backend called ``name`` (the server's one backend when None)."""
        found = self.backends(name)
        if not found:
            raise KeyError(f"no backend named {name!r} at {self.url} (it has {self._get().name!r})")
        return found[0]

    def _get(self) -> KettleBackend:
        if self._backend is None:
            self._backend = KettleBackend(self.client, provider=self)
        return self._backend

    def close(self) -> None:
        """Closes the HTTP client."""
        self.client.close()
