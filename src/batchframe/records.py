"""Provider-neutral records: what a job asks for and what comes back.

Requests and results travel as pyarrow tables (one row per distinct request) so the work per
row stays in columnar code; these dataclasses describe the job-level parts and the table
schemas that every provider must produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class RequestSpec:
    """Everything that is the same for every request of a job.

    ``roles`` gives the role of each message part; the request table has one string column
    per part (``part0``, ``part1``, ...). ``params`` are passed through to the request body
    after the provider has checked them.
    """

    provider: str
    model: str
    roles: tuple[Role, ...]
    params: dict[str, Any] = field(default_factory=dict)
    endpoint: str | None = None  # OpenAI's batch endpoint; None for Anthropic
    response_format: ResponseFormat | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "roles": list(self.roles),
            "params": self.params,
            "endpoint": self.endpoint,
            "response_format": None
            if self.response_format is None
            else self.response_format.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestSpec:
        rf = data.get("response_format")
        return cls(
            provider=data["provider"],
            model=data["model"],
            roles=tuple(data["roles"]),
            params=dict(data.get("params") or {}),
            endpoint=data.get("endpoint"),
            response_format=None if rf is None else ResponseFormat.from_json(rf),
        )


@dataclass(frozen=True)
class ResponseFormat:
    """A structured answer: a JSON schema the provider is asked to follow.

    ``kind`` is "choices" (an enum wrapped in an object with one ``label`` field) or
    "schema" (a user's pydantic model or JSON schema).
    """

    kind: Literal["choices", "schema"]
    name: str
    schema: dict[str, Any]
    strict: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "schema": self.schema, "strict": self.strict}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResponseFormat:
        return cls(
            kind=data["kind"], name=data["name"], schema=data["schema"], strict=data["strict"]
        )


def part_name(i: int) -> str:
    return f"part{i}"


# Fates of one request in one attempt, as decoded from a provider's files.
OK = "ok"  # an answer (which may still be a refusal or truncated: see flags)
FAILED = "failed"  # a permanent error: the request itself is at fault
RETRY = "retry"  # a transient error or a request that never ran: submit again

RESULT_SCHEMA = pa.schema(
    [
        ("key", pa.int64()),  # the request key (index into the job's request table)
        ("fate", pa.string()),  # OK | FAILED | RETRY
        ("text", pa.large_string()),  # the answer's text (also kept on parse failures)
        ("error_code", pa.string()),
        ("error_message", pa.large_string()),
        ("finish_reason", pa.string()),  # provider words: stop, length, end_turn, max_tokens...
        ("refusal", pa.large_string()),  # a refusal's text, when the model refused
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cached_tokens", pa.int64()),  # cache reads (OpenAI cached input, Anthropic reads)
        ("cache_write_tokens", pa.int64()),  # Anthropic cache creation
        ("reasoning_tokens", pa.int64()),
    ]
)

RESULT_COLUMNS = tuple(RESULT_SCHEMA.names)


def empty_results() -> pa.Table:
    return RESULT_SCHEMA.empty_table()
