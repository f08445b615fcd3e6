"""Token counts, the dated price table and the dry-run Estimate."""

from .estimate import Estimate, build_estimate
from .prices import Price, lookup, set_price, table_date
from .tokens import TokenCount, count_chat_tokens, encoding_for_model, get_encoding

__all__ = [
    "Estimate",
    "Price",
    "TokenCount",
    "build_estimate",
    "count_chat_tokens",
    "encoding_for_model",
    "get_encoding",
    "lookup",
    "set_price",
    "table_date",
]
