"""Structured answers (issue 8): choices= labels and schema= records, with both SDKs."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, Field, field_validator

import batchframe
from batchframe.emulator import Emulator
from batchframe.records import ResponseFormat
from batchframe.structured import (
    choices_format,
    parse_answers,
    schema_columns,
    schema_format,
    strictify,
    validate,
)

LABELS = ["billing", "bug", "shipping", "account", "other"]
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


def h(text: str) -> int:
    """The emulator's documented stable hash of the last user message."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)


def tickets(n: int = 200) -> pd.DataFrame:
    with (resources.files("batchframe") / "data" / "tickets.csv").open(encoding="utf-8") as f:
        base = pd.read_csv(f)
    rows = base.iloc[np.arange(n) % len(base)].reset_index(drop=True)
    rows["body"] = [f"{b} (copy {i // len(base)})" for i, b in enumerate(rows["body"])]
    rows.index = pd.Index([f"T-{i:04d}" for i in range(n)], name="ticket")
    return rows


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(provider: str, openai_client: Any, anthropic_client: Any) -> Any:
    return openai_client if provider == "openai" else anthropic_client


def sent_bodies(emulator: Emulator, provider: str, client: Any) -> list[dict[str, Any]]:
    """Every request body the emulator received (OpenAI: from the uploaded files)."""
    if provider == "openai":
        bodies = []
        for f in client.files.list(purpose="batch"):
            for line in client.files.content(f.id).text.split("\n"):
                if line:
                    bodies.append(json.loads(line)["body"])
        return bodies
    return [row.body for b in emulator._state.batches.values() for row in b.rows]


# -- choices= --------------------------------------------------------------------------------


def test_choices_over_200_tickets(emulator: Emulator, provider: str, client: Any) -> None:
    df = tickets(200)
    out = df.llm.batch(
        "Subject: {subject}\n\n{body}",
        model=MODELS[provider],
        client=client,
        system="Label the support ticket.",
        choices=LABELS,
        output="label",
    )
    assert isinstance(out["label"].dtype, pd.CategoricalDtype)
    assert list(out["label"].cat.categories) == LABELS
    assert out["label"].notna().all() and out["label_error"].isna().all()
    assert "label_raw" not in out.columns
    expected = [
        LABELS[h(f"Subject: {s}\n\n{b}") % len(LABELS)] for s, b in zip(df.subject, df.body)
    ]
    assert out["label"].tolist() == expected
    pd.testing.assert_frame_equal(out[df.columns], df)

    body = sent_bodies(emulator, provider, client)[0]
    enum_schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": LABELS}},
        "required": ["label"],
        "additionalProperties": False,
    }
    if provider == "openai":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "choice", "schema": enum_schema, "strict": True},
        }
    else:
        assert body["output_config"] == {"format": {"type": "json_schema", "schema": enum_schema}}


def test_choices_on_the_responses_endpoint(emulator: Emulator, openai_client: Any) -> None:
    df = tickets(10)
    out = df.llm.batch(
        "{subject}",
        model="gpt-4o-mini",
        client=openai_client,
        choices=LABELS,
        endpoint="/v1/responses",
    )
    assert out["output"].tolist() == [LABELS[h(s) % len(LABELS)] for s in df.subject]
    body = sent_bodies(emulator, "openai", openai_client)[0]
    assert body["text"]["format"]["type"] == "json_schema"
    assert body["text"]["format"]["strict"] is True


def test_choices_accept_any_iterable() -> None:
    rf = choices_format(np.array(["a", "b"]))
    assert rf.schema["properties"]["label"]["enum"] == ["a", "b"]
    rf = choices_format(pd.Index(["x"]))
    assert rf.schema["properties"]["label"]["enum"] == ["x"]


# -- schema= ---------------------------------------------------------------------------------


class Priority(StrEnum):
    low = "low"
    high = "high"


class Ticket(BaseModel):
    product: str
    urgency: int = Field(ge=1, le=5)
    refund: bool


def test_pydantic_schema_gives_three_typed_columns(
    emulator: Emulator, provider: str, client: Any
) -> None:
    df = tickets(30)
    out = df.llm.batch("{body}", model=MODELS[provider], client=client, schema=Ticket, output="t")
    assert list(out.columns) == [*df.columns, "t.product", "t.urgency", "t.refund", "t_error"]
    assert out["t.product"].dtype == "string"
    assert out["t.urgency"].dtype == "Int64"
    assert out["t.refund"].dtype == "boolean"
    assert out["t_error"].isna().all()
    hashes = [h(b) for b in df.body]
    assert out["t.product"].tolist() == [("echo: " + b)[:64] for b in df.body]
    assert out["t.urgency"].tolist() == [1 + x % 5 for x in hashes]
    assert out["t.refund"].tolist() == [x % 2 == 0 for x in hashes]

    body = sent_bodies(emulator, provider, client)[0]
    expected_schema = {
        "properties": {
            "product": {"title": "Product", "type": "string"},
            "urgency": {"maximum": 5, "minimum": 1, "title": "Urgency", "type": "integer"},
            "refund": {"title": "Refund", "type": "boolean"},
        },
        "required": ["product", "urgency", "refund"],
        "title": "Ticket",
        "type": "object",
        "additionalProperties": False,
    }
    if provider == "openai":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "Ticket", "schema": expected_schema, "strict": True},
        }
    else:
        assert body["output_config"] == {
            "format": {"type": "json_schema", "schema": expected_schema}
        }


def test_prefix_names_the_columns(emulator: Emulator, openai_client: Any) -> None:
    df = tickets(5)
    out = df.llm.batch(
        "{body}", model="gpt-4o-mini", client=openai_client, schema=Ticket, prefix=""
    )
    assert {"product", "urgency", "refund", "output_error"} <= set(out.columns)
    out = df.llm.batch(
        "{body}", model="gpt-4o-mini", client=openai_client, schema=Ticket, prefix="ticket_"
    )
    assert {"ticket_product", "ticket_urgency", "ticket_refund"} <= set(out.columns)


class Address(BaseModel):
    city: str
    zip_code: int


class Order(BaseModel):
    """Nested objects are flattened; lists stay whole; enums become Categoricals."""

    customer: str
    address: Address
    items: list[str]
    priority: Priority
    note: str | None = None
    score: float = 0.5


def test_nested_fields_are_flattened(emulator: Emulator, provider: str, client: Any) -> None:
    df = tickets(6)
    out = df.llm.batch("{body}", model=MODELS[provider], client=client, schema=Order, output="o")
    new = [c for c in out.columns if c not in df.columns]
    assert new == [
        "o.customer",
        "o.address.city",
        "o.address.zip_code",
        "o.items",
        "o.priority",
        "o.note",
        "o.score",
        "o_error",
    ]
    assert out["o_error"].isna().all(), out["o_error"].tolist()
    assert out["o.address.city"].dtype == "string"
    assert out["o.address.zip_code"].dtype == "Int64"
    assert out["o.items"].dtype == object and all(isinstance(v, list) for v in out["o.items"])
    assert list(out["o.priority"].cat.categories) == ["low", "high"]
    assert out["o.score"].dtype == "Float64"
    assert out["o.note"].dtype == "string"


def test_json_schema_dict(emulator: Emulator, provider: str, client: Any) -> None:
    schema = {
        "title": "sentiment analysis",
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["pos", "neg", "neutral"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "topics": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["sentiment", "confidence"],
    }
    df = tickets(8)
    out = df.llm.batch("{body}", model=MODELS[provider], client=client, schema=schema, output="s")
    assert out["s_error"].isna().all()
    assert list(out["s.sentiment"].cat.categories) == ["pos", "neg", "neutral"]
    assert out["s.sentiment"].tolist() == [["pos", "neg", "neutral"][h(b) % 3] for b in df.body]
    assert out["s.confidence"].dtype == "Float64"
    body = sent_bodies(emulator, provider, client)[0]
    if provider == "openai":
        fmt = body["response_format"]["json_schema"]
        assert fmt["name"] == "sentiment_analysis"  # made safe for the API's name rule
        assert fmt["strict"] is True
        sent = fmt["schema"]
    else:
        sent = body["output_config"]["format"]["schema"]
    # Strict shape: closed object, every property required, the optional one nullable.
    assert sent["required"] == ["sentiment", "confidence", "topics"]
    assert sent["additionalProperties"] is False
    assert sent["properties"]["topics"] == {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]
    }


# -- unusable answers ------------------------------------------------------------------------


def bad_answers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "body": [
                "a normal ticket",
                "please EMU:malformed this",
                "EMU:refuse to answer",
                "EMU:empty reply",
                "another normal one",
            ]
        },
        index=pd.Index(["ok1", "malformed", "refused", "empty", "ok2"]),
    )


@pytest.mark.parametrize("kind", ["choices", "schema"])
def test_malformed_refused_and_empty_answers_are_errors(
    emulator: Emulator, provider: str, client: Any, kind: str
) -> None:
    df = bad_answers()
    structure: dict[str, Any] = {"choices": LABELS} if kind == "choices" else {"schema": Ticket}
    out = df.llm.batch("{body}", model=MODELS[provider], client=client, output="x", **structure)
    value = "x" if kind == "choices" else "x.product"
    errors, raw = out["x_error"], out["x_raw"]

    for ok in ("ok1", "ok2"):
        assert pd.notna(out.loc[ok, value]) and pd.isna(errors[ok]) and pd.isna(raw[ok])

    assert errors["malformed"].startswith("invalid_json: the answer is not valid JSON")
    assert pd.isna(out.loc["malformed", value])
    assert raw["malformed"].startswith('{"')  # the broken text is kept
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw["malformed"])

    assert errors["refused"].startswith("refusal: the model declined to answer")
    assert pd.isna(out.loc["refused", value])
    assert pd.notna(raw["refused"])
    if provider == "openai":  # the refusal's own words are kept
        assert raw["refused"] == "I'm sorry, but I can't help with that."
        assert errors["refused"].endswith("I'm sorry, but I can't help with that.")

    assert errors["empty"] == "empty: the model returned no text"
    assert raw["empty"] == ""
    # Never a value and an error together, never neither.
    filled = out[value].notna().to_numpy()
    assert (filled ^ errors.notna().to_numpy()).all()


def test_truncated_answers_are_errors(emulator: Emulator, provider: str, client: Any) -> None:
    df = tickets(4)
    out = df.llm.batch("{body}", model=MODELS[provider], client=client, schema=Ticket, max_tokens=3)
    reason = "length" if provider == "openai" else "max_tokens"
    assert (
        out["output_error"].tolist()
        == [f"truncated: the answer was cut off (finish reason {reason}); raise max_tokens"] * 4
    )
    assert out["output.product"].isna().all()
    assert out["output_raw"].str.startswith('{"').all()


def test_truncated_plain_text_is_an_error(emulator: Emulator, openai_client: Any) -> None:
    df = pd.DataFrame({"t": ["one two three four five six seven eight nine ten"]})
    out = df.llm.batch("{t}", model="gpt-4o-mini", client=openai_client, max_tokens=2)
    assert out["output"].isna().all()
    assert out["output_error"].str.startswith("truncated:").all()
    assert out["output_raw"].notna().all()


class Strict(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{3}$")
    n: int

    @field_validator("n")
    @classmethod
    def small(cls, v: int) -> int:
        if v > 1000:
            raise ValueError("n must be at most 1000")
        return v


def test_answers_that_fail_validation_keep_their_raw_text(
    emulator: Emulator, openai_client: Any
) -> None:
    df = pd.DataFrame({"t": ["AAA", "abc"]})
    out = df.llm.batch("{t}", model="gpt-4o-mini", client=openai_client, schema=Strict)
    # The emulator ignores `pattern`, so its "echo: ..." codes fail the model's validation.
    assert out["output_error"].str.startswith("invalid_schema: code: String should match").all()
    assert out["output.code"].isna().all() and out["output.n"].isna().all()
    raw = [json.loads(r) for r in out["output_raw"]]
    assert [r["code"] for r in raw] == ["echo: AAA", "echo: abc"]

    # A new handle (as from another process, without the pydantic class) agrees.
    [job_id] = batchframe.jobs()["job_id"].tolist()
    again = batchframe.attach(job_id, client=openai_client, progress=False).result()
    assert again["output_error"].str.contains("should match the pattern").all()
    assert again["output_raw"].tolist() == out["output_raw"].tolist()


# -- units: strict schemas, columns, validation ----------------------------------------------


def test_strictify_makes_optional_fields_nullable_and_drops_defaults() -> None:
    schema, strict = strictify(Order.model_json_schema())
    assert strict is True
    props = schema["properties"]
    assert schema["required"] == list(props)
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Note"}
    assert props["score"] == {"anyOf": [{"title": "Score", "type": "number"}, {"type": "null"}]}
    assert schema["$defs"]["Address"]["additionalProperties"] is False
    assert "default" not in json.dumps(schema)


@pytest.mark.parametrize(
    ("schema", "strict"),
    [
        ({"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}}}, False),
        ({"type": "object", "properties": {"a": {"type": "object"}}}, False),
        (
            {
                "type": "object",
                "properties": {
                    "a": {"type": "object", "additionalProperties": {"type": "integer"}}
                },
            },
            False,
        ),
        ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, False),
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}, True),
        ({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}}, True),
    ],
)
def test_strict_mode_only_where_the_schema_allows(schema: dict[str, Any], strict: bool) -> None:
    rf, _ = schema_format(schema)
    assert rf.strict is strict
    if strict:
        assert "oneOf" not in json.dumps(rf.schema)


def test_ref_with_siblings_is_inlined() -> None:
    class Outer(BaseModel):
        where: Address = Field(description="where it ships")

    schema, strict = strictify(Outer.model_json_schema())
    assert strict
    where = schema["properties"]["where"]
    assert "$ref" not in where
    assert where["description"] == "where it ships"
    assert where["properties"]["city"] == {"title": "City", "type": "string"}


def test_recursive_models_stay_objects() -> None:
    class Node(BaseModel):
        name: str
        parent: Node | None = None

    rf, model = schema_format(Node)
    assert rf.schema["type"] == "object"  # the root reference is inlined for the providers
    assert [f.column for f in schema_columns(rf, "n")] == ["n.name", "n.parent"]
    answer = {"name": "leaf", "parent": {"name": "root", "parent": None}}
    for m in (model, None):
        values, errors = parse_answers(pd.Series([json.dumps(answer)]), rf, "n", model=m)
        assert errors.isna().all()
        assert values["n.parent"].tolist() == [{"name": "root", "parent": None}]


def test_pydantic_defaults_apply_when_the_model_sends_null() -> None:
    rf, model = schema_format(Order)
    answer = {
        "customer": "c",
        "address": {"city": "Oslo", "zip_code": 150},
        "items": [],
        "priority": "high",
        "note": None,
        "score": None,
    }
    values, errors = parse_answers(pd.Series([json.dumps(answer)]), rf, "o", model=model)
    assert errors.isna().all()
    assert values["o.score"].tolist() == [0.5]
    assert values["o.note"].isna().all()
    assert values["o.address.city"].tolist() == ["Oslo"]


def test_pydantic_errors_are_precise() -> None:
    rf, model = schema_format(Ticket)
    _, errors = parse_answers(
        pd.Series(['{"product": "p", "urgency": 9, "refund": true}']), rf, "t", model=model
    )
    assert errors[0] == ("invalid_schema: urgency: Input should be less than or equal to 5 (got 9)")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            {
                "customer": "c",
                "address": {"city": "x", "zip_code": 1},
                "items": [],
                "priority": "low",
                "note": None,
                "score": 1,
            },
            None,
        ),
        ({"customer": "c"}, "missing field(s)"),
        (
            {
                "customer": 1,
                "address": {"city": "x", "zip_code": 1},
                "items": [],
                "priority": "low",
                "note": None,
                "score": 1,
            },
            "field 'customer' should be string, got 1",
        ),
        (
            {
                "customer": "c",
                "address": {"city": "x", "zip_code": "1"},
                "items": [],
                "priority": "low",
                "note": None,
                "score": 1,
            },
            "field 'address.zip_code' should be integer, got '1'",
        ),
        (
            {
                "customer": "c",
                "address": {"city": "x", "zip_code": 1},
                "items": [3],
                "priority": "low",
                "note": None,
                "score": 1,
            },
            "field 'items[0]' should be string",
        ),
        (
            {
                "customer": "c",
                "address": {"city": "x", "zip_code": 1},
                "items": [],
                "priority": "mid",
                "note": None,
                "score": 1,
            },
            "should be one of ['low', 'high']",
        ),
        (
            {
                "customer": "c",
                "address": {"city": "x", "zip_code": 1},
                "items": [],
                "priority": "low",
                "note": None,
                "score": True,
            },
            "field 'score' matches none",
        ),
        (
            {
                "customer": "c",
                "address": {"city": "x", "zip_code": 1},
                "items": [],
                "priority": "low",
                "note": None,
                "score": 1,
                "extra": 1,
            },
            "unexpected field(s) ['extra']",
        ),
        ([1, 2], "the answer should be object"),
    ],
)
def test_json_schema_validation(value: Any, problem: str | None) -> None:
    rf, _ = schema_format(Order)
    found = validate(value, rf.schema)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_invalid_choice_is_an_error() -> None:
    rf = choices_format(["a", "b"])
    values, errors = parse_answers(
        pd.Series(['{"label": "c"}', '"a"', "b", '{"label": "a"}', None]), rf, "x"
    )
    assert values["x"].tolist()[:4] == [np.nan, "a", "b", "a"]
    assert errors[0] == "invalid_choice: 'c' is not one of the choices ['a', 'b']"
    assert errors[1:].isna().all()
    assert isinstance(values["x"].dtype, pd.CategoricalDtype)


def test_no_format_passes_text_through() -> None:
    values, errors = parse_answers(pd.Series(["hi", None]), None, "out")
    assert values["out"].tolist() == ["hi", pd.NA]
    assert errors.isna().all()


def test_response_format_round_trips_through_json() -> None:
    rf, _ = schema_format(Ticket)
    assert ResponseFormat.from_json(json.loads(json.dumps(rf.to_json()))) == rf


def test_unusable_answer_kinds_at_key_level() -> None:
    """Decoded results -> error and raw text, for each way an answer can be unusable."""
    from batchframe.join import Columns, key_level
    from batchframe.outcomes import SUCCEEDED, Settled

    rows = [
        # text, finish_reason, refusal
        ('{"label": "a"}', "stop", None),
        ('{"label": "a", "x', "content_filter", None),
        ("", "refusal", "the model declined to answer"),  # Claude: no words given
        (None, "stop", "No."),  # OpenAI: content null, refusal text
        ('{"label": "zz"}', "stop", None),
    ]
    table = pd.DataFrame(
        {
            "fate": ["ok"] * len(rows),
            "text": pd.array([r[0] for r in rows], dtype="string"),
            "error_code": pd.array([None] * len(rows), dtype="string"),
            "error_message": pd.array([None] * len(rows), dtype="string"),
            "finish_reason": pd.array([r[1] for r in rows], dtype="string"),
            "refusal": pd.array([r[2] for r in rows], dtype="string"),
        },
        index=pd.RangeIndex(len(rows), name="key"),
    )
    settled = Settled(table, np.full(len(rows), SUCCEEDED, dtype=np.int8))
    values, error, raw = key_level(
        settled,
        len(rows),
        response_format=choices_format(["a", "b"]),
        columns=Columns("x"),
        unfinished=None,
    )
    assert values["x"].tolist()[0] == "a" and values["x"].isna()[1:].all()
    assert error.tolist() == [
        pd.NA,
        "content_filter: the provider's content filter withheld or cut the answer",
        "refusal: the model declined to answer",
        "refusal: the model declined to answer: No.",
        "invalid_choice: 'zz' is not one of the choices ['a', 'b']",
    ]
    assert raw.tolist() == [pd.NA, '{"label": "a", "x', "", "No.", '{"label": "zz"}']
