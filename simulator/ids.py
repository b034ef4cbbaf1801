"""Server-side ids in the shapes the Realtime API uses, drawn from a seeded RNG so runs repeat exactly.

Shapes (docs/realtime-protocol.md §2.1): `event_`, `sess_`, `conv_`, `item_`, `resp_` + 21 base62 characters;
function `call_id`s are `call_` + 16 characters.
"""
from __future__ import annotations

import random
import string

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


class IdFactory:
    """Makes ids for one session. Same (seed, session_index) → same sequence of ids."""

    def __init__(self, seed: int, session_index: int) -> None:
        self._rng = random.Random(f"rtreplay-simulator:{seed}:{session_index}:ids")

    def _chars(self, n: int) -> str:
        return "".join(self._rng.choices(BASE62, k=n))

    def new(self, prefix: str) -> str:
        """`prefix` is one of event, sess, conv, item, resp, call."""
        return f"{prefix}_{self._chars(16 if prefix == 'call' else 21)}"
