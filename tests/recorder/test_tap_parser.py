"""The tap's own frame parser against websockets' `Protocol`, on random frame streams (Hypothesis).

Streams are written by websockets itself (masking, permessage-deflate with random parameters, fragments,
pings and pongs between fragments, a close at the end) and read both ways under random chunkings; the
messages and the close must be the same. Arbitrary bytes never raise and leave nothing held.
"""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import CLIENT, OPEN, SERVER, Protocol

from rtreplay.recorder import tap

payloads = st.one_of(st.binary(max_size=300), st.binary(min_size=2000, max_size=70_000),
                     st.builds(lambda n, b: b * n, st.integers(1, 40_000), st.sampled_from([b"a", b'{"x":1}'])))
messages = st.lists(st.tuples(st.booleans(), payloads, st.lists(st.integers(1, 70_000), max_size=3),
                              st.sampled_from([None, Opcode.PING, Opcode.PONG])), max_size=12)
deflates = st.one_of(st.none(), st.tuples(st.booleans(), st.booleans(), st.integers(9, 15), st.integers(9, 15)))


def written(masked: bool, deflate, stream) -> tuple[bytes, str | None]:
    """The wire bytes of `stream` as websockets writes them, and the extensions header negotiated."""
    extensions, header = [], None
    if deflate is not None:
        client_nct, server_nct, client_bits, server_bits = deflate
        sender_nct, sender_bits = (client_nct, client_bits) if masked else (server_nct, server_bits)
        extensions = [PerMessageDeflate(False, sender_nct, 15, sender_bits)]
        header = "permessage-deflate" + "".join(
            f"; {name}" for name, on in [("client_no_context_takeover", client_nct),
                                        ("server_no_context_takeover", server_nct)] if on)
        header += f"; client_max_window_bits={client_bits}; server_max_window_bits={server_bits}"
    out = []
    for is_text, data, cuts, control in stream:
        opcode = Opcode.TEXT if is_text else Opcode.BINARY
        bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
        pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])] or [b""]
        for i, piece in enumerate(pieces):
            fin = i == len(pieces) - 1
            out.append(Frame(opcode if i == 0 else Opcode.CONT, piece, fin).serialize(mask=masked, extensions=extensions))
            if control is not None and not fin:
                out.append(Frame(control, b"ctl").serialize(mask=masked, extensions=extensions))
    out.append(Frame(Opcode.CLOSE, Close(1000, "bye").serialize()).serialize(mask=masked, extensions=extensions))
    return b"".join(out), header


def by_websockets(masked: bool, header: str | None, wire: bytes) -> list:
    protocol = Protocol(SERVER if masked else CLIENT, state=OPEN, max_size=None)
    if header is not None:
        params = dict(tap.parse_extension(header)[0][1])
        sender, receiver = ("client", "server") if masked else ("server", "client")
        protocol.extensions = [PerMessageDeflate(f"{sender}_no_context_takeover" in params,
                                                 f"{receiver}_no_context_takeover" in params,
                                                 int(params[f"{sender}_max_window_bits"]),
                                                 int(params[f"{receiver}_max_window_bits"]))]
    protocol.receive_data(wire)
    got, parts = [], []
    for frame in protocol.events_received():
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            parts.append(bytes(frame.data))
            if frame.opcode is not Opcode.CONT:
                is_text = frame.opcode is Opcode.TEXT
            if frame.fin:
                got.append(tap.Message(is_text, b"".join(parts)))
                parts = []
        elif frame.opcode is Opcode.CLOSE:
            got.append(Close.parse(frame.data))
    assert protocol.parser_exc is None
    return got


def by_tap(masked: bool, header: str | None, wire: bytes, cuts: list[int]) -> tuple[list, tap.StreamTap]:
    stream_tap = tap.StreamTap(masked)
    stream_tap.enable_deflate(header)
    got, at = [], 0
    for cut in sorted({c % (len(wire) + 1) for c in cuts}) + [len(wire)]:
        got += stream_tap.feed(wire[at:cut])
        at = cut
    return got, stream_tap


REPEATED = [(True, b'{"type":"response.output_text.delta","delta":"hello"}', [], None)] * 3


@settings(max_examples=150, deadline=None)
@given(st.booleans(), deflates, messages, st.lists(st.integers(0, 1 << 20), max_size=30))
@example(True, (False, False, 15, 15), REPEATED, [5, 40])  # later messages refer back to earlier ones
@example(False, (True, True, 9, 9), REPEATED, [])
def test_the_tap_reads_what_websockets_reads(masked, deflate, stream, cuts) -> None:
    wire, header = written(masked, deflate, stream)
    got, stream_tap = by_tap(masked, header, wire, cuts)
    assert got == by_websockets(masked, header, wire)
    assert [m.data for m in got[:-1]] == [data for _, data, _, _ in stream]
    assert stream_tap.end() == [] and stream_tap.budget.used == 0


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.booleans(), st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=10))
def test_any_bytes_are_read_without_raising_and_leave_nothing_held(masked, deflate, wire, cuts) -> None:
    got, stream_tap = by_tap(masked, "permessage-deflate" if deflate else None, wire, cuts)
    assert all(isinstance(item, (tap.Message, Close, tap.Unparsed, tap.Lost)) for item in got)
    stream_tap.end()
    assert stream_tap.budget.used == 0
