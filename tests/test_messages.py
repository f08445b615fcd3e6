"""Message templates: (role, template) pairs, few-shot examples, the system prompt first."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

import batchframe  # noqa: F401  (registers DataFrame.llm)
from batchframe.emulator import Emulator

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}

FEW_SHOT = [
    ("user", "Ticket from {customer}: My card was charged twice."),
    ("assistant", "billing"),
    ("user", "Ticket from {customer}: The app {{crashes}} on start."),
    ("assistant", "bug"),
    ("user", "Ticket from {customer} via {channel}: {body}"),
]


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer": ["Ana", "Kenji", "Zoë", "Ana"],
            "channel": ["email", "chat", "phone", "email"],
            "body": [
                'Refund {#12} "late"',
                "Crash\non login",
                "Wo ist mein Paket?",
                'Refund {#12} "late"',
            ],
            "team": ["payments", "mobile", "logistics", "payments"],
        },
        index=pd.Index(["a", "b", "c", "d"], name="ticket"),
    )


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def received(emulator: Emulator, provider: str, client: Any) -> list[dict[str, Any]]:
    """Request bodies as the emulator received them, in custom_id order."""
    if provider == "openai":
        lines = []
        for f in client.files.list(purpose="batch"):
            lines += [json.loads(x) for x in client.files.content(f.id).text.split("\n") if x]
        rows = [(line["custom_id"], line["body"]) for line in lines]
    else:
        rows = [(r.custom_id, r.body) for b in emulator._state.batches.values() for r in b.rows]
    return [body for _, body in sorted(rows, key=lambda r: int(r[0][1:]))]


def conversation(body: dict[str, Any], provider: str) -> list[tuple[str, str]]:
    """The (role, text) sequence of a request, system prompt included, as sent."""
    if provider == "openai":
        return [(m["role"], m["content"]) for m in body["messages"]]
    system = [("system", body["system"])] if "system" in body else []
    return system + [(m["role"], m["content"]) for m in body["messages"]]


def test_few_shot_messages_with_placeholders_everywhere(
    emulator: Emulator, provider: str, openai_client: Any, anthropic_client: Any
) -> None:
    client = openai_client if provider == "openai" else anthropic_client
    df = frame()
    out = df.llm.batch(
        FEW_SHOT,
        system="You label tickets for the {team} team. Answer with one word.",
        model=MODELS[provider],
        client=client,
        max_tokens=50,
    )
    assert out["output_error"].isna().all()
    assert out["output"].tolist() == [
        f"echo: Ticket from {c} via {ch}: {b}" for c, ch, b in zip(df.customer, df.channel, df.body)
    ]
    bodies = received(emulator, provider, client)
    assert len(bodies) == 3  # rows a and d are the same request, sent once
    for body, (_, row) in zip(bodies, df.iloc[:3].iterrows()):
        assert conversation(body, provider) == [
            ("system", f"You label tickets for the {row.team} team. Answer with one word."),
            ("user", f"Ticket from {row.customer}: My card was charged twice."),
            ("assistant", "billing"),
            ("user", f"Ticket from {row.customer}: The app {{crashes}} on start."),
            ("assistant", "bug"),
            ("user", f"Ticket from {row.customer} via {row.channel}: {row.body}"),
        ]
    if provider == "anthropic":
        assert all("system" not in [m["role"] for m in b["messages"]] for b in bodies)
        assert all(b["max_tokens"] == 50 for b in bodies)


def test_system_pair_first_equals_system_keyword(
    emulator: Emulator, provider: str, openai_client: Any, anthropic_client: Any
) -> None:
    client = openai_client if provider == "openai" else anthropic_client
    df = frame()
    with_pair = df.llm.batch(
        [("system", "Team {team}."), ("user", "{body}")], model=MODELS[provider], client=client
    )
    with_keyword = df.llm.batch(
        "{body}", system="Team {team}.", model=MODELS[provider], client=client
    )
    pd.testing.assert_frame_equal(with_pair, with_keyword)
    # The same requests: the second call re-attached to the first job.
    assert emulator.stats()["batches_created"] == 1


def test_a_shared_system_prompt_is_identical_in_every_request(
    emulator: Emulator, openai_client: Any
) -> None:
    df = frame()
    df.llm.batch("{body}", system="Be brief.", model="gpt-4o-mini", client=openai_client)
    bodies = received(emulator, "openai", openai_client)
    assert [b["messages"][0] for b in bodies] == [{"role": "system", "content": "Be brief."}] * 3


def test_rows_differing_only_in_an_earlier_part_are_distinct_requests(
    emulator: Emulator, openai_client: Any
) -> None:
    df = pd.DataFrame({"team": ["x", "y", "x"], "q": ["same", "same", "same"]})
    out = df.llm.batch(
        [("system", "{team}"), ("user", "{q}")], model="gpt-4o-mini", client=openai_client
    )
    assert out["output"].tolist() == ["echo: same"] * 3
    assert emulator.stats()["requests_submitted"] == 2


def test_structured_answers_with_message_templates(
    emulator: Emulator, provider: str, openai_client: Any, anthropic_client: Any
) -> None:
    client = openai_client if provider == "openai" else anthropic_client
    out = frame().llm.batch(
        FEW_SHOT,
        system="Team {team}.",
        model=MODELS[provider],
        client=client,
        choices=["billing", "bug", "shipping"],
        output="label",
    )
    assert list(out["label"].cat.categories) == ["billing", "bug", "shipping"]
    assert out["label"].notna().all()
