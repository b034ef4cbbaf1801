"""One app connection as the recorder process rebuilds it from the proxy's frames (`rtreplay.recorder.child`):
the upstream's answer to the upgrade, a tap on each direction, and the session's lifecycle records.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rtreplay.recorder import redact, tap
from rtreplay.recorder.schema import CLIENT, PROXY_ERROR, PROXY_UPSTREAM_REJECTED, SERVER
from rtreplay.recorder.writer import ArchiveWriter, SessionHandle

if TYPE_CHECKING:
    from rtreplay.recorder.child import ParentLink

MAX_REJECTION_BODY = 64 * 1024  # bytes of an upstream's rejection body kept in the record
MAX_EARLY = 4 << 20  # client bytes held per session until the upstream answers the upgrade


def _close_info(close: Any) -> dict[str, Any] | None:
    return None if close is None else {"code": int(close.code), "reason": close.reason}


class Connection:
    """One app connection, rebuilt from the proxy's frames: its handshake, taps and lifecycle records.

    The session is recorded (`proxy.open`) once the upstream's answer is read, or when an error or the
    end comes first. Client bytes sent before the answer are held and recorded right after it.
    """

    def __init__(self, writer: ArchiveWriter, link: ParentLink, info: dict[str, Any], at: tuple[int, int]) -> None:
        self._writer = writer
        self._link = link
        self._info = info
        self._at = at
        self.handle: SessionHandle | None = None
        self._answer = b""  # the upstream's HTTP answer until it is complete
        self._early: list[tuple[bytes, int, int]] = []
        self._early_bytes = 0  # held in `_early` (and taken from the shared budget)
        self._blind = 0  # client bytes not recorded: past MAX_EARLY before the answer, and all after them
        self._rejection: dict[str, Any] | None = None
        self._tapping = False
        self._taps = {CLIENT: tap.StreamTap(masked=True, budget=link.budget),
                      SERVER: tap.StreamTap(masked=False, budget=link.budget)}
        self._unparsed: set[str] = set()  # directions whose first unparsed frame was reported
        self._unrecorded = {"messages": 0, "frames": 0, "wire_bytes": 0}
        self._closes: dict[str, Any] = {}
        self._first_close: str | None = None
        self.received = 0  # bytes the proxy handed over (compared with its progress marks if it dies)

    def _start(self, subprotocol: str | None = None, extensions: str | None = None) -> SessionHandle:
        if self.handle is None:
            info = {**self._info, "subprotocol": subprotocol, "extensions": extensions}
            self.handle = self._writer.open_session(info, at=self._at)
            self.handle.on_pause = self._link.pause
            self.handle.on_resume = self._link.resume
        return self.handle

    def feed(self, direction: str, data: bytes, mono_ns: int, wall_ns: int) -> Iterator[None]:
        """A chunk the proxy forwarded going `direction`, received at (`mono_ns`, `wall_ns`). Records as
        it is iterated, pausing after each record (the caller may stop there and go on later)."""
        self.received += len(data)
        if direction == CLIENT and self._blind:
            self._blind += len(data)  # the stream's start is missing: its frames cannot be found
        elif self._tapping:
            return self._observe(direction, data, mono_ns, wall_ns)
        elif direction == SERVER:
            return self._upstream_answer(data, mono_ns, wall_ns)
        else:
            budget, size = self._link.budget, len(data)
            if self._early_bytes + size <= MAX_EARLY and budget.used + size <= budget.limit:
                self._early.append((data, mono_ns, wall_ns))
                self._early_bytes += size
                budget.used += size
            else:
                self._blind = size
        return iter(())

    def _release_early(self) -> list[tuple[bytes, int, int]]:
        early, self._early = self._early, []
        self._link.budget.used -= self._early_bytes
        self._early_bytes = 0
        return early

    def _upstream_answer(self, data: bytes, mono_ns: int, wall_ns: int) -> Iterator[None]:
        if self._rejection is not None:
            body = self._rejection["body_bytes"]
            if len(body) < MAX_REJECTION_BODY:
                self._rejection["body_bytes"] = body + data[: MAX_REJECTION_BODY - len(body)]
            return
        self._answer += data
        try:
            split = tap.split_head(self._answer)
            if split is None:
                return
            head_bytes, rest = split
            head = tap.parse_head(head_bytes)
            status, reason = tap.status_of(head)
        except tap.HeadError as exc:
            self._start().lifecycle(PROXY_ERROR, {"error": f"bad upstream answer: {exc}"}, mono_ns, wall_ns)
            self._rejection = {"status": None, "reason": str(exc), "headers": [], "body_bytes": b""}
            return
        self._answer = b""
        if status != 101:
            self._start()
            self._rejection = {"status": status, "reason": reason, "headers": redact.redact_headers(head.headers),
                               "body_bytes": rest[:MAX_REJECTION_BODY]}
            return
        extensions = head.get("sec-websocket-extensions")
        for stream_tap in self._taps.values():
            stream_tap.enable_deflate(extensions)
        handle = self._start(head.get("sec-websocket-protocol"), extensions)
        if self._taps[CLIENT].error is not None:
            handle.lifecycle(PROXY_ERROR, {"error": self._taps[CLIENT].error}, mono_ns, wall_ns)
        self._tapping = True
        for chunk, mono, wall in self._release_early():
            yield from self._observe(CLIENT, chunk, mono, wall)
        if rest:
            yield from self._observe(SERVER, rest, mono_ns, wall_ns)

    def _observe(self, direction: str, data: bytes, mono_ns: int, wall_ns: int) -> Iterator[None]:
        handle = self.handle
        assert handle is not None
        for item in self._taps[direction].feed(data):
            if type(item) is tap.Message:
                handle.message(direction, item.data, item.is_text, mono_ns, wall_ns)
            elif type(item) is tap.Unparsed:
                self._count(0, 1, item.size)
                if direction not in self._unparsed:
                    self._unparsed.add(direction)
                    handle.lifecycle(PROXY_ERROR, {
                        "error": f"{direction} stream breaks the WebSocket protocol: {item.error}; such frames "
                                 "are recorded as invalid.frame with their raw payload, and parsing goes on",
                        "direction": direction}, mono_ns, wall_ns)
                handle.unparsed(direction, item.error, item.opcode, item.data, item.size, mono_ns, wall_ns)
            elif type(item) is tap.Lost:
                self._lost(direction, item, mono_ns, wall_ns)
            else:
                self._closes.setdefault(direction, item)
                self._first_close = self._first_close or direction
            yield

    def _lost(self, direction: str, lost: tap.Lost, mono_ns: int, wall_ns: int) -> None:
        """A counted, named loss: what passed going `direction` that no record holds."""
        self._count(1, 0, lost.wire_bytes)
        assert self.handle is not None
        self.handle.lifecycle(PROXY_ERROR, {"error": f"not recorded: {lost.error}", "direction": direction,
                                            "wire_bytes": lost.wire_bytes, "message_bytes": lost.size},
                              mono_ns, wall_ns)

    def _count(self, messages: int, frames: int, wire_bytes: int) -> None:
        self._unrecorded["messages"] += messages
        self._unrecorded["frames"] += frames
        self._unrecorded["wire_bytes"] += wire_bytes

    def error(self, info: dict[str, Any], mono_ns: int, wall_ns: int) -> None:
        self._start().lifecycle(PROXY_ERROR, info, mono_ns, wall_ns)

    def close(self, info: dict[str, Any], mono_ns: int, wall_ns: int) -> None:
        """Both sockets are gone: record the rejection (if any) and `proxy.close`; the session ends."""
        handle = self._start()
        if self._rejection is not None:
            body = self._rejection.pop("body_bytes")
            handle.lifecycle(PROXY_UPSTREAM_REJECTED, {**self._rejection, "body": body.decode("utf-8", "replace")},
                             mono_ns, wall_ns)
        for direction, stream_tap in self._taps.items():
            for lost in stream_tap.end():
                self._lost(direction, lost, mono_ns, wall_ns)
        unheard = sum(len(chunk) for chunk, _, _ in self._release_early())
        if unheard:
            self._lost(CLIENT, tap.Lost("bytes sent before the upstream answered the upgrade, which it did not "
                                        "accept", unheard, None), mono_ns, wall_ns)
        if self._blind:
            self._lost(CLIENT, tap.Lost(f"client bytes from the first one past the {MAX_EARLY} the recorder holds "
                                        "before the upstream answers (no frame can be found without what was "
                                        "dropped)", self._blind, None), mono_ns, wall_ns)
        closed = {"client": _close_info(self._closes.get(CLIENT)), "server": _close_info(self._closes.get(SERVER)),
                  "first_close": self._first_close, "first_disconnect": info.get("first_disconnect")}
        if info.get("stopped"):
            closed["stopped"] = info["stopped"]  # the proxy was stopped and said 1001 going away to both sides
        if any(self._unrecorded.values()):
            closed["unrecorded"] = self._unrecorded  # what passed that no event record holds (see proxy.error)
        handle.close(closed, mono_ns, wall_ns)

    def abandon(self, why: str, close: bool = False, **facts: Any) -> SessionHandle:
        """Stop recording this session, with a `proxy.error` saying `why` (and `proxy.close` if `close`)."""
        handle = self._start()
        handle.lifecycle(PROXY_ERROR, {"error": why, **facts})
        now = time.monotonic_ns(), time.time_ns()
        for direction, stream_tap in self._taps.items():
            for lost in stream_tap.end():  # (also gives its share of the budget back)
                self._lost(direction, lost, *now)  # a message cut by the end: the part received is counted
        self._release_early()
        if close:
            handle.close({})
        return handle
