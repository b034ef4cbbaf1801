"""What a new user tripped over in their first hour (issue 12), each through the CLI as they met it."""
from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from click.testing import CliRunner

from rtreplay import simulator
from rtreplay.analyzer.state.match import requests as recorded_requests
from rtreplay.cli import cli
from rtreplay.queries.loader import VIEWS

from reliability_support import free_port, start_proxy

RTREPLAY = [sys.executable, "-c", "from rtreplay.cli import main; main()"]

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = ROOT / "tests" / "data" / "replay_plans" / "archive"  # two recorded demo sessions (test_replay_golden)
SESSION_A = "20261123T000928814046-4cpr5c"


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), result.output
    return lines[-1]


# --- analyze: the headline compares forms that ran ----------------------------------------------------------------

@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """The benchmark generator's archive, where `invalid` is rejected every time (0 failed of 100%)."""
    out = tmp_path_factory.mktemp("gen") / "archive"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_archive.py"), "--events", "200000",
                    "--out", str(out)], check=True, capture_output=True, timeout=120)
    return out


def test_the_headline_compares_only_forms_that_ran(generated, tmp_path) -> None:
    report = json.loads(invoke("analyze", generated, "--format", "json").output)
    groups = {(g["form"], g["split"]["scope"]): g for g in report["groups"]}
    never_ran = {f for (f, s), g in groups.items() if s == "out-of-band" and g["rejected"] == g["requests"]}
    assert "invalid" in never_ran  # the archive has the trap the issue describes
    headline = report["headline"]
    assert headline["best"]["form"] not in never_ran and headline["worst"]["form"] not in never_ran
    named = set(re.findall(r"`([^`]+)`", headline["text"]))
    assert named and not named & never_ran, headline["text"]
    table = invoke("analyze", generated)
    assert headline["text"].split(" vs ")[1][:20] in " ".join(table.output.split())
    page = tmp_path / "r.html"
    invoke("analyze", generated, "--html", page)
    html = page.read_text()
    shown = re.search(r'<p class="headline">(.*?)</p>', html).group(1)
    assert "`" not in shown and f"<code>{headline['best']['form']}</code>" in shown  # no literal backticks


# --- tables fit 80 columns; one default --format name -------------------------------------------------------------

def test_analyze_and_replay_tables_fit_80_columns(generated) -> None:
    narrow = {"COLUMNS": "80"}
    analyzed = invoke("analyze", generated, env=narrow)
    assert analyzed.exit_code == 0, analyzed.output
    lines = analyzed.output.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    rows = {tuple(line.split()[:2]): line.split() for line in lines if line.strip()}
    # Every number is there, nothing cut: function out-of-band as in the JSON report.
    report = json.loads(invoke("analyze", generated, "--format", "json").output)
    g = next(g for g in report["groups"] if g["form"] == "function" and g["split"]["scope"] == "out-of-band")
    assert rows[("function", "out-of-band")][2:5] == [str(g["requests"]), str(g["completed"]), str(g["failed"])]
    assert f"{g['forced_call']['happened']}/{g['forced_call']['expected']}" in rows[("function", "out-of-band")]
    assert ("required", "out-of-band") in rows  # names not shortened to `requir…`

    replayed = invoke("replay", ARCHIVE, "--target", "sim", "--sim-faults", "seed-oob-forced-function",
                      "--failed", "--vary", "tool_choice=recorded,required,auto", env=narrow)
    assert replayed.exit_code == 0, replayed.output
    assert max(len(line) for line in replayed.output.splitlines()) <= 80, replayed.output
    assert "|" not in replayed.output  # a terminal table, not Markdown rows
    variants = {line.split()[0]: line.split() for line in replayed.output.splitlines() if line.strip()}
    assert variants["recorded"][1:4] == ["2", "0", "2"] and variants["tool_choice=required"][1:4] == ["2", "2", "0"]


def test_the_sessions_table_fits_80_columns_and_keeps_every_value(generated) -> None:
    wide = invoke("sessions", generated, "--format", "json")
    assert wide.exit_code == 0, wide.output
    sessions = json.loads(wide.output)
    narrow = invoke("sessions", generated, env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    assert max(len(line) for line in narrow.output.splitlines()) <= 80, narrow.output
    for s in sessions:  # stacked when the row does not fit: every session and its counts are still there
        assert s["session"] in narrow.output and f"events {s['events']}" in narrow.output, narrow.output
    at_120 = invoke("sessions", generated, env={"COLUMNS": "120"})
    rows = [line.split() for line in at_120.output.splitlines() if line.strip().startswith(sessions[0]["session"])]
    assert rows and rows[0][-4:] == [str(sessions[0][k]) for k in ("events", "requests", "failures", "rejected")]


def test_one_default_format_name_for_tables() -> None:
    ctx = cli.make_context("rtreplay", ["--help"], resilient_parsing=True)
    for name in ("analyze", "sessions", "replay", "sql", "query"):
        fmt = next(p for p in cli.get_command(ctx, name).params if p.name == "fmt")
        assert fmt.default == "table", name


# --- replay: --target URL forms, --response-id whatever its scope -------------------------------------------------

@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """A simulator on its own event loop in a thread, so the CLI (which runs its own loop) can reach it."""
    loop = asyncio.new_event_loop()
    started: list[str] = []
    stop = asyncio.Event()

    async def main() -> None:
        async with simulator.serve(seed=1, faults="seed-oob-forced-function") as sim:
            started.append(sim.url)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    for _ in range(200):
        if started:
            break
        threading.Event().wait(0.05)
    yield started[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/realtime", "/v1/realtime?model=gpt-realtime"])
def test_replay_target_takes_a_base_url_v1_or_the_full_url(sim_url, suffix) -> None:
    result = invoke("replay", ARCHIVE, "--target", sim_url + suffix, "--failed", "--session", SESSION_A,
                    "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)["variants"]
    assert row["replayed"]["outcomes"]["failed"] == 1  # it reached the simulator and got the recorded failure back


@pytest.mark.parametrize("target", ["http://127.0.0.1:9/v1", "127.0.0.1:9", "ws://127.0.0.1:99999",
                                    "ws://127.0.0.1:9/elsewhere?model=x", "ws:///v1"])
def test_replay_target_of_another_form_is_a_one_line_error(target) -> None:
    line = one_line_error(invoke("replay", ARCHIVE, "--target", target, "--failed"))
    assert "--target" in line


def test_replay_response_id_selects_a_default_conversation_request() -> None:
    inband = next(r for r in recorded_requests(ARCHIVE) if r.scope == "default" and r.response_id)
    result = invoke("replay", ARCHIVE, "--target", "sim", "--dry-run", "--response-id", inband.response_id,
                    "--format", "json")
    assert result.exit_code == 0, result.output
    assert [p["request_id"] for p in json.loads(result.output)] == [inband.request_id]


# --- sessions, show, state ----------------------------------------------------------------------------------------

def test_show_prints_json_values_and_the_close_codes() -> None:
    result = invoke("show", ARCHIVE, SESSION_A)
    assert result.exit_code == 0, result.output
    assert "{'" not in result.output and "': " not in result.output  # no Python dict reprs
    create = next(line for line in result.output.splitlines() if "response.create {" in line)
    json.loads(create[create.index("{"):create.rindex("}") + 1])
    close = next(line for line in result.output.splitlines() if "proxy.close" in line)
    assert re.search(r"client \d{4}", close) and re.search(r"server \d{4}", close)


def test_state_without_options_is_the_final_state_and_out_of_range_says_so() -> None:
    final = invoke("state", ARCHIVE, SESSION_A)
    assert final.exit_code == 0, final.output
    last = json.loads(invoke("show", ARCHIVE, SESSION_A, "--all", "--format", "json").output)[-1]["seq"]
    assert final.output == invoke("state", ARCHIVE, SESSION_A, "--at", last).output
    past = CliRunner().invoke(cli, ["state", str(ARCHIVE), SESSION_A, "--at", "999999"])
    assert past.exit_code == 0 and f"past the session's last event ({last}): showing the final state" in past.output
    assert one_line_error(invoke("state", ARCHIVE, SESSION_A, "--at", "-1"))


def test_sessions_and_query_latency_print_rounded_numbers() -> None:
    sessions = json.loads(invoke("sessions", ARCHIVE, "--format", "json").output)
    assert all(s["duration_s"] == round(s["duration_s"], 1) for s in sessions)
    table = invoke("query", ARCHIVE, "latency")
    assert table.exit_code == 0, table.output
    numbers = re.findall(r"\d+\.\d+", table.output)
    assert numbers and all(len(n.replace(".", "").lstrip("0")) <= 6 for n in numbers), table.output


def test_sql_help_and_the_readme_list_every_view() -> None:
    text = " ".join(invoke("sql", "--help").output.split())
    assert all(re.search(rf"\b{v}\b", text) for v in VIEWS), text
    listed = re.search(r"^- Views: (.*?)\n- Reports", (ROOT / "README.md").read_text(), re.S | re.M).group(1)
    assert set(re.findall(r"`(\w+)`", listed)) == set(VIEWS)


# --- archives nothing can be read from ----------------------------------------------------------------------------

def test_an_archive_that_cannot_be_read_exits_non_zero(tmp_path) -> None:
    bad = tmp_path / "bad"
    (bad / "events" / "date=2026-01-01").mkdir(parents=True)
    (bad / "events" / "date=2026-01-01" / "x.parquet").write_bytes(b"not parquet at all" * 100)
    for command in (["analyze"], ["sessions"], ["replay", "--dry-run", "--target", "sim"], ["sql"]):
        args = [command[0], bad, *command[1:]] + (["SELECT 1"] if command == ["sql"] else [])
        assert "x.parquet" in one_line_error(invoke(*args)), command
    readme = ROOT / "README.md"
    for command in ("analyze", "sessions"):
        assert "not an archive" in one_line_error(invoke(command, readme))


def test_a_readme_beside_the_archive_is_no_warning(tmp_path) -> None:
    import shutil

    copy = tmp_path / "archive"
    shutil.copytree(ARCHIVE, copy)
    (copy / "README.txt").write_text("recorded on the staging proxy\n")
    for command in ("analyze", "sessions"):
        result = CliRunner().invoke(cli, [command, str(copy)])
        assert result.exit_code == 0 and "warning" not in result.output, result.output


# --- import -------------------------------------------------------------------------------------------------------

def test_import_dates_a_named_session_refuses_to_overwrite_and_counts_honestly(tmp_path) -> None:
    src = tmp_path / "app.jsonl"
    src.write_text(json.dumps({"type": "session.created", "timestamp": "2026-03-04T05:06:07Z",
                               "session": {"type": "realtime", "model": "gpt-realtime"}}) + "\nnot json\n")
    out = tmp_path / "archive"
    first = invoke("import", src, "--out", out, "--session-id", "mine")
    assert first.exit_code == 0, first.output
    assert (out / "events" / "date=2026-03-04" / "mine.parquet").exists()
    assert "2 events from" in first.output and "1 line not a JSON event" in first.output
    assert "1 lines" not in first.output and "3 events" not in first.output
    again = invoke("import", src, "--out", out, "--session-id", "mine")
    assert "already in" in one_line_error(again)
    assert len(list(out.rglob("*.parquet"))) == 1


# --- the proxy: --listen, an unreachable upstream, stopping -------------------------------------------------------


def stop_proxy(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, (out + err).decode("utf-8", "replace")


def test_listen_port_out_of_range_or_in_use_is_a_one_line_error(tmp_path) -> None:
    bad = subprocess.run(RTREPLAY + ["proxy", "--listen", "127.0.0.1:99999", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("Error: --listen must be HOST:PORT"), bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(RTREPLAY + ["proxy", "--listen", f"127.0.0.1:{port}", "--out", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
    assert busy.returncode != 0 and "Errno" not in busy.stderr and "Traceback" not in busy.stderr
    assert busy.stderr.strip().splitlines()[-1] == (f"Error: 127.0.0.1:{port} is already in use (another proxy?): "
                                                    "choose another --listen port")


async def test_an_unreachable_upstream_is_logged_shown_and_keeps_the_model(tmp_path) -> None:
    dead = free_port()  # nobody listens there
    proc, port = await start_proxy(f"ws://127.0.0.1:{dead}", tmp_path)
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime", open_timeout=20)
        assert refused.value.response.status_code == 502
    finally:
        code, output = stop_proxy(proc)
    assert code == 0, output
    logged = [line for line in output.splitlines() if " unreachable: " in line]
    assert len(logged) == 1 and f"ws://127.0.0.1:{dead}" in logged[0], output
    [session] = json.loads(invoke("sessions", tmp_path, "--format", "json").output)
    assert session["model"] == "gpt-realtime"
    shown = invoke("show", tmp_path, session["session"]).output
    assert re.search(r"proxy\.error upstream ws://127\.0\.0\.1:\d+ unreachable: .+", shown), shown


# --- the HTML report ----------------------------------------------------------------------------------------------

sys.path.insert(0, str(ROOT / "scripts"))
import render_html_check  # noqa: E402  (a script, not a package)


def _import_days(out: Path, days: int, tmp: Path) -> None:
    """`days` days of imported sessions, three a day, every outcome class among their requests."""
    import datetime as dt

    statuses = ["completed", "failed", "cancelled", "completed", "incomplete"]
    for d in range(days):
        for k in range(3):
            t = dt.datetime(2026, 11, 1, 10, tzinfo=dt.timezone.utc) + dt.timedelta(days=d, minutes=k)
            lines = [{"type": "session.created", "timestamp": t.isoformat(),
                      "session": {"type": "realtime", "model": "gpt-realtime"}}]
            for i in range(4):
                status, rid = statuses[(d + k + i) % 5], f"resp_{d}_{k}_{i}"
                choice = ["auto", "required", {"type": "function", "name": "lookup"}][i % 3]
                lines += [{"type": "response.create", "event_id": f"e{d}_{k}_{i}",
                           "response": {"conversation": "none", "tool_choice": choice}},
                          {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
                          {"type": "response.done", "response": {
                              "id": rid, "status": status, "output": [],
                              "status_details": {"type": "failed", "error": {"type": "server_error"}}
                              if status == "failed" else None}}]
            lines += [{"type": "response.create", "event_id": f"bad{d}_{k}",
                       "response": {"conversation": "none", "tool_choice": {"type": "function"}}},
                      {"type": "error", "error": {"type": "invalid_request_error", "message": "missing name",
                                                  "code": "missing_required_parameter", "event_id": f"bad{d}_{k}"}}]
            src = tmp / "day.jsonl"
            src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
            assert invoke("import", src, "--out", out).exit_code == 0


def test_html_outcome_colours_are_told_apart() -> None:
    from rtreplay.analyzer.report.html import COLOURS

    def rgb(hex_: str) -> tuple[int, ...]:
        return tuple(int(hex_[i:i + 2], 16) for i in (1, 3, 5))

    colours = list(COLOURS.values())
    for i, a in enumerate(colours):
        for b in colours[i + 1:]:  # no two outcome colours within a small distance (cancelled vs rejected was 40)
            assert sum((x - y) ** 2 for x, y in zip(rgb(a), rgb(b))) ** 0.5 > 100, (a, b)


def test_html_of_a_short_archive_has_several_bars(tmp_path) -> None:
    page = tmp_path / "short.html"
    assert invoke("analyze", ARCHIVE, "--html", page).exit_code == 0
    report = json.loads(invoke("analyze", ARCHIVE, "--format", "json").output)
    assert report["over_time"]["unit"] == "second" and len(report["over_time"]["buckets"]) >= 2
    assert "<h2>Outcomes per second</h2>" in page.read_text()


@pytest.mark.skipif(render_html_check.find_browser() is None, reason="no Chromium installed")
def test_html_of_14_days_and_of_a_wide_archive_lays_out_at_1400px(generated, tmp_path) -> None:
    days = tmp_path / "days"
    _import_days(days, 14, tmp_path)
    for archive in (days, generated):
        page = tmp_path / f"{archive.name}.html"
        result = invoke("analyze", archive, "--html", page)
        assert result.exit_code == 0, result.output
        # Chromium lays it out 1400 px wide: no table clipped behind a scrollbar, no chart labels overlapping.
        assert render_html_check.check(page, tmp_path / f"{archive.name}.png", render_html_check.find_browser()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_stopping_the_proxy_says_going_away_to_both_sides_and_records_it(sim_url, tmp_path, sig) -> None:
    proc, port = await start_proxy(sim_url, tmp_path)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
                                      open_timeout=20) as app:
            assert json.loads(await app.recv())["type"] == "session.created"
            proc.send_signal(sig)  # Ctrl-C / SIGTERM while the session is open
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(30):
                    while True:
                        await app.recv()
        assert closed.value.rcvd is not None, "the app got no close frame (1006)"
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "proxy stopped")
    finally:
        code, output = stop_proxy(proc) if proc.poll() is None else (proc.wait(), "")
    assert code == 0, output
    [session] = json.loads(invoke("sessions", tmp_path, "--format", "json").output)
    close = next(line for line in invoke("show", tmp_path, session["session"]).output.splitlines()
                 if "proxy.close" in line)
    # Both sides answered the proxy's 1001 with their own close frame, and the record says the proxy stopped.
    assert "client 1001" in close and "server 1001" in close, close
    assert "stopped=the proxy was stopped: it sent 1001 going away to both sides" in close
