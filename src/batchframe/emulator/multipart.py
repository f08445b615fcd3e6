"""multipart/form-data bodies (file uploads), parsed with the stdlib `email` package."""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass

from .errors import ApiError


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def parse(content_type: str, body: bytes) -> dict[str, Part]:
    """Parts by field name (a repeated name keeps the last part)."""
    if (
        not content_type.lower().startswith("multipart/form-data")
        or "boundary=" not in content_type
    ):
        raise ApiError(400, "Expected a multipart/form-data body with a boundary.")
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ApiError(400, "The multipart body could not be parsed.")
    parts: dict[str, Part] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        parts[name] = Part(name, part.get_filename(), part.get_content_type(), data)
    return parts
