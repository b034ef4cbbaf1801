"""`rtreplay diff`: two sessions side by side, on real recordings (tests/data/real, imported) and their replays."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from rtreplay.analyzer.replay.diff import Side, diff, rows
from rtreplay.analyzer.state.session import Event
from rtreplay.cli.diff import diff as diff_command
from rtreplay.cli.inspect import import_ as import_command
from rtreplay.cli.replay import replay as replay_command
from rtreplay.cli.sql import sql as sql_command

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
OOB = "ga-webrtc-oob-transcription.jsonl"
CALL = "ga-webrtc-function-call.jsonl"


def invoke(command, *args: str):
    return CliRunner().invoke(command, list(args))


def csv_rows(result) -> list[list[str]]:
    return [line.split(",") for line in result.output.strip().splitlines()[1:]]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The two real GA sessions imported, and every out-of-band request of the first replayed on the simulator."""
    root = tmp_path_factory.mktemp("real")
    ids = {}
    for name in (OOB, CALL):
        done = invoke(import_command, str(REAL / name), "--out", str(root / "real"))
        assert done.exit_code == 0, done.output
        ids[name] = done.output.split("added session ")[1].split(":")[0]
    done = invoke(replay_command, str(root / "real"), "--target", "sim", "--session", ids[OOB],
                  "--record", str(root / "replays"), "--format", "markdown")
    assert done.exit_code == 0 and "| recorded | 5 | 5 |" in done.output, done.output
    opens = invoke(sql_command, str(root / "replays"), "SELECT session_id, payload->>'$.replay.of_seq' AS of_seq "
                   "FROM events WHERE type = 'proxy.open' ORDER BY of_seq::INT", "--format", "csv")
    return {"root": root, "ids": ids, "replays": [(sid, int(seq)) for sid, seq in csv_rows(opens)]}


def test_a_recording_and_its_replay_name_the_differing_events(recorded: dict) -> None:
    root, ids = recorded["root"], recorded["ids"]
    replay_sid, of_seq = recorded["replays"][0]
    result = invoke(diff_command, str(root / "real"), f"{root / 'replays'}:{replay_sid}", "--all")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    # The recording side is found from the replay's tag and cut to the replayed request and its answer.
    assert lines[0].startswith(f"A  {root / 'real'}:{ids[OOB]}, seq {of_seq}–")
    assert f"(replay of {ids[OOB]}:{of_seq}, variant recorded, repeat 0)" in lines[1]
    summary = result.output.split("\n\n")[0]
    # The live model answered the transcription request with a text part; the simulator with other text.
    assert "answer: same outcome, output_types, function, arguments; text " in summary
    assert "response.content_part.done (A" in summary and "part.text:" in summary
    # ids and timestamps never count as differences
    assert ".id:" not in summary and "created_at" not in summary and "event_id" not in summary
    table = result.output.split("\n\n")[1].splitlines()
    assert table[1].split()[:4] == ["=", str(of_seq), "→", "response.create"]  # the request itself is the same
    assert any(line.startswith(" ~") and "response.done" in line for line in table)
    assert "identical" not in result.output.split("\n\n")[1]  # --all shows every row


def test_two_recordings_and_a_session_with_itself(recorded: dict) -> None:
    root, ids = recorded["root"], recorded["ids"]
    two = invoke(diff_command, f"{root / 'real'}:{ids[OOB]}", f"{root / 'real'}:{ids[CALL]}")
    assert two.exit_code == 1
    assert "session.created (A 2 / B 2): session.instructions:" in two.output  # two personas, two prompts
    assert "session.tools: 0 items → 1 items" in two.output
    same = invoke(diff_command, f"{root / 'real'}:{ids[CALL]}", f"{root / 'real'}:{ids[CALL]}")
    assert same.exit_code == 0 and "no differences" in same.output and " 0 differ," in same.output


def test_sides_that_cannot_be_read_exit_2(recorded: dict, tmp_path: Path) -> None:
    root = recorded["root"]
    several = invoke(diff_command, str(root / "real"), str(root / "real"))
    assert several.exit_code == 2 and "holds 2 sessions: name one as" in several.output
    missing = invoke(diff_command, str(tmp_path / "nowhere"), str(root / "real"))
    assert missing.exit_code == 2 and "no such archive" in missing.output
    unknown = invoke(diff_command, f"{root / 'real'}:nope", f"{root / 'real'}:nope")
    assert unknown.exit_code == 2 and "no session 'nope'" in unknown.output


def _event(seq: int, kind: str, direction: str = "server", **payload: object) -> Event:
    return Event(seq, kind, direction, orjson.dumps({"type": kind, **payload}).decode())


def test_ids_timestamps_and_delta_runs_are_normalised() -> None:
    def session(prefix: str, t: int, text: list[str]) -> list[Event]:
        item, resp = f"item_{prefix}AAAAAAAA", f"resp_{prefix}BBBBBBBB"
        return [_event(0, "response.create", "client", event_id=f"evt_{prefix}"),
                _event(1, "response.created", event_id=f"event_{prefix}CCCCCCCC", response={"id": resp, "created_at": t}),
                *[_event(2 + i, "response.output_text.delta", response_id=resp, item_id=item, delta=d, obfuscation=prefix)
                  for i, d in enumerate(text)],
                _event(9, "response.done", response={"id": resp, "status": "completed", "output": [{"id": item}]})]

    a = session("x", 1, ["Hel", "lo"])
    b = session("y", 2, ["H", "el", "lo"])
    assert [r.count for r in rows(a)] == [1, 1, 2, 1]
    d = diff(Side("a", "a", a), Side("b", "b", b))
    assert [p.status for p in d.pairs] == ["=", "=", "~", "="]
    assert d.pairs[2].differences == ("events: ×2 → ×3",)  # same text, delivered in more pieces
    a[1] = _event(1, "response.created", response={"id": "resp_xBBBBBBBB"})  # no event_id, no created_at
    assert diff(Side("a", "a", a), Side("b", "b", b)).pairs[1].status == "="
    c = session("z", 3, ["Bye"])
    assert diff(Side("a", "a", a), Side("c", "c", c)).pairs[2].differences == ("delta: Hello → Bye", "events: ×2 → ×1")
