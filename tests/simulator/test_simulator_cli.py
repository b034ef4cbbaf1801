"""`rtreplay simulate` as users run it: a real process serving a real client."""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

from click.testing import CliRunner
from websockets.asyncio.client import connect

from rtreplay.cli import cli


def test_simulate_serves_until_stopped():
    process = subprocess.Popen([sys.executable, "-c", "from rtreplay.cli import main; main()", "simulate", "--listen", "127.0.0.1:0", "--seed", "5",
                                "--interval", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        url = re.search(r"ws://\S+", line).group()

        async def talk():
            async with connect(url) as ws:
                assert json.loads(await ws.recv())["type"] == "session.created"
                await ws.send(json.dumps({"type": "response.create", "response": {"output_modalities": ["text"]}}))
                while (event := json.loads(await ws.recv()))["type"] != "response.done":
                    pass
                return event["response"]["status"]
        assert asyncio.run(asyncio.wait_for(talk(), 20)) == "completed"
    finally:
        process.terminate()
        process.wait(10)


def test_simulate_rejects_bad_options_in_one_line():
    result = CliRunner().invoke(cli, ["simulate", "--faults", "no-such-profile"])
    assert result.exit_code == 1 and "no fault profile 'no-such-profile'" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["simulate", "--listen", "nowhere"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output
