# The C scanner's interface (_openai_scan.c); see openai_fast.scan_block for its use.
from typing import Any

from typing_extensions import Buffer

def scan(block: Buffer, /) -> dict[str, Any]: ...
