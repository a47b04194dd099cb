"""Run any ASGI app under uvicorn in a background thread, e.g. the simulator or the gateway in tests.

The listening socket is bound here, before the thread starts, so the port is known at once
(``port=0`` picks a free one) and no other process can take it in between.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn

STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 2.0
# In-flight requests get this long to finish on stop() before their tasks are cancelled.
GRACEFUL_SHUTDOWN_S = 1


@dataclass
class RunningServer:
    """A uvicorn server running in its own thread and event loop. Also a context manager."""

    host: str
    port: int
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        """The base URL to reach the server, e.g. ``http://127.0.0.1:54321``."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Shut the server down and wait for its thread; idempotent."""
        if not self._thread.is_alive():
            return
        self._server.should_exit = True
        # uvicorn notices should_exit within 0.1 s, then waits for in-flight requests up to the
        # graceful timeout; force_exit cuts that wait short if it would overrun ours.
        self._thread.join(timeout * 0.75)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout * 0.25 + 0.5)
        if self._thread.is_alive():
            raise TimeoutError(f"server at {self.url} did not stop within {timeout} s")

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_in_thread(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    lifespan: Literal["auto", "on", "off"] = "auto",
    startup_timeout: float = STARTUP_TIMEOUT_S,
    config_class: Callable[..., uvicorn.Config] = uvicorn.Config,
    **config_options: Any,
) -> RunningServer:
    """Start ``app`` under uvicorn in a daemon thread; return once it accepts connections.

    ``config_options`` go to ``config_class`` (:class:`uvicorn.Config`, or a subclass such as
    the gateway's ``LimitedConfig``), e.g. ``http="h11"``, over our defaults.
    """
    options: dict[str, Any] = {
        "interface": "asgi3",
        "ws": "none",
        "log_level": "warning",
        "log_config": None,  # leave the process's logging configuration alone
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        **config_options,
    }
    server = uvicorn.Server(config_class(app, lifespan=lifespan, **options))
    sock = _bind(host, port)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as error:  # reported by serve_in_thread, not lost in the thread
            failures.append(error)
        finally:
            sock.close()

    bound_port = sock.getsockname()[1]
    thread = threading.Thread(target=run, name=f"uvicorn:{bound_port}", daemon=True)
    running = RunningServer(host=host, port=bound_port, _server=server, _thread=thread)
    thread.start()

    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"server for {app!r} failed to start") from (failures[0] if failures else None)
        if time.monotonic() > deadline:
            running.stop()
            raise TimeoutError(f"server for {app!r} did not start within {startup_timeout} s")
        time.sleep(0.002)
    return running


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock
