"""`Emulator`: start/stop the server and drive it (faults, clock, stats) from Python."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import control
from .app import App
from .faults import FaultPlan
from .server import HttpServer
from .state import State

if TYPE_CHECKING:
    import anthropic
    import openai

API_KEY = "emulator-key"
ALLOWED_HOSTS = ("127.0.0.1", "localhost")


class Emulator:
    """A local server speaking the OpenAI Batch and Anthropic Message Batches protocols.

    >>> with Emulator(port=0, processing_seconds=0.2, seed=0) as emu:
    ...     client = emu.openai_client()
    """

    def __init__(
        self,
        port: int = 0,
        processing_seconds: float = 1.0,
        seed: int = 0,
        faults: FaultPlan | None = None,
        *,
        host: str = "127.0.0.1",
    ) -> None:
        if host not in ALLOWED_HOSTS:
            raise ValueError(
                f"the emulator binds to 127.0.0.1 only (it has no authentication); got {host!r}"
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer between 0 and 65535, got {port!r}")
        self._requested_port = port
        self._state = State(
            processing_seconds=processing_seconds, seed=seed, faults=faults or FaultPlan()
        )
        self._app = App(self._state)
        self._server: HttpServer | None = None
        self._lifecycle = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("the emulator is already running")
            server = HttpServer(self._requested_port, self._app.dispatch)
            server.start()
            self._server = server
        return self

    def stop(self) -> None:
        with self._lifecycle:
            if self._server is not None:
                self._server.stop()
                self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and clients -------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() or use `with`")
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The OpenAI SDK appends /files, /batches ... to a base URL that ends in /v1."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The Anthropic SDK adds /v1 itself."""
        return self.url

    def openai_client(self, **kwargs: Any) -> openai.OpenAI:
        import openai

        return openai.OpenAI(**_client_options(self.openai_base_url, kwargs))

    def anthropic_client(self, **kwargs: Any) -> anthropic.Anthropic:
        import anthropic

        return anthropic.Anthropic(**_client_options(self.anthropic_base_url, kwargs))

    # -- control ---------------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        """A copy of the fault plan as it stands (countdowns partly consumed)."""
        with self._state.lock:
            return self._state.plan.copy()

    def set_faults(self, plan: FaultPlan) -> None:
        """Replace the whole fault plan (the emulator keeps its own copy)."""
        control.set_faults(self._app, plan)

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward: batches progress, expire, files age."""
        control.advance(self._app, float(seconds))

    def stats(self) -> dict[str, Any]:
        return control.stats(self._app)

    def reset(self) -> None:
        """Drop all files, batches and counters (the clock and fault plan stay)."""
        control.reset(self._app)


def _client_options(base_url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """An SDK client pointed at the emulator with its key; ``overrides`` win."""
    return {"base_url": base_url, "api_key": API_KEY, "max_retries": 2, **overrides}
