"""The provider interface: everything the runner needs from a batch API, and nothing more.

A provider encodes request lines, uploads and creates batches, reports their status,
downloads and decodes result files into :data:`~batchframe.records.RESULT_SCHEMA` tables,
and cancels. It never sees pandas; it speaks pyarrow tables and paths. SDK exceptions are
mapped onto :mod:`batchframe.errors` here, at the boundary, by :func:`map_sdk_errors`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa

from ..errors import (
    AuthenticationError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    RateLimitError,
)
from ..records import RequestSpec

Outcome = Literal["running", "ended", "failed", "expired", "cancelled"]


@dataclass(frozen=True)
class Limits:
    max_requests: int  # requests per batch
    max_bytes: int  # bytes per batch input


@dataclass(frozen=True)
class RemoteStatus:
    """A batch as the provider reports it, in neutral terms plus the provider's own words."""

    batch_id: str
    status: str  # the provider's word: validating, in_progress, ended, canceling...
    outcome: Outcome
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    output_refs: tuple[str, ...] = ()  # what download() needs: file ids or a results marker
    errors: tuple[tuple[str, str], ...] = ()  # batch-level (code, message), e.g. validation
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.outcome != "running"


class Provider(Protocol):
    name: str
    limits: Limits

    def prepare_spec(self, spec: RequestSpec) -> RequestSpec:
        """Check and normalise job-level parameters (raise InputError on bad ones)."""
        ...

    def encode(
        self, spec: RequestSpec, custom_ids: pa.Array, parts: Sequence[pa.Array]
    ) -> pa.Array:
        """One JSON line per request, in the provider's batch input format."""
        ...

    def upload(self, path: Path, name: str) -> str | None:
        """Upload a shard's file if the protocol has an upload step; returns its id."""
        ...

    def find_upload(self, name: str) -> str | None:
        """An earlier upload of this name (after a crash between upload and store)."""
        ...

    def create(
        self, spec: RequestSpec, path: Path, file_id: str | None, tag: dict[str, str]
    ) -> str:
        """Create the batch; returns its id."""
        ...

    def find_batch(
        self, tag: dict[str, str], *, since: float, total: int, claimed: frozenset[str]
    ) -> str | None:
        """A batch created by an earlier, interrupted create of this shard.

        ``claimed`` holds the ids already owned by other shards of the job: never adopt those.
        """
        ...

    def retrieve(self, batch_id: str) -> RemoteStatus: ...

    def download(self, status: RemoteStatus, folder: Path) -> list[Path]:
        """Fetch every result file of an ended batch into ``folder``."""
        ...

    def decode(self, paths: Sequence[Path]) -> pa.Table:
        """Decode result files into RESULT_SCHEMA rows (keys from custom ids)."""
        ...

    def cancel(self, batch_id: str) -> RemoteStatus: ...


@contextlib.contextmanager
def map_sdk_errors(provider: str, action: str) -> Iterator[None]:
    """Turn openai/anthropic SDK exceptions into batchframe errors with actionable text."""
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        mapped = _map(provider, action, exc)
        if mapped is None:
            raise
        raise mapped from exc


def _map(provider: str, action: str, exc: Exception) -> ProviderError | None:
    module = type(exc).__module__.split(".")[0]
    if module not in {"openai", "anthropic", "httpx2", "httpx"}:
        return None
    status = getattr(exc, "status_code", None)
    request_id = getattr(exc, "request_id", None)
    detail = _detail(exc)
    where = f"{provider} refused to {action}"
    rid = f" (request id {request_id})" if request_id else ""
    env = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    kwargs: dict[str, Any] = {"provider": provider, "status_code": status, "request_id": request_id}
    if status in (401, 403):
        return AuthenticationError(
            f"{where}: the API key was rejected (HTTP {status}: {detail}){rid}. Check {env} "
            "or the client= you passed.",
            **kwargs,
        )
    if status == 429:
        return RateLimitError(
            f"{where}: rate limited (HTTP 429: {detail}){rid}. batchframe will wait and retry; "
            "if this persists, lower max_in_flight or try later.",
            **kwargs,
        )
    if status is not None and status >= 500:
        return ProviderUnavailableError(
            f"{where}: the service failed (HTTP {status}: {detail}){rid}. Nothing is lost: run "
            "the same call again to resume.",
            **kwargs,
        )
    if status is not None:
        return ProviderRequestError(f"{where}: HTTP {status}: {detail}{rid}.", **kwargs)
    # No status: connection errors, timeouts, truncated transfers.
    return ProviderUnavailableError(
        f"Could not reach {provider} to {action} ({type(exc).__name__}: {detail}). Check the "
        "network or base URL; nothing is lost: run the same call again to resume.",
        **kwargs,
    )


def _detail(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    message = getattr(exc, "message", None) or str(exc)
    return str(message)[:500]
