"""The fast paths give exactly what the plain paths give, on odd input as well as tidy input.

decode: pyarrow's JSON reader over blocks of lines against orjson line by line. Nothing here
is timed; benchmarks/ measures speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchframe.providers import decode, openai
from batchframe.providers.openai_fast import FAST_PATH, RETRY_STATUS


def chat(key: str, content: object = "positive", **extra: object) -> dict[str, object]:
    message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    message.update(extra.pop("message", {}))  # type: ignore[arg-type]
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    body.update(extra)
    return {
        "id": f"batch_req_{key}",
        "custom_id": key,
        "response": {"status_code": 200, "request_id": "x", "body": body},
        "error": None,
    }


def failed(key: object, status: object, error: object = None) -> dict[str, object]:
    body = {"error": error} if error is not None else {}
    return {"custom_id": key, "response": {"status_code": status, "body": body}, "error": None}


ERROR = {"message": "bad", "type": "invalid_request_error", "param": None, "code": "bad_param"}

# Each a complete line (bytes, without the newline): tidy ones and every odd one we know of.
ODD_LINES: list[bytes] = [
    json.dumps(chat("r0")).encode(),
    json.dumps(chat("r1", content='naïve "quoted" \\ 日本語 🙂\n')).encode(),
    json.dumps(chat("r2", content="")).encode(),
    json.dumps(
        chat("r3", content=None, message={"tool_calls": [{"function": {"arguments": "{}"}}]})
    ).encode(),
    json.dumps(chat("r4", content=None, message={"tool_calls": []})).encode(),
    json.dumps(chat("r5", content=None, message={"refusal": "no"})).encode(),
    json.dumps(chat("r6", choices=[])).encode(),
    json.dumps(chat("r7", choices=None)).encode(),
    json.dumps(chat("r8", usage=None)).encode(),
    json.dumps(chat("r9", choices=[{"message": None, "finish_reason": "length"}])).encode(),
    json.dumps(chat("r10", choices=[None])).encode(),
    json.dumps(chat("r0")).encode(),  # a duplicate
    json.dumps(chat("unknown-id")).encode(),
    json.dumps(chat("r007")).encode(),
    json.dumps(chat("r1234567890123456789")).encode(),
    json.dumps(chat("r12\n")).encode(),
    json.dumps(failed("r11", 400, ERROR)).encode(),
    json.dumps(failed("r12", 400, {**ERROR, "code": None})).encode(),
    json.dumps(failed("r13", 400, {**ERROR, "code": "", "type": ""})).encode(),
    json.dumps(failed("r14", 500, {"message": "", "code": None})).encode(),
    json.dumps(failed("r15", 429)).encode(),
    json.dumps(failed("r16", 408, ERROR)).encode(),
    json.dumps(failed("r17", 0)).encode(),
    json.dumps(failed("r18", -3)).encode(),
    json.dumps(failed("r19", 302, ERROR)).encode(),
    json.dumps(
        {
            "custom_id": "r20",
            "response": {"status_code": 0, "request_id": "", "body": {}},
            "error": None,
        }
    ).encode(),
    json.dumps(
        {
            "custom_id": "r21",
            "response": None,
            "error": {"code": "batch_expired", "message": "expired"},
        }
    ).encode(),
    json.dumps(
        {"custom_id": "r22", "response": None, "error": {"code": "", "message": ""}}
    ).encode(),
    json.dumps({"custom_id": "r23", "response": None, "error": None}).encode(),
    json.dumps({"custom_id": "r24"}).encode(),
    json.dumps({"custom_id": "r25", "response": {}}).encode(),
    json.dumps({"custom_id": "r26", "response": {"body": {"choices": []}}}).encode(),
    json.dumps({"custom_id": "r27", "response": {"status_code": None}}).encode(),
    json.dumps({"custom_id": None, "response": {"status_code": 200, "body": {}}}).encode(),
    json.dumps({"response": {"status_code": 200, "body": {}}}).encode(),
    json.dumps({"custom_id": "r28", "response": {"status_code": 200, "body": None}}).encode(),
    json.dumps(
        {
            "custom_id": "r29",
            "response": {
                "status_code": 200,
                "body": {
                    "object": "response",
                    "output": [
                        {"type": "message", "content": [{"type": "output_text", "text": "hi"}]}
                    ],
                    "usage": {"input_tokens": 3, "output_tokens": 1},
                },
            },
        }
    ).encode(),
    json.dumps(
        {
            "custom_id": "r30",
            "response": {
                "status_code": 200,
                "body": {"output": None, "choices": [{"message": {"content": "x"}}]},
            },
        }
    ).encode(),
    json.dumps(chat("r31", content='the word "output" inside an answer')).encode(),
    json.dumps(chat("r55", output=[])).encode(),  # an output list: read as a Responses body
    json.dumps(chat("r56", output=None)).encode(),
    json.dumps(chat("r57", output="not a list")).encode(),
    json.dumps(chat("r58", output=[1, 2])).encode(),
    json.dumps(chat("r32", content="NaN and Infinity as words")).encode(),
    json.dumps(chat("r33")).encode().replace(b'"chatcmpl-1"', b"NaN"),
    json.dumps(chat("r34")).encode().replace(b'"chatcmpl-1"', b"-Infinity"),
    json.dumps(chat("r35")).encode().replace(b'"chatcmpl-1"', b"[" * 1100 + b"]" * 1100),
    # Types the columns do not expect: the whole block goes line by line.
    json.dumps({"custom_id": 12, "response": None}).encode(),
    json.dumps(failed("r36", "200")).encode(),
    json.dumps(failed("r37", True)).encode(),
    json.dumps(failed("r38", 200.0)).encode(),
    json.dumps(chat("r39", content=["a", "list"])).encode(),
    json.dumps(chat("r40", content={"re": "serialised null"})).encode(),
    json.dumps(
        {"custom_id": "r41", "response": {"status_code": 500, "body": {"error": {}}}, "error": {}}
    ).encode(),
    json.dumps(chat("r42", usage={"prompt_tokens": True})).encode(),
    json.dumps(chat("r43", usage={"prompt_tokens": 2**70})).encode(),
    b'{"custom_id": "r44", "custom_id": "r45", "response": null}',
    # Broken lines.
    b'{"custom_id": "r46", "response": {"status_code": 200, "bo',
    b'{"custom_id": "r47"} {"custom_id": "r48"}',
    b"null",
    b"[1, 2]",
    b'"just a string"',
    b"   ",
    b"",
    b'  {"custom_id": "r49", "response": null}',
    b'{"custom_id": "r50", "z": "\xff"}',
    b'\xef\xbb\xbf{"custom_id": "r51"}',
    b'{"custom_id": "r52", "z": "\\ud800"}',
    b'{"custom_id": "r53", "z": 1e999}',
    b'{"custom_id": "r54"}\r',
]

TIDY = ODD_LINES[:3]


def both(tmp_path: Path, blocks: list[list[bytes]], final_newline: bool = True) -> None:
    paths = []
    for i, lines in enumerate(blocks):
        path = tmp_path / f"f{i}.jsonl"
        data = b"\n".join(lines) + (b"\n" if final_newline else b"")
        path.write_bytes(data)
        paths.append(path)
    slow = decode.decode_files(paths, openai.decode_line, "unreadable_line")
    fast = decode.decode_files(paths, openai.decode_line, "unreadable_line", fast=FAST_PATH)
    assert fast.schema == slow.schema
    assert fast.to_pylist() == slow.to_pylist()


@pytest.mark.parametrize("index", range(len(ODD_LINES)))
def test_each_odd_line_among_tidy_ones(tmp_path: Path, index: int) -> None:
    both(tmp_path, [[*TIDY, ODD_LINES[index], *TIDY]])
    both(tmp_path, [[ODD_LINES[index]]], final_newline=False)


def test_all_odd_lines_together_and_small_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both(tmp_path, [ODD_LINES, TIDY, []])
    monkeypatch.setattr(decode, "BLOCK_BYTES", 256)  # many blocks, lines longer than a block
    both(tmp_path, [ODD_LINES * 2, TIDY])
    both(tmp_path, [ODD_LINES], final_newline=False)


def test_retry_statuses_agree() -> None:
    assert set(RETRY_STATUS) | {0} == openai._RETRY_STATUS


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    picks=st.lists(st.integers(0, len(ODD_LINES) - 1), min_size=1, max_size=40),
    block=st.sampled_from([64, 300, 4096, 1 << 20]),
    final_newline=st.booleans(),
)
def test_random_mixes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    picks: list[int],
    block: int,
    final_newline: bool,
) -> None:
    monkeypatch.setattr(decode, "BLOCK_BYTES", block)
    both(tmp_path, [[ODD_LINES[i] for i in picks]], final_newline=final_newline)


def test_recorded_shapes(tmp_path: Path) -> None:
    """Shapes from real files: a reasoning model's usage, an embeddings-style error, R's {}."""
    lines = [
        json.dumps(chat("r1", service_tier="default", system_fingerprint="fp")).encode(),
        b'{"id": "batch_req_1", "custom_id": "r2", "response": {"status_code": 400, "request_id": '
        b'"x", "body": {"error": {"message": "too long", "type": "invalid_request_error", '
        b'"param": null, "code": null}}}, "error": null}',
        b'{"custom_id": "r3", "response": {"status_code": 200, "request_id": {}, "body": '
        b'{"choices": [{"message": {"content": "x", "refusal": {}}, "finish_reason": "stop"}]}}, '
        b'"error": {}}',
    ]
    both(tmp_path, [lines])
    table = decode.decode_files([tmp_path / "f0.jsonl"], openai.decode_line, "x", fast=FAST_PATH)
    assert isinstance(table, pa.Table)


def test_tidy_files_take_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    original = decode._decode_one

    def counting(raw: bytes, *args: object) -> decode.Row:
        calls.append(raw)
        return original(raw, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(decode, "_decode_one", counting)
    lines = [json.dumps(chat(f"r{i}")).encode() for i in range(50)]
    lines += [json.dumps(failed(f"r{i}", 400, ERROR)).encode() for i in range(50, 60)]
    lines.append(json.dumps({"custom_id": "r60", "response": {}}).encode())  # ambiguous
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    table = decode.decode_files([path], openai.decode_line, "x", fast=FAST_PATH)
    assert table.num_rows == 61
    assert calls == [lines[-1] + b"\n"]  # only the ambiguous line went line by line
