"""The compiled parts (setup.py): built where they can be, and never change a result.

Each C module has a pure-Python path beside it; a subprocess that cannot import the modules
must produce the same bytes as this process, which uses them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import batchframe  # noqa: F401  (registers DataFrame.llm)
from batchframe.prompts import build

MODULES = ["batchframe.providers._openai_scan", "batchframe.prompts._hash"]


def _compiler() -> bool:
    return shutil.which(str(sysconfig.get_config_var("CC") or "cc").split()[0]) is not None


@pytest.mark.parametrize("name", MODULES)
def test_built_where_a_compiler_is(name: str) -> None:
    try:
        __import__(name)
    except ImportError:
        if _compiler():  # it could have been built: a broken build must not pass unnoticed
            pytest.fail(f"{name} is not built: run `pip install -e .` again")
        pytest.skip("no C compiler here, so the C modules are not built")


def _catalog(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    words = np.array(["naïve", 'say "hi"', "back\\slash", "日本語", "tab\there", "plain"])
    distinct = n // 3
    picks = rng.integers(0, len(words), size=(distinct, 3))
    texts = [" ".join(words[picks[i % distinct]]) + f" #{i % distinct}" for i in range(n)]
    return pd.DataFrame(
        {"name": [f"item {i % 50}" for i in range(n)], "description": texts},
        index=pd.Index([f"sku-{i}" for i in range(n)], name="sku"),
    )


def test_requests_are_the_same_without_the_c_modules(tmp_path: Path) -> None:
    """More than build._SAMPLE_ROWS mostly distinct values: the part is numbered by hash."""
    frame = _catalog(30_000)  # every text three times: duplicates to find
    frame.to_parquet(tmp_path / "frame.parquet")
    args: dict[str, Any] = {"model": "gpt-4o-mini", "system": "Describe.", "max_tokens": 20}
    with_c = frame.llm.to_jsonl(tmp_path / "with.jsonl", "{name}: {description}", **args)
    script = f"""
import sys
for name in {MODULES!r}:
    sys.modules[name] = None  # as if they were never built
import pandas as pd
import batchframe
from batchframe.prompts import build
assert build._hash is None
frame = pd.read_parquet({str(tmp_path / "frame.parquet")!r})
frame.llm.to_jsonl({str(tmp_path / "without.jsonl")!r}, "{{name}}: {{description}}", **{args!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    written = with_c.read_bytes()
    assert written.count(b"\n") == 10_000  # 30,000 rows, 10,000 distinct requests
    assert (tmp_path / "without.jsonl").read_bytes() == written


@pytest.mark.skipif(build._hash is None, reason="the C hash is not built")
def test_hash_of_a_slice_and_of_equal_values() -> None:
    values = pa.array(
        [b"", b"a", b"abcdefgh", b"abcdefghi", b"a", b"\x00" * 9, b"\x00" * 10], pa.large_binary()
    )
    hashes = build._value_hash(values)
    assert hashes[1] == hashes[4]  # equal bytes
    assert len(set(hashes.tolist())) == 6  # all else distinct, lengths included
    sliced = build._value_hash(values.slice(2, 4))
    assert sliced.tolist() == hashes[2:6].tolist()


@pytest.mark.skipif(build._hash is None, reason="the C hash is not built")
def test_hash_refuses_offsets_that_do_not_fit() -> None:
    offsets = np.array([0, 4, 99], dtype=np.int64).tobytes()
    with pytest.raises(ValueError, match="do not fit"):
        build._hash.hash_values(offsets, b"abcd", 0, 2)
    with pytest.raises(ValueError, match="shorter"):
        build._hash.hash_values(offsets, b"abcd", 1, 2)
