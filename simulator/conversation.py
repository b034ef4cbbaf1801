"""The default conversation: an ordered list of items (docs/realtime-protocol.md §4).

Items are stored as the server knows them, audio bytes included (`retrieve` returns them; every other
event gets `public()`, which leaves audio out). Raw audio lives under the private key `_audio` of a content
part and is base64-encoded only when retrieved.
"""
from __future__ import annotations

import base64
import copy
from typing import Any

Item = dict[str, Any]


class Conversation:
    def __init__(self, conversation_id: str) -> None:
        self.id = conversation_id
        self._items: list[Item] = []
        self._by_id: dict[str, Item] = {}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def __len__(self) -> int:
        return len(self._items)

    def get(self, item_id: str) -> Item | None:
        return self._by_id.get(item_id)

    def items(self) -> list[Item]:
        return list(self._items)

    def last_id(self) -> str | None:
        return self._items[-1]["id"] if self._items else None

    def insert(self, item: Item, previous_item_id: str | None = None, *, append: bool = True) -> str | None:
        """Insert after `previous_item_id`; "root" = first; `append` with no id = at the end.
        The caller has checked that the id exists. Returns the id of the item now before it (or None)."""
        if previous_item_id == "root":
            position = 0
        elif previous_item_id is None and append:
            position = len(self._items)
        else:
            position = self._items.index(self._by_id[previous_item_id]) + 1
        self._items.insert(position, item)
        self._by_id[item["id"]] = item
        return self._items[position - 1]["id"] if position else None

    def previous_id(self, item_id: str) -> str | None:
        """The id of the item just before `item_id` (None when it is first)."""
        position = self._items.index(self._by_id[item_id])
        return self._items[position - 1]["id"] if position else None

    def delete(self, item_id: str) -> None:
        self._items.remove(self._by_id.pop(item_id))


def public(item: Item) -> Item:
    """The item as events other than `retrieved` show it: no private keys, no audio bytes."""
    shown = {k: v for k, v in item.items() if not k.startswith("_") and k != "content"}
    if "content" in item:
        shown["content"] = [{k: v for k, v in part.items() if not k.startswith("_") and k != "audio"}
                            for part in item["content"]]
    return shown


def with_audio(item: Item) -> Item:
    """The item as `conversation.item.retrieved` shows it: full content including base64 audio."""
    shown = public(item)
    for part, stored in zip(shown.get("content", []), item.get("content", [])):
        if "_audio" in stored:
            part["audio"] = base64.b64encode(stored["_audio"]).decode("ascii")
    return copy.deepcopy(shown)
