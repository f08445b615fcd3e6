"""Identifiers shaped like the providers' own (random: ids must not collide across runs)."""

from __future__ import annotations

import secrets
import string

_BASE62 = string.digits + string.ascii_letters


def _base62(n: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(n))


def file_id() -> str:
    return "file-" + _base62(22)


def batch_id() -> str:
    return "batch_" + secrets.token_hex(16)


def batch_request_id() -> str:
    return "batch_req_" + secrets.token_hex(16)


def request_id() -> str:
    return secrets.token_hex(16)


def chat_id() -> str:
    return "chatcmpl-" + _base62(29)


def completion_id() -> str:
    return "cmpl-" + _base62(29)


def response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def output_item_id(prefix: str) -> str:
    return f"{prefix}_" + secrets.token_hex(24)


def call_id() -> str:
    return "call_" + _base62(24)


def message_batch_id() -> str:
    return "msgbatch_01" + _base62(22)


def message_id() -> str:
    return "msg_01" + _base62(22)


def tool_use_id() -> str:
    return "toolu_01" + _base62(22)


def anthropic_request_id() -> str:
    return "req_011C" + _base62(20)
