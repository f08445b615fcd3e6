"""Index labels that break naive joins: spaces, slashes, non-ASCII, a tab, quotes, an emoji and
a duplicate. Shared by the end-to-end tests of both providers."""

ODD_LABELS = [
    "plain",
    "with space",
    "a/b/c",
    "größe",
    "日本語",
    "dup",
    "dup",
    "tab\there",
    "quote'\"",
    "emoji 🙂",
]


def odd_labels(n: int) -> list[str]:
    """``n`` labels: ODD_LABELS first (with its duplicate), then numbered variants of them."""
    return [
        ODD_LABELS[i % len(ODD_LABELS)] + ("" if i < len(ODD_LABELS) else f" #{i}")
        for i in range(n)
    ]
