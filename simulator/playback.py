"""WebRTC/SIP-like output (a profile's `[transport] kind = "webrtc"`): assistant audio goes on a media track,
not over the wire, and the server reports the playback instead (docs/realtime-protocol.md §4.2, §9.3).

What changes on the wire: no `response.output_audio.delta` (transcript deltas and `.done` events still come);
`output_audio_buffer.started` with a response's first audio (after that word's transcript delta, as recorded); `output_audio_buffer.stopped` when its last
word has played, which is after its `response.done` (playback runs in real time, generation faster); on speech
started while it plays (with `interrupt_response`), or on the client's `output_audio_buffer.clear`,
`output_audio_buffer.cleared` and the server's own `conversation.item.truncated` at the point played — the
app sends no truncate. A clear with nothing playing gets no reply (§11, as recorded).

Sans-I/O like the session: `now` is the shell's clock in seconds. One response plays at a time; a response
whose audio starts while another plays queues behind it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from rtreplay.simulator.audio import WORD_MS


@dataclass
class _Playing:
    response_id: str
    start: float  # when its first word starts playing
    items: list[tuple[str, int]] = field(default_factory=list)  # (item_id, ms of audio queued), in order
    generating: bool = True  # its response still streams

    @property
    def end(self) -> float:
        return self.start + sum(ms for _, ms in self.items) / 1000


class Playback:
    def __init__(self, event: Callable[..., dict[str, Any]]) -> None:
        self._event = event
        self._queue: list[_Playing] = []  # the first plays, the others wait for it
        self._cleared: set[str] = set()  # responses whose audio was cleared: the rest of it is dropped

    def media_track(self, events: list[Any], now: float) -> list[Any]:
        """A response step's events as sent over WebRTC/SIP: its audio deltas go to the media track instead."""
        out: list[Any] = []
        for e in events:
            kind = e.get("type") if isinstance(e, dict) else None
            if kind == "response.output_audio.delta":
                out += self.audio(e["response_id"], e["item_id"], now)
                continue
            if kind == "response.done":
                self.finished(e["response"]["id"])
            out.append(e)
        return out

    def audio(self, response_id: str, item_id: str, now: float) -> list[dict[str, Any]]:
        """One word of audio generated (its delta is not sent); `output_audio_buffer.started` on the first."""
        if response_id in self._cleared:
            return []
        p = next((p for p in self._queue if p.response_id == response_id), None)
        out = []
        if p is None:
            start = max([now] + [q.end for q in self._queue])
            p = _Playing(response_id, start)
            self._queue.append(p)
            out.append(self._event("output_audio_buffer.started", response_id=response_id))
        if p.items and p.items[-1][0] == item_id:
            p.items[-1] = (item_id, p.items[-1][1] + WORD_MS)
        else:
            p.items.append((item_id, WORD_MS))
        return out

    def finished(self, response_id: str) -> None:
        """Its response is done: playback stops when the audio queued so far has played."""
        for p in self._queue:
            if p.response_id == response_id:
                p.generating = False

    def next_due(self) -> float | None:
        p = self._queue[0] if self._queue else None
        return p.end if p is not None and not p.generating else None

    def advance(self, now: float) -> list[dict[str, Any]]:
        out = []
        while self._queue and not self._queue[0].generating and self._queue[0].end <= now:
            out.append(self._event("output_audio_buffer.stopped", response_id=self._queue.pop(0).response_id))
        return out

    def playing(self, now: float) -> str | None:
        """The response whose audio plays at `now`."""
        p = self._queue[0] if self._queue else None
        return p.response_id if p is not None and p.start <= now else None

    def clear(self, now: float) -> tuple[list[dict[str, Any]], tuple[str, int] | None]:
        """Stop what plays: (`output_audio_buffer.cleared`, the cut (item_id, ms of it played)); nothing when
        nothing plays. Audio queued behind it is dropped too."""
        if self.playing(now) is None:
            return [], None
        p, self._queue = self._queue[0], []
        self._cleared.add(p.response_id)
        played = int((now - p.start) * 1000)
        cut = None
        for item_id, ms in p.items:
            cut = (item_id, max(0, min(played, ms)))
            if played <= ms:
                break
            played -= ms
        return [self._event("output_audio_buffer.cleared", response_id=p.response_id)], cut
