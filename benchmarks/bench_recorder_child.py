"""CPU cost of the recorder child's pipeline, per message, by kind — in-process, no proxy, no sockets.

Builds the byte stream the proxy would send the child (`rtreplay.recorder.framing` DATA frames, batched into
~128 KiB socket reads like `rtreplay.recorder.link` does): the upstream's 101 answer, then per kind a run of
  - client audio: masked frames of `input_audio_buffer.append` with 32 KB of base64 audio,
  - client small: masked ~300 B `conversation.item.create` JSON,
  - server audio: unmasked `response.output_audio.delta` frames (~4.8 KB of base64),
and feeds it to `rtreplay.recorder.child.ParentLink.data_received` (framing → tap → core → writer thread →
journal IPC stream, fsync, Parquet at close) writing to a temporary directory. Reports process CPU time
(all threads; the cheapest of `--repeat` runs, since noise only adds) per message to record (journal
written), the event loop thread's share, the MB/s of messages per CPU second, then the CPU to finalize.

    python benchmarks/bench_recorder_child.py               # 2000 messages per kind
    python benchmarks/bench_recorder_child.py -n 500 --profile child.prof   # cProfile the loop thread
    python benchmarks/bench_recorder_child.py --parsers     # the tap's parser alone vs websockets' Protocol
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
from pathlib import Path

import orjson
from websockets.frames import Frame, Opcode

from rtreplay.recorder import framing
from rtreplay.recorder.child import ParentLink
from rtreplay.recorder.writer import ArchiveWriter

READ_SIZE = 128 * 1024  # the link batches copies into writes of about this size
ANSWER = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
OPEN_INFO = {"method": "GET", "path": "/v1/realtime", "query": "model=bench", "client": "127.0.0.1:1",
             "upstream": "ws://127.0.0.1:2", "headers": [["Authorization", "Bearer sk-fake-bench-key-0001"]],
             "auth_added": False}


def audio_append(i: int) -> bytes:
    head = '{"type":"input_audio_buffer.append","event_id":"evt_%06d","audio":"' % i
    raw = (32 * 1024 - len(head) - 2) * 3 // 4
    return (head + base64.b64encode(os.urandom(raw)).decode() + '"}').encode()


def small_json(i: int) -> bytes:
    text = ('{"type":"conversation.item.create","event_id":"evt_%06d","item":{"type":"message","role":"user",'
            '"content":[{"type":"input_text","text":"%s"}]}}' % (i, "x" * 150))
    return text.encode()


def audio_delta(i: int) -> bytes:
    return ('{"type":"response.output_audio.delta","event_id":"event_%06d","response_id":"resp_1",'
            '"item_id":"item_1","output_index":0,"content_index":0,"delta":"%s"}'
            % (i, base64.b64encode(os.urandom(3600)).decode())).encode()


KINDS = {"client audio 32 KB": (framing.CLIENT, audio_append), "client small JSON": (framing.CLIENT, small_json),
         "server audio delta": (framing.SERVER, audio_delta)}


def wire(direction: int, message: bytes) -> bytes:
    """One text frame as the peer sends it (clients mask)."""
    return Frame(Opcode.TEXT, message).serialize(mask=direction == framing.CLIENT, extensions=[])


def stream(direction: int, make, n: int) -> list[bytes]:
    """The socket reads the child would see: OPEN, the 101 answer, then `n` messages in reads of ~READ_SIZE;
    last, the CLOSE alone."""
    frames = [framing.encode(1, framing.OPEN, 0, 1, 1, orjson.dumps(OPEN_INFO)),
              framing.encode(1, framing.DATA, framing.SERVER, 2, 2, ANSWER)]
    # A handful of distinct messages, repeated: building n random ones would dominate the run.
    messages = [wire(direction, make(i)) for i in range(16)]
    chunk: list[bytes] = []
    for i in range(n):
        chunk.append(messages[i % 16])
        if sum(map(len, chunk)) >= 16 * 1024 or i == n - 1:
            data = b"".join(chunk)
            frames.append(framing.encode(1, framing.DATA, direction, 10 + i, 10 + i, data))
            chunk = []
    data = b"".join(frames)
    reads = [data[at:at + READ_SIZE] for at in range(0, len(data), READ_SIZE)]
    return reads + [framing.encode(1, framing.CLOSE, 0, 10 + n, 10 + n, b'{"first_disconnect":"client"}')]


async def run_kind(reads: list[bytes], out: Path, profiler) -> tuple[float, float, float]:
    """CPU seconds (all threads) to record the stream into the journal, of which the event loop thread's
    (framing, tap, core), then all threads' to finalize it to Parquet."""
    start, loop_start = time.process_time(), time.thread_time()
    async with ArchiveWriter(out) as writer:
        link = ParentLink(writer)
        if profiler:
            profiler.enable()
        for read in reads[:-1]:
            link.data_received(read)
            await asyncio.sleep(0)  # let the writer thread's callbacks (drained, resume) run
        while writer.queued_bytes:  # the writer thread has journaled everything
            await asyncio.sleep(0.001)
        if profiler:
            profiler.disable()
        recorded, loop_cpu = time.process_time(), time.thread_time() - loop_start
        link.data_received(reads[-1])  # the end: CLOSE, so the journal becomes Parquet
    return recorded - start, loop_cpu, time.process_time() - recorded


def parser_cost(n: int, repeat: int) -> None:
    """µs of CPU per message to parse `n` messages of each kind from 128 KiB chunks: `tap.StreamTap` vs
    websockets' sans-I/O `Protocol` as the tap used it before (unmask, reassemble; the cheapest run)."""
    from websockets.protocol import CLIENT, OPEN, SERVER, Protocol

    from rtreplay.recorder import tap

    def websockets_parse(masked: bool, chunks: list[bytes]) -> int:
        protocol, count = Protocol(SERVER if masked else CLIENT, state=OPEN, max_size=None), 0
        for chunk in chunks:
            protocol.receive_data(chunk)
            protocol.data_to_send()
            count += sum(1 for frame in protocol.events_received() if bytes(frame.data) is not None)
        return count

    def tap_parse(masked: bool, chunks: list[bytes]) -> int:
        stream_tap, count = tap.StreamTap(masked), 0
        for chunk in chunks:
            count += sum(1 for _ in stream_tap.feed(chunk))
        return count

    print("\n| messages | websockets Protocol µs / message | tap.StreamTap µs / message |")
    print("|---|---|---|")
    for name, (direction, make) in KINDS.items():
        masked = direction == framing.CLIENT
        data = b"".join(wire(direction, make(i % 16)) for i in range(n))
        chunks = [data[at:at + READ_SIZE] for at in range(0, len(data), READ_SIZE)]
        costs = []
        for parse in (websockets_parse, tap_parse):
            runs = []
            for _ in range(repeat):
                start = time.process_time()
                assert parse(masked, chunks) == n
                runs.append(time.process_time() - start)
            costs.append(min(runs) / n * 1e6)
        print(f"| {name} | {costs[0]:.1f} | {costs[1]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="messages per kind")
    parser.add_argument("--repeat", type=int, default=3, help="runs per kind; the cheapest is reported")
    parser.add_argument("--profile", help="write a cProfile (loop thread only) here")
    parser.add_argument("--parsers", action="store_true", help="only compare the frame parsers")
    args = parser.parse_args()
    if args.parsers:
        return parser_cost(args.n, args.repeat)
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
    print("| messages | µs CPU / message recorded | of which loop thread | MB/s per CPU second "
          "| + µs / message to finalize |")
    print("|---|---|---|---|---|")
    for name, (direction, make) in KINDS.items():
        reads = stream(direction, make, args.n)
        size = len(make(0)) * args.n
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="rtreplay-bench-child-") as out:
                runs.append(asyncio.run(run_kind(reads, Path(out), profiler)))
        cpu, loop_cpu, finalize = min(runs)
        print(f"| {name} | {cpu / args.n * 1e6:.0f} | {loop_cpu / args.n * 1e6:.0f} | {size / cpu / 1e6:.0f} "
              f"| {finalize / args.n * 1e6:.0f} |")
    if profiler:
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
