"""A local stand-in for the OpenAI Batch API and Anthropic Message Batches.

It speaks both protocols over real HTTP on loopback, so the official SDKs can be pointed at it
for tests, the demo and offline rehearsal. It imports nothing from the client side of
batchframe: it is an independent implementation of the protocols in providers.md.

    >>> from batchframe.emulator import Emulator, FaultPlan
    >>> with Emulator(processing_seconds=1, faults=FaultPlan(row_error_rate=0.1)) as emu:
    ...     client = emu.openai_client()
"""

from .emulator import API_KEY, Emulator
from .faults import FaultPlan

__all__ = ["API_KEY", "Emulator", "FaultPlan"]
