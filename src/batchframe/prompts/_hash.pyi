# The C hash's interface (_hash.c); see build._hashed_codes for its use.
from typing_extensions import Buffer

def hash_values(offsets: Buffer, data: Buffer, start: int, count: int, /) -> bytes: ...
