"""Serving the API on a real port from a thread of its own, for the tests that need a real HTTP
server (a browser, schemathesis) rather than httpx over ASGI."""
from __future__ import annotations

import contextlib
import socket
import threading

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, thread: threading.Thread, headers: dict[str, str] | None = None) -> None:
    while thread.is_alive():
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/api/datasets", headers=headers, timeout=5).status_code == 200:
                return
        threading.Event().wait(0.1)
    raise RuntimeError("the stack stopped while starting")
