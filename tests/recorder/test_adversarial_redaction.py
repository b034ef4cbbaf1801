"""Attacks on the redactor: a client poisoning other sessions' records, and secrets recorded verbatim.

Every test talks to 127.0.0.1 only and is bounded (a few messages, pytest-timeout on top).
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pyarrow as pa
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from rtreplay.recorder import archive, schema
from rtreplay.recorder.core import SessionRecorder
from rtreplay.recorder.proxy import running
from rtreplay.recorder.redact import MARK, Redactor
from rtreplay.recorder.writer import ArchiveWriter
from reliability_support import echo_back

# Fake keys, one per place a secret can hide. None may reach any file or any decoded archive value.
KEYS = {
    "x_api_key": "xak-fake-0a1b2c3d4e5f60718293",
    "goog": "AIzaFakeGoogKey0123456789abcdef",
    "cookie": "fakecookiesession0123456789",
    "query_api_key": "fake-query-api-key-44556677",
    "query_key": "fake-query-key-8899aabbccdd",
    "mcp_auth": "fake-mcp-bearer-token-1234567",
    "mcp_header": "fake-mcp-header-token-7654321",
    "ek_newline": "ek_fake_after_newline_123456",
    "ek_tab": "ek_fake_after_tab_7654321",
    "ek_nbsp": "ek_fake_after_nbsp_9876543",
    "sk_text": "sk-proj-fakeFAKEfake0123456789abcdef",
    "sk_binary": "sk-fake-in-a-binary-frame-0123456789",
    "sk_invalid_utf8": "sk-fake-in-invalid-utf8-0123456789",
    "client_secret_str": "fake-client-secret-string-5678",
    "bearer": "fake-authorization-bearer-135792468",
}


def all_values(table: pa.Table) -> list[str]:
    """Every cell of a decoded archive table, as text (binary cells decoded with latin-1: bytes kept)."""
    out = []
    for column in table.columns:
        for value in column.to_pylist():
            if isinstance(value, bytes):
                out.append(value.decode("latin-1"))
            elif value is not None:
                out.append(str(value))
    return out


def assert_no_keys(out: Path, keys: dict[str, str]) -> None:
    for p in out.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for name, key in keys.items():
                assert key.encode() not in data, f"{name} key in the bytes of {p}"
    values = "\n".join(all_values(archive.read_archive(out).table))
    for name, key in keys.items():
        assert key not in values, f"{name} key in a decoded archive value"


def rows_of(out: Path) -> dict[str, list[dict]]:
    table = archive.read_archive(out).table
    sessions: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        sessions.setdefault(row["session_id"], []).append(row)
    return sessions


# -- one client cannot change another session's records ---------------------------------------------------

ORDINARY = [
    orjson.dumps({"type": "response.done", "event_id": "event_1",
                  "response": {"id": "resp_1", "status": "completed", "output": []}}).decode(),
    orjson.dumps({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                               "content": [{"type": "input_text",
                                                                            "text": "say \"type\":\" please"}]}}).decode(),
]


async def test_a_client_header_value_changes_no_other_session(tmp_path: Path) -> None:
    out = tmp_path / "archive"
    async with serve(echo_back, "127.0.0.1", 0) as upstream:
        port = upstream.sockets[0].getsockname()[1]
        async with running(f"ws://127.0.0.1:{port}", out, flush_interval=0.05) as proxy:
            for poison in ("response.done", '"type":"', "resp_1xx"[:6] + "xx"):
                async with connect(proxy.url + "/v1/realtime", additional_headers={"api-key": poison,
                                                                                    "Authorization": poison}) as ws:
                    await ws.send("hello")
                    await ws.recv()
            async with connect(proxy.url + "/v1/realtime") as ws:  # the victim, after the poisoners
                for text in ORDINARY:
                    await ws.send(text)
                    assert await ws.recv() == text
    sessions = rows_of(out)
    assert len(sessions) == 4
    victim = sessions[max(sessions)]  # ids begin with the start time: the last one opened
    messages = [r for r in victim if r["direction"] in (schema.CLIENT, schema.SERVER)]
    assert [r["payload"] for r in messages] == [t for t in ORDINARY for _ in (0, 1)]
    assert [r["type"] for r in messages] == ["response.done"] * 2 + ["conversation.item.create"] * 2
    assert all(r["response_id"] == "resp_1" for r in messages[:2])


def test_a_session_forgets_nothing_after_many_other_sessions(tmp_path: Path) -> None:
    """The old redactor kept 64 keys proxy-wide: after 64 other connections a live session's key was recorded."""
    async def run() -> None:
        async with ArchiveWriter(tmp_path, flush_interval=0.05) as writer:
            live = writer.open_session({"headers": [("Authorization", f"Bearer {KEYS['bearer']}")]})
            for i in range(80):
                other = writer.open_session({"headers": [("Authorization", f"Bearer other-session-key-{i:04d}")]})
                other.close()
            live.server('{"type":"error","error":{"message":"bad key %s"}}' % KEYS["bearer"])
            live.close()
    asyncio.run(run())
    assert_no_keys(tmp_path, {"bearer": KEYS["bearer"]})


# -- headers and query parameters by allowlist ------------------------------------------------------------

def test_headers_and_query_are_recorded_by_allowlist() -> None:
    core = SessionRecorder("s")
    headers = [("Host", "api.openai.com"), ("User-Agent", "app/1.0"), ("OpenAI-Beta", "realtime=v1"),
               ("OpenAI-Organization", "org-fake123"), ("X-Api-Key", KEYS["x_api_key"]),
               ("x-goog-api-key", KEYS["goog"]), ("Cookie", f"sid={KEYS['cookie']}; theme=dark"),
               ("X-Custom-Thing", "anything at all"), ("Authorization", f"Bearer {KEYS['bearer']}")]
    query = f"model=gpt-realtime&api-key={KEYS['query_api_key']}&key={KEYS['query_key']}&deployment=d1"
    opened = dict(zip(schema.COLUMNS, core.open({"path": "/v1/realtime", "query": query, "headers": headers}, 0, 0)))
    info = orjson.loads(opened["payload"])
    recorded = dict(info["headers"])
    assert recorded["Host"] == "api.openai.com" and recorded["User-Agent"] == "app/1.0"
    assert recorded["OpenAI-Beta"] == "realtime=v1" and recorded["OpenAI-Organization"] == "org-fake123"
    assert recorded["X-Api-Key"] == recorded["x-goog-api-key"] == recorded["Cookie"] == MARK
    assert recorded["X-Custom-Thing"] == MARK
    assert recorded["Authorization"] == f"Bearer {MARK}"
    assert info["query"] == f"model=gpt-realtime&api-key={MARK}&key={MARK}&deployment=d1"
    for key in KEYS.values():
        assert key not in opened["payload"]
    # What the handshake carried is scrubbed wherever it reappears in this session.
    echo = core.message(schema.SERVER, ('{"type":"error","message":"%s %s %s"}'
                                        % (KEYS["cookie"], KEYS["query_key"], KEYS["goog"])).encode(), True, 0, 0)
    assert all(key not in echo[9] for key in KEYS.values()), echo[9]


# -- secret-bearing JSON paths and secret formats ---------------------------------------------------------

def test_known_secret_paths_are_redacted() -> None:
    update = {"type": "session.update", "session": {"tools": [
        {"type": "mcp", "server_label": "x", "server_url": "https://mcp.example", "authorization": KEYS["mcp_auth"],
         "headers": {"Authorization": f"Bearer {KEYS['mcp_header']}", "X-Trace": "t1"}}]}}
    minted = {"type": "x", "client_secret": KEYS["client_secret_str"]}
    r = Redactor()
    for event in (update, minted):
        text = r.text(orjson.dumps(event).decode())
        assert all(key not in text for key in KEYS.values()), text
        orjson.loads(text)  # still JSON
    tool = orjson.loads(r.text(orjson.dumps(update).decode()))["session"]["tools"][0]
    assert tool["authorization"] == MARK and tool["headers"] == {"Authorization": MARK, "X-Trace": MARK}
    assert tool["server_url"] == "https://mcp.example"


def test_secret_formats_are_found_after_json_escapes() -> None:
    text = ('{"type":"x","a":"line\\n%s","b":"tab\\t%s","c":"nbsp\\u00a0%s","d":"%s"}'
            % (KEYS["ek_newline"], KEYS["ek_tab"], KEYS["ek_nbsp"], KEYS["sk_text"]))
    got = Redactor().text(text)
    assert all(key not in got for key in KEYS.values()), got
    assert orjson.loads(got)["a"] == f"line\n{MARK}"
    ordinary = '{"type":"x","note":"week_1234567 is fine; task-0123456789abcdefghijkl; desk-set"}'
    assert Redactor().text(ordinary) == ordinary


def test_secrets_in_binary_and_invalid_utf8_frames_are_redacted() -> None:
    core = SessionRecorder("s")
    core.open({"headers": [("Authorization", f"Bearer {KEYS['bearer']}")]}, 0, 0)
    binary = core.message(schema.CLIENT, b"\x00\x01" + KEYS["sk_binary"].encode() + b"\xff" + KEYS["bearer"].encode(),
                          False, 0, 0)
    invalid = core.message(schema.CLIENT, b'{"type":"x","k":"\xff ' + KEYS["sk_invalid_utf8"].encode() + b'"}',
                           True, 0, 0)
    for record in (binary, invalid):
        assert record[10] is not None and MARK.encode() in record[10]
        assert all(key.encode() not in record[10] for key in KEYS.values())


async def test_no_key_reaches_any_file_or_value_through_the_proxy(tmp_path: Path) -> None:
    out = tmp_path / "archive"
    headers = {"X-Api-Key": KEYS["x_api_key"], "x-goog-api-key": KEYS["goog"], "Cookie": f"sid={KEYS['cookie']}",
               "Authorization": f"Bearer {KEYS['bearer']}"}
    query = f"?model=gpt-realtime&api-key={KEYS['query_api_key']}&key={KEYS['query_key']}"
    update = orjson.dumps({"type": "session.update", "session": {"tools": [
        {"type": "mcp", "server_label": "x", "authorization": KEYS["mcp_auth"],
         "headers": {"Authorization": f"Bearer {KEYS['mcp_header']}"}}]}}).decode()
    escaped = ('{"type":"conversation.item.create","t":"a\\n%s b\\t%s c\\u00a0%s %s"}'
               % (KEYS["ek_newline"], KEYS["ek_tab"], KEYS["ek_nbsp"], KEYS["sk_text"]))
    leak = '{"type":"error","error":{"message":"echo %s %s"}}' % (KEYS["cookie"], KEYS["query_key"])
    async with serve(echo_back, "127.0.0.1", 0) as upstream:
        port = upstream.sockets[0].getsockname()[1]
        async with running(f"ws://127.0.0.1:{port}", out, flush_interval=0.05) as proxy:
            async with connect(proxy.url + "/v1/realtime" + query, additional_headers=headers) as ws:
                for message in (update, escaped, leak, b"\x00bin " + KEYS["sk_binary"].encode()):
                    await ws.send(message)
                    await ws.recv()
                # A text frame that is not UTF-8 cannot be sent through websockets: put it raw on the wire.
                # The upstream refuses it (1007); the proxy still records what passed.
                ws.protocol.send_text(b'{"k":"\xff ' + KEYS["sk_invalid_utf8"].encode() + b'"}')
                ws.send_data()
                try:
                    await ws.recv()
                except ConnectionClosed:
                    pass
    assert len(rows_of(out)) == 1
    assert_no_keys(out, {k: v for k, v in KEYS.items() if k not in ("client_secret_str",)})
