"""The rows of one session as reducer `Event`s.

Most rows of a voice session are audio appends and streamed deltas: `session_events` loads consecutive ones
as runs, so that a fold does Python work per turn and per word, not per row.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from rtreplay.analyzer.state.reduce import collector_paused
from rtreplay.analyzer.state.session import Event

APPEND = "input_audio_buffer.append"
# The wire types whose consecutive rows coalesce into runs, by the state field their rows write. A run holds
# at most one wire type per field (GA and beta names of one field never mix in a run), so the rows of
# different fields commute and each field's rows keep their order.
INPUT, AUDIO, TEXT, TRANSCRIPT, ARGUMENTS = 1, 2, 3, 4, 5
FIELD_OF = {
    APPEND: INPUT,
    "response.output_audio.delta": AUDIO, "response.audio.delta": AUDIO,
    "response.output_text.delta": TEXT, "response.text.delta": TEXT,
    "response.output_audio_transcript.delta": TRANSCRIPT, "response.audio_transcript.delta": TRANSCRIPT,
    "response.function_call_arguments.delta": ARGUMENTS, "response.mcp_call_arguments.delta": ARGUMENTS,
}
MAX_INDEX = 10_000  # as reduce_items.as_index


def session_events(table: pa.Table, *, coalesce: bool = True) -> list[Event]:
    """The rows of one session (sorted by seq) as reducer events.

    With `coalesce` (the default), maximal stretches of consecutive rows that are audio appends or deltas
    of one item (output audio, text, transcript, call arguments; one response) become one event each, its
    `run` a `Run`: the fold applies a run at once when that is the same as applying its rows one by one
    (analyzer/reduce.py `apply_run`), and row by row otherwise, so results never change. Rows of one run
    are consecutive in seq; `Event.head(seq)` cuts a run where a state is asked for inside it. Rows whose
    shape the loader cannot vouch for (malformed deltas, inline audio, duplicate or unsorted seqs) stay
    single events. Audio is handed over as read-only memoryviews into the table's `audio` buffer (no copy).
    """
    if table.num_rows == 0:
        return []
    with collector_paused():
        return _session_events(Rows(table), coalesce)


def _session_events(rows: Rows, coalesce: bool) -> list[Event]:
    if not coalesce:
        return rows.events(np.arange(rows.n))
    starts, ends = rows.batches()
    long = ends - starts > 1
    starts, ends = starts[long], ends[long]
    in_run = np.zeros(rows.n + 1, dtype=np.int64)
    np.add.at(in_run, starts, 1)
    np.add.at(in_run, ends, -1)
    singles = np.flatnonzero(np.cumsum(in_run[:-1]) == 0)
    objs = rows.events(singles) + rows.events(starts, runs_to=ends)
    order = np.argsort(np.concatenate((singles, starts)), kind="stable")
    return [objs[i] for i in order.tolist()]


class Rows:
    """One session's rows in columns: single events and runs are built from it, and runs keep it (their
    rows are expanded from it when the fold needs them one at a time)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table = table.combine_chunks()
        self.n = n = table.num_rows
        self.seqs = table.column("seq").chunk(0).to_numpy()
        self.mono = table.column("mono_ns").chunk(0).to_numpy()
        self.ts = table.column("ts").chunk(0).cast(pa.int64()).to_numpy()
        audio = table.column("audio").chunk(0)
        self.has_audio = audio.is_valid().to_numpy(zero_copy_only=False)
        self.offsets, self.data = _audio_buffers(audio)
        types = table.column("type").chunk(0).dictionary_encode()
        self.type_names = types.dictionary.to_pylist()
        self.type_codes = types.indices.to_numpy(zero_copy_only=False)
        self.item_ids, self.item_codes = _codes(table.column("item_id").chunk(0))
        self.response_ids, self.response_codes = _codes(table.column("response_id").chunk(0))
        self.fields = np.zeros(n, dtype=np.int8)
        self.index = np.zeros(n, dtype=np.int64)  # content_index of text and transcript deltas
        self.deltas: list = [None] * n  # the delta text of text, transcript and argument rows
        if n > 1 and not bool((np.diff(self.seqs) > 0).all()):
            return  # duplicate or unsorted seqs: every row goes through `apply` alone (which flags them)
        fields = np.array([FIELD_OF.get(t, 0) for t in self.type_names], dtype=np.int8)[self.type_codes]
        with_item = self.item_codes >= 0
        fields[((fields == INPUT) | (fields == AUDIO)) & ~self.has_audio] = 0
        fields[_shares_a_request_id(table)] = 0  # the reducer must see it: an error naming it answers it
        fields[(fields == AUDIO) & ~with_item] = 0
        texts = fields >= TEXT
        fields[texts & (self.has_audio | ~with_item)] = 0
        self.fields = fields
        self._read_deltas(np.flatnonzero(fields >= TEXT))

    def _read_deltas(self, positions: np.ndarray) -> None:
        """Parse the delta rows' payloads; a row whose delta, content_index or item_id the handlers would
        not take as they are stays a single event."""
        payloads = self.table.column("payload").chunk(0).take(pa.array(positions)).to_pylist()
        items = [self.item_ids[c] for c in self.item_codes[positions].tolist()]
        loads, deltas = orjson.loads, self.deltas
        index: list[int] = []
        bad: list[int] = []
        rows = zip(positions.tolist(), self.fields[positions].tolist(), payloads, items)
        for j, (k, f, text, item) in enumerate(rows):
            try:
                d = loads(text)
            except orjson.JSONDecodeError:
                d = None
            if type(d) is not dict:
                bad.append(j)
                index.append(0)
                continue
            delta = d.get("delta", "")
            i = 0 if f == ARGUMENTS else d.get("content_index")
            if (not isinstance(delta, str) or (f == ARGUMENTS and d.get("item_id") != item)
                    or (i is not None and not (type(i) is int and 0 <= i <= MAX_INDEX))):
                bad.append(j)
                index.append(0)
                continue
            index.append(i or 0)
            deltas[k] = delta
        self.index[positions] = index
        self.fields[positions[bad]] = 0

    def batches(self) -> tuple[np.ndarray, np.ndarray]:
        """[start, end) row ranges of the coalescible stretches: consecutive coalescible rows whose deltas
        are all of one item and one response, with one wire type and one content_index per field."""
        n, fields = self.n, self.fields
        pos = np.arange(n)
        ok = fields > 0
        seg_start = np.maximum.accumulate(np.where(ok, -1, pos)) + 1
        starts = ok & (pos == seg_start)

        def previous(mask: np.ndarray) -> np.ndarray:
            """For each row, the last row before it where `mask` holds (-1: none)."""
            last = np.maximum.accumulate(np.where(mask, pos, -1))
            return np.concatenate(([-1], last[:-1]))

        delta = fields >= AUDIO
        key = self.item_codes * (len(self.response_ids) + 1) + self.response_codes
        prev = previous(delta)
        starts |= delta & (prev >= seg_start) & (key[prev] != key)
        sig = self.type_codes.astype(np.int64) * (MAX_INDEX + 1) + self.index
        for f in (AUDIO, TEXT, TRANSCRIPT, ARGUMENTS):
            mine = fields == f
            prev = previous(mine)
            starts |= mine & (prev >= seg_start) & (sig[prev] != sig)
        begin = np.flatnonzero(starts)
        segment_end = np.minimum.accumulate(np.where(ok, n, pos)[::-1])[::-1]  # first row after, not ok
        return begin, np.minimum(np.append(begin[1:], n), segment_end[begin])

    def events(self, positions: np.ndarray, runs_to: np.ndarray | None = None) -> list[Event]:
        """Single events for the rows at `positions`; with `runs_to`, run events for [positions, runs_to)."""
        if len(positions) == 0:
            return []
        sub = self.table.drop_columns(["audio"]).take(pa.array(positions))
        col = {name: sub.column(name).to_pylist() for name in
               ("type", "direction", "payload", "item_id", "response_id", "audio_at")}
        if runs_to is not None:
            last = runs_to - 1
            runs = [Run(self, a, b, s, c) for a, b, s, c in zip(positions.tolist(), runs_to.tolist(),
                                                              self.seqs[positions].tolist(),
                                                              self.channels(positions, runs_to))]
            return [Event(s, t, d, p, None, None, None, m, u, run=r)
                    for s, t, d, p, m, u, r in zip(self.seqs[last].tolist(), col["type"], col["direction"],
                                                   col["payload"], self.mono[last].tolist(), self.ts[last].tolist(),
                                                   runs)]
        data = self.data
        views = [data[a:b] if v else None for a, b, v in zip(self.offsets[positions].tolist(),
                                                               self.offsets[positions + 1].tolist(),
                                                               self.has_audio[positions].tolist())]
        return [Event(s, t, d, p, a, it, r, m, u, audio_at=at)
                for s, t, d, p, a, it, r, m, u, at in zip(self.seqs[positions].tolist(), col["type"], col["direction"],
                                                          col["payload"], views, col["item_id"], col["response_id"],
                                                          self.mono[positions].tolist(), self.ts[positions].tolist(),
                                                          col["audio_at"])]

    def rows_of(self, field: int, lo: int, hi: int) -> np.ndarray:
        """Positions of the rows of `field` in [lo, hi)."""
        return lo + np.flatnonzero(self.fields[lo:hi] == field)

    def channels(self, starts: np.ndarray, ends: np.ndarray) -> list[tuple[Channel, ...]]:
        """The channels of each run [start, end): one per field present, in field order. Gathered for all
        runs at once, so that folding a run costs a few Python operations."""
        n, pos = self.n, np.arange(self.n)
        # Per run and field: the position of its first row of that field, -1 when it has none.
        firsts = np.stack([np.minimum.reduceat(np.where(self.fields == f, pos, n), starts)
                           for f in range(ARGUMENTS + 1)], axis=1)
        firsts[firsts >= ends[:, None]] = -1
        first = np.where(firsts[:, AUDIO:] >= 0, firsts[:, AUDIO:], n).min(axis=1)  # the first delta
        first = np.where(first == n, starts, first)
        items = [self.item_ids[c] if c >= 0 else None for c in self.item_codes[first].tolist()]
        responses = [self.response_ids[c] if c >= 0 else None for c in self.response_codes[first].tolist()]
        at = np.where(firsts >= 0, firsts, 0)
        types = [[self.type_names[c] for c in row] for row in self.type_codes[at].tolist()]
        index = self.index[at].tolist()
        both_audio = ((firsts[:, INPUT] >= 0) & (firsts[:, AUDIO] >= 0)).tolist()
        one_text = ((firsts[:, TEXT:] >= 0).sum(axis=1) == 1).tolist()
        data, deltas, out = self.data, self.deltas, []
        for lo, hi, b0, b1, fs, item, response, mono, ts, ix, both, one in zip(
                starts.tolist(), ends.tolist(), self.offsets[starts].tolist(), self.offsets[ends].tolist(),
                firsts.tolist(), items, responses, self.mono[first].tolist(), types, index, both_audio, one_text):
            chans = []
            for f in range(INPUT, ARGUMENTS + 1):
                if fs[f] < 0:
                    continue
                audio: list = []
                text = ""
                if f <= AUDIO:  # rows of other fields carry no bytes, unless both audio fields are here
                    audio = _views(self.offsets, data, self.rows_of(f, lo, hi)) if both else [data[b0:b1]]
                elif one:
                    text = "".join([d for d in deltas[lo:hi] if d is not None])
                else:
                    text = "".join([deltas[i] for i in self.rows_of(f, lo, hi).tolist()])
                chans.append(Channel(ts[f], None if f == INPUT else item, ix[f], response, mono, audio, text))
            out.append(tuple(chans))
        return out


class Channel(NamedTuple):
    """The rows of one field inside a run, added up: what the reducer applies at once."""

    type: str  # the rows' wire type
    item_id: str | None  # the item the deltas go to (None for appends)
    index: int  # content_index (text and transcript deltas)
    response_id: str | None
    mono_ns: int  # monotonic time of the run's first delta (a response's first output)
    audio: list  # audio rows: their bytes, as views, adjacent rows joined
    text: str  # delta rows: their deltas, joined


class Run:
    """Consecutive rows [lo, hi) of one session, loaded as one event (see `session_events`), with their
    channels: one per field present (at most one wire type per field in a run)."""

    __slots__ = ("rows", "lo", "hi", "first_seq", "channels")

    def __init__(self, rows: Rows, lo: int, hi: int, first_seq: int, channels: tuple[Channel, ...]) -> None:
        self.rows, self.lo, self.hi, self.first_seq, self.channels = rows, lo, hi, first_seq, channels

    @property
    def count(self) -> int:
        return self.hi - self.lo

    def head(self, seq: int) -> Event:
        """The event of this run's rows up to and including `seq` (at least its first row)."""
        k = max(1, int(self.rows.seqs[self.lo:self.hi].searchsorted(seq, side="right")))
        return self.rows.events(np.array([self.lo]), runs_to=np.array([self.lo + k]))[0]

    def events(self) -> list[Event]:
        """The run's rows as single events, as `session_events(..., coalesce=False)` gives them."""
        return self.rows.events(np.arange(self.lo, self.hi))

    def sizes(self) -> list[tuple[int, str, int, int]]:
        """Per channel: (first seq, wire type, rows, bytes of audio or characters of text), in row order."""
        rows = [self.rows.rows_of(f, self.lo, self.hi) for f in range(INPUT, ARGUMENTS + 1)]
        return sorted((int(self.rows.seqs[at[0]]), ch.type, len(at),
                       sum(map(len, ch.audio)) if ch.audio else len(ch.text))
                      for at, ch in zip([at for at in rows if len(at)], self.channels))


def _views(offsets: np.ndarray, data: memoryview, rows: np.ndarray) -> list:
    """The audio bytes of `rows` as few views as possible: rows adjacent in the buffer share one."""
    begin, end = offsets[rows], offsets[rows + 1]
    if int(end[-1] - begin[0]) == int((end - begin).sum()):
        return [data[int(begin[0]):int(end[-1])]]
    cut = np.flatnonzero(begin[1:] != end[:-1]) + 1
    return [data[int(begin[a]):int(end[b - 1])]
            for a, b in zip(np.concatenate(([0], cut)).tolist(), np.concatenate((cut, [len(rows)])).tolist())]


def _shares_a_request_id(table: pa.Table) -> np.ndarray:
    """Rows other than response.create that carry a response.create's event_id. An error naming that id
    answers the latest client event with it (docs/definitions.md, "Matching" 1), so the reducer sees such
    rows one by one (analyzer/state/reduce_requests.py); a run's rows would hide their event_ids."""
    if "event_id" not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    ids, types = table.column("event_id").chunk(0), table.column("type").chunk(0)
    creates = pc.filter(ids, pc.and_(pc.equal(types, "response.create"), pc.is_valid(ids)))
    if len(creates) == 0:
        return np.zeros(table.num_rows, dtype=bool)
    mask = pc.and_(pc.is_in(ids, value_set=pc.unique(creates)), pc.not_equal(types, "response.create"))
    return mask.fill_null(False).to_numpy(zero_copy_only=False)


def _codes(arr: pa.Array) -> tuple[list, np.ndarray]:
    """A string column as (distinct values, code per row; -1 for null)."""
    enc = arr.dictionary_encode()
    return enc.dictionary.to_pylist(), enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _audio_buffers(arr: pa.Array) -> tuple[np.ndarray, memoryview]:
    """The `audio` column's offsets (per row, from its start) and data buffer as a memoryview."""
    n = len(arr)
    bufs = arr.buffers()
    if bufs[1] is None:
        return np.zeros(n + 1, dtype=np.int64), memoryview(b"")
    offsets = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset: arr.offset + n + 1].astype(np.int64)
    return offsets, memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
