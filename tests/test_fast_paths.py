"""The fast paths give exactly what the plain paths give, on odd input as well as tidy input.

decode: the C scanner and pyarrow's JSON reader, each over blocks of lines, against orjson
line by line. Nothing here is timed; benchmarks/ measures speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchframe.providers import decode, openai
from batchframe.providers.openai_fast import (
    FAST_PATH,
    PYARROW_PATH,
    RETRY_STATUS,
    SCANNER_PATH,
)


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
    # What the C scanner reads by hand: escapes, numbers, nesting, keys, UTF-8, whitespace.
    json.dumps(chat("r59", content="\U0001f642 \x00 \x7f / \b\f\t")).encode(),
    json.dumps(chat("r60", content="\U0001f642 é \x01"), ensure_ascii=False).encode(),
    json.dumps(chat("r61", content="x" * 70_000)).encode(),
    b'{"custom_id": "r62", "response": {"status_code": 200, "body": {"choices": [{"message": '
    b'{"content": "\\ud83d\\ude00 \\u00e9 \\/ \\u0000"}}]}}}',
    b'{"custom_id": "r63", "response": {"status_code": 200, "body": {"choices": [{"message": '
    b'{"content": "\\ude00 a lone low surrogate"}}]}}}',
    b'{"custom_id": "r64", "response": {"status_code": 200, "body": {"choices": [{"message": '
    b'{"content": "\\ud83d\\u0041 a high surrogate, then no low one"}}]}}}',
    b'{"custom_id": "r65", "z": "\\x41"}',
    b'{"custom_id": "r66", "z": "\xc0\xaf overlong"}',
    b'{"custom_id": "r67", "z": "\xed\xa0\x80 a surrogate in UTF-8"}',
    b'{"custom_id": "r68", "z": "\xf4\x90\x80\x80 past U+10FFFF"}',
    b'{"custom_id": "r69", "z": "cut \xe6\x97"}',
    b'{"custom_id": "r70", "z": "a raw \x1f control"}',
    json.dumps(chat("r71", logprobs=[1e5, 1.5e-7, -0.0, 2e300, 12345678901234567890])).encode(),
    json.dumps(chat("r72", usage={"prompt_tokens": 123456789012345678})).encode(),
    json.dumps(chat("r73", usage={"prompt_tokens": 1234567890123456789})).encode(),
    json.dumps(chat("r74", usage={"prompt_tokens": -5, "completion_tokens": 1e2})).encode(),
    b'{"custom_id": "r75", "z": 1e-400}',
    b'{"custom_id": "r76", "z": 0123}',
    b'{"custom_id": "r77", "z": -}',
    b'{"custom_id": "r78", "z": 1.}',
    b'{"custom_id": "r79", "z": .5}',
    b'{"custom_id": "r80", "z": 1,}',
    b'{"custom_id": "r81" "z": 1}',
    b'{"custom_id": "r82", "z": [1 2]}',
    b'{"custom_id": "r83", "z": nul}',
    b'{"custom_id": "r84", "z": tru}',
    b'{"custom_id": "r85"}x',
    b'{"custom_id": "r86"}{}',
    b"{}",
    b'\t{ "custom_id" :\t"r87" , "response" : null }\r\r',
    b"\x0b\x0c \t",
    b'\x0c{"custom_id": "r88"}',
    b'\x1c{"custom_id": "r89"}',
    b'{"custom\\u005fid": "r90", "response": null}',
    b'{"custom_id": "r91", "response": {"status_code": 200, "status_code": 400}}',
    b'{"custom_id": "r92", "response": {"status_code": 200, "body": {"choices": [{"message": '
    b'{"content": "a", "content": "b"}}]}}}',
    json.dumps(chat("r93", choices=[1])).encode(),
    json.dumps(chat("r94", choices=[None, 5, {"message": 3}])).encode(),
    json.dumps(chat("r95", choices=[{"message": {"content": "x"}}, {"message": [1]}])).encode(),
    json.dumps(chat("r96", content=None, message={"tool_calls": "x"})).encode(),
    json.dumps(chat("r97", content=7)).encode(),
    json.dumps(chat("r98", choices={"0": {}})).encode(),
    json.dumps(failed("r99", 1e2)).encode(),
    json.dumps(failed("r100", 400, {"message": 5, "code": 17})).encode(),
    json.dumps({"custom_id": "r101", "response": None, "error": {"code": 3}}).encode(),
    json.dumps({"custom_id": "r102", "response": "ran", "error": None}).encode(),
    json.dumps({"custom_id": "r103", "response": {"status_code": 200, "body": []}}).encode(),
    json.dumps({"custom_id": "r104", "output": [1], "response": None}).encode(),
    json.dumps(chat("r105", message={"output": [1]})).encode(),
    json.dumps(chat("r106", usage={"prompt_tokens_details": 5})).encode(),
    b'{"custom_id": "r107", "deep": ' + b"[" * 600 + b"]" * 600 + b"}",
    b'{"custom_id": "r108", "deep": ' + b'{"a": ' * 1030 + b"1" + b"}" * 1030 + b"}",
    json.dumps({"custom_id": "r109", "ключ": "значение"}, ensure_ascii=False).encode(),
    json.dumps({"custom_id": "r110", "a": {"b": [True, False, None, {"c": "d"}]}}).encode(),
]

TIDY = ODD_LINES[:3]


@pytest.fixture(params=["scanner", "pyarrow"])
def engine(request: pytest.FixtureRequest) -> decode.FastPath:
    """Each fast path in turn: the C scanner, and pyarrow's JSON reader (its fallback)."""
    if request.param == "pyarrow":
        return PYARROW_PATH
    if SCANNER_PATH is None:
        # tests/test_native.py fails when it could have been built (a compiler is here).
        pytest.skip("the C scanner is not built")
    return SCANNER_PATH


def both(
    tmp_path: Path,
    blocks: list[list[bytes]],
    final_newline: bool = True,
    engine: decode.FastPath = FAST_PATH,
) -> None:
    paths = []
    for i, lines in enumerate(blocks):
        path = tmp_path / f"f{i}.jsonl"
        data = b"\n".join(lines) + (b"\n" if final_newline else b"")
        path.write_bytes(data)
        paths.append(path)
    slow = decode.decode_files(paths, openai.decode_line, "unreadable_line")
    fast = decode.decode_files(paths, openai.decode_line, "unreadable_line", fast=engine)
    assert fast.schema == slow.schema
    assert fast.to_pylist() == slow.to_pylist()


@pytest.mark.parametrize("index", range(len(ODD_LINES)))
def test_each_odd_line_among_tidy_ones(tmp_path: Path, index: int, engine: decode.FastPath) -> None:
    both(tmp_path, [[*TIDY, ODD_LINES[index], *TIDY]], engine=engine)
    both(tmp_path, [[ODD_LINES[index]]], final_newline=False, engine=engine)


def test_all_odd_lines_together_and_small_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: decode.FastPath
) -> None:
    both(tmp_path, [ODD_LINES, TIDY, []], engine=engine)
    monkeypatch.setattr(decode, "BLOCK_BYTES", 256)  # many blocks, lines longer than a block
    both(tmp_path, [ODD_LINES * 2, TIDY], engine=engine)
    both(tmp_path, [ODD_LINES], final_newline=False, engine=engine)


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
    engine: decode.FastPath,
) -> None:
    monkeypatch.setattr(decode, "BLOCK_BYTES", block)
    both(tmp_path, [[ODD_LINES[i] for i in picks]], final_newline=final_newline, engine=engine)


def test_recorded_shapes(tmp_path: Path, engine: decode.FastPath) -> None:
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
    both(tmp_path, [lines], engine=engine)
    table = decode.decode_files([tmp_path / "f0.jsonl"], openai.decode_line, "x", fast=engine)
    assert isinstance(table, pa.Table)


def test_tidy_files_take_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: decode.FastPath
) -> None:
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
    table = decode.decode_files([path], openai.decode_line, "x", fast=engine)
    assert table.num_rows == 61
    assert calls == [lines[-1] + b"\n"]  # only the ambiguous line went line by line


# Bytes that matter to a JSON scanner, for mutating lines.
_JSON_BYTES = list(b'{}[]":,\\ntfu0123456789.eE+- \t\r\x00\x1f\x7f\x80\xbf\xc3\xe2\xed\xf0\xff')


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_lines(tmp_path: Path, engine: decode.FastPath, data: st.DataObject) -> None:
    """Lines damaged at random byte by byte still decode exactly as orjson reads them."""
    lines = []
    for _ in range(data.draw(st.integers(1, 6))):
        line = bytearray(data.draw(st.sampled_from(ODD_LINES[:60])))
        for _ in range(data.draw(st.integers(0, 4))):
            at = data.draw(st.integers(0, len(line)))
            byte = data.draw(st.sampled_from(_JSON_BYTES))
            edit = data.draw(st.sampled_from(["insert", "replace", "delete"]))
            if edit == "insert" or at == len(line):
                line[at:at] = bytes([byte])
            elif edit == "replace":
                line[at] = byte
            else:
                del line[at]
        lines.append(bytes(line).replace(b"\n", b" "))
    both(tmp_path, [lines], final_newline=data.draw(st.booleans()), engine=engine)


def test_without_the_scanner_pyarrow_decodes_the_same(tmp_path: Path) -> None:
    """Where the extension was not built, FAST_PATH falls back to pyarrow's reader, same rows."""
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"\n".join(ODD_LINES) + b"\n")
    script = f"""
import sys
sys.modules["batchframe.providers._openai_scan"] = None  # as if it was never built
from pathlib import Path
from batchframe.providers import openai_fast
from batchframe.providers.openai import OpenAIProvider
assert openai_fast.SCANNER_PATH is None and openai_fast.FAST_PATH is openai_fast.PYARROW_PATH
table = OpenAIProvider().decode([Path({str(path)!r})])
sys.stdout.write(repr(table.to_pylist()))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    expected = openai.OpenAIProvider().decode([path]).to_pylist()
    assert done.stdout == repr(expected)
