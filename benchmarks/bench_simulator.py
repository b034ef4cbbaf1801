"""How much load the simulator serves on one core: text responses per second and real-time audio streams.

The simulator runs in its own process pinned to one CPU (`rtreplay simulate --interval 0`); the load
generator runs in this process (pinned to another CPU when there is one). Figures are per CPU-second of
the simulator process (read from /proc), so a load generator that cannot saturate the server still
yields the server's capacity; the simulator's CPU use during the run is printed beside them.

Clients do not offer permessage-deflate (the openai SDK does not either when it lifts the size limit).
- responses: C clients each send out-of-band text `response.create`s back to back (small context) and
  wait for `response.done`.
- audio: C clients each stream PCM16 (1 s speech + 0.6 s silence per turn, 20 ms appends, as fast as
  the server takes them) with server VAD on; each turn is committed and answered with a spoken (audio)
  response. Capacity = seconds of input audio handled per simulator CPU-second = real-time streams per core.

    python benchmarks/bench_simulator.py            # full run (~1 min)
    python benchmarks/bench_simulator.py --quick    # a few seconds, to check it works
"""
from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_simulator() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", "from rtreplay.cli.simulate import simulate; simulate()",
                                "--listen", "127.0.0.1:0", "--interval", "0"], stderr=subprocess.PIPE, text=True)
    url = re.search(r"ws://\S+", process.stderr.readline()).group()
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(process.pid, {cpus[0]})
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))
    return process, url


async def text_client(url: str, deadline: float, counts: list[int]) -> None:
    request = json.dumps({"type": "response.create", "response": {"conversation": "none", "output_modalities": ["text"]}})
    async with connect(url, max_size=None, compression=None, close_timeout=0.5) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is my order status?"}]}}))
        while time.monotonic() < deadline:
            await ws.send(request)
            while '"type":"response.done"' not in await ws.recv():
                pass
            counts[0] += 1


def turn_audio() -> list[str]:
    speech = array.array("h", (int(8000 * math.sin(i * 0.115)) for i in range(24_000))).tobytes()
    audio = speech + bytes(48 * 600)
    chunk = 48 * 20
    return [json.dumps({"type": "input_audio_buffer.append",
                        "audio": base64.b64encode(audio[i:i + chunk]).decode()}) for i in range(0, len(audio), chunk)]


async def audio_client(url: str, deadline: float, counts: list[float], appends: list[str]) -> None:
    async with connect(url, max_size=None, compression=None, close_timeout=0.5) as ws:
        await ws.recv()

        async def drain() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    if '"type":"response.done"' in message:
                        counts[1] += 1
        reader = asyncio.create_task(drain())
        while time.monotonic() < deadline:
            for append in appends:
                await ws.send(append)
                await asyncio.sleep(0)  # let the reader take the server's events
            counts[0] += 1.6  # seconds of input audio per turn
        reader.cancel()


async def measure(kind: str, url: str, pid: int, clients: int, seconds: float) -> dict:
    counts: list = [0, 0]
    appends = turn_audio() if kind == "audio" else []
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    deadline = wall0 + seconds
    if kind == "responses":
        tasks = [asyncio.create_task(text_client(url, deadline, counts)) for _ in range(clients)]
    else:
        tasks = [asyncio.create_task(audio_client(url, deadline, counts, appends)) for _ in range(clients)]
    await asyncio.sleep(seconds)
    cpu, wall, done, answered = cpu_seconds(pid) - cpu0, time.monotonic() - wall0, counts[0], counts[1]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"kind": kind, "clients": clients, "wall_s": round(wall, 2), "server_cpu_s": round(cpu, 2),
            "server_cpu_share": round(cpu / wall, 2), "per_wall_s": round(done / wall, 1),
            "per_server_cpu_s": round(done / cpu, 1) if cpu else None,
            **({"audio_responses": answered} if kind == "audio" else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run that only checks the benchmark works")
    args = parser.parse_args()
    seconds, clients = (2.0, 4) if args.quick else (15.0, 16)
    process, url = start_simulator()
    try:
        target = f"{url}/v1/realtime?model=gpt-realtime"
        for kind in ("responses", "audio"):
            print(json.dumps(asyncio.run(measure(kind, target, process.pid, clients, seconds))))
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
