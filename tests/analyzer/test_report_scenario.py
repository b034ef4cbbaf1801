"""`rtreplay analyze` on archives recorded through the proxy from the simulator, against the scenario's counts.

A scripted client sends a known plan of `response.create`s (every tool_choice form, in and out of band) one at
a time through the recording proxy. The expected counts come from the scenario itself — the fault profile's
documented rule and the protocol — and from what the client saw on the wire, never from the analyzer.
"""
from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import websockets
from click.testing import CliRunner

from rtreplay.cli import cli
from rtreplay.analyzer.state.request import FORMS
from rtreplay.recorder.proxy import running
from rtreplay.simulator.faults import Features, draw, load_profile
from rtreplay.simulator.server import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import render_html_check  # noqa: E402  (a script, not a package)

TOOLS = [
    {"type": "function", "name": "return_response", "description": "Return the response to the agent",
     "parameters": {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}},
    {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.test/sse", "require_approval": "never"},
]
CHOICES = {
    "auto": "auto", "none": "none", "required": "required",
    "function": {"type": "function", "name": "return_response"},
    "mcp": {"type": "mcp", "server_label": "docs"},
    "invalid": {"type": "function", "function": {"name": "return_response"}},  # the Chat Completions shape
}
SCOPES = ("out-of-band", "default")
OUTCOMES = ("completed", "failed", "cancelled", "incomplete", "rejected", "unfinished")


def interleaved_plan(per_form_and_scope: int) -> list[tuple[str, str]]:
    """Request i has form FORMS[i % 7] and scope SCOPES[(i // 7) % 2]: every pair `per_form_and_scope` times."""
    n = len(FORMS) * len(SCOPES) * per_form_and_scope
    return [(FORMS[i % len(FORMS)], SCOPES[(i // len(FORMS)) % len(SCOPES)]) for i in range(n)]


def create_event(n: int, form: str, scope: str) -> str:
    response = {"conversation": "none" if scope == "out-of-band" else "auto", "output_modalities": ["text"],
                "instructions": "Look up the customer id", "tools": TOOLS,
                "metadata": {"response_type": scope, "n": str(n)}}
    if form != "absent":
        response["tool_choice"] = CHOICES[form]
    return json.dumps({"type": "response.create", "event_id": f"evt_fake_{n}", "response": response})


async def outcome_on_the_wire(ws, n: int, form: str, scope: str) -> tuple[str, list[str]]:
    """Send request n and wait for what the server did with it: (outcome, output item types)."""
    await ws.send(create_event(n, form, scope))
    response_id = None
    try:
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if event["type"] == "error" and event["error"].get("event_id") == f"evt_fake_{n}":
                return "rejected", []
            if event["type"] == "response.created" and response_id is None:
                response_id = event["response"]["id"]
            if event["type"] == "response.done" and event["response"]["id"] == response_id:
                output = [item["type"] for item in event["response"]["output"]]
                return event["response"]["status"], output
    except websockets.ConnectionClosed:
        return "unfinished", []


async def run_plan(url: str, plan: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Play the plan one request at a time, reconnecting (a new session) when the server drops us."""
    seen: list[tuple[str, list[str]]] = []
    while len(seen) < len(plan):
        async with websockets.connect(f"{url}/v1/realtime?model=gpt-realtime", max_size=None) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            while len(seen) < len(plan):
                form, scope = plan[len(seen)]
                seen.append(await outcome_on_the_wire(ws, len(seen), form, scope))
                if seen[-1][0] == "unfinished":
                    break
    return seen


def record(tmp_path: Path, faults: str, seed: int, plan: list[tuple[str, str]]) -> tuple[Path, list]:
    out = tmp_path / "logs"

    async def go():
        async with serve(seed=seed, faults=faults) as sim, running(upstream=sim.url, out=out) as proxy:
            return await run_plan(proxy.url, plan)

    return out, asyncio.run(go())


def analyze_json(archive: Path, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["analyze", str(archive), "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def counts_of(report: dict) -> Counter:
    return Counter({(g["form"], g["split"]["scope"], o): g[o] for g in report["groups"] for o in OUTCOMES if g[o]})


def test_seed_profile_counts_equal_the_scenario_and_the_headline_answers_the_seed(tmp_path):
    per_pair = 10
    archive, seen = record(tmp_path, "seed-oob-forced-function", 0, interleaved_plan(per_pair))
    # The scenario: the seed profile fails exactly the out-of-band object-form function requests; the nested
    # shape is rejected up front (missing_required_parameter); everything else completes.
    expected = Counter()
    for form in FORMS:
        for scope in SCOPES:
            outcome = ("rejected" if form == "invalid" else
                       "failed" if (form, scope) == ("function", "out-of-band") else "completed")
            expected[(form, scope, outcome)] = per_pair
    plan = interleaved_plan(per_pair)
    assert Counter((form, scope, outcome) for (form, scope), (outcome, _) in zip(plan, seen)) == expected
    report = analyze_json(archive)
    assert counts_of(report) == expected
    forced = {(g["form"], g["split"]["scope"]): g["forced_call"] for g in report["groups"]}
    # Forced calls: `required` and the default-conversation `function` call return_response; the failed
    # out-of-band ones produce nothing; the simulator answers MCP choices with a reply (no MCP servers).
    assert forced[("required", "out-of-band")] == {"expected": per_pair, "happened": per_pair}
    assert forced[("function", "default")] == {"expected": per_pair, "happened": per_pair}
    assert forced[("function", "out-of-band")] == {"expected": per_pair, "happened": 0}
    assert forced[("mcp", "out-of-band")] == {"expected": per_pair, "happened": 0}
    function = next(g for g in report["groups"] if (g["form"], g["split"]["scope"]) == ("function", "out-of-band"))
    assert function["top_errors"] == [{"outcome": "failed", "type": "server_error", "code": None, "count": per_pair}]
    headline = report["headline"]
    assert (headline["scope"], headline["worst"]["form"], headline["overlap"]) == ("out-of-band", "function", False)
    assert headline["text"].startswith("Out-of-band requests with tool_choice form `function` failed 100% (10/10")


def expected_under_flaky(plan: list[tuple[str, str]], seed: int) -> list[str]:
    """Each request's outcome by the flaky profile's documented rule (simulator/faults.py docstring)."""
    profile = load_profile("flaky")
    session = index = 0
    outcomes = []
    for form, scope in plan:
        features = Features(form, "none" if scope == "out-of-band" else "auto", "absent", "text", "gpt-realtime", 2)
        fault = profile.decide(features, draw(seed, session, index))
        base = "rejected" if form == "invalid" else "completed"
        assert fault is None or form != "invalid", "plan the scenario so faults miss the rejected requests"
        kind = fault["kind"] if fault else None
        outcomes.append({"fail": "failed", "error": "rejected", "drop": "unfinished"}.get(kind, base))
        session, index = (session + 1, 0) if kind == "drop" else (session, index + 1)
    return outcomes


def test_flaky_profile_counts_equal_the_fault_rule_and_what_the_client_saw(tmp_path):
    plan, seed = interleaved_plan(5), 3  # seed 3 draws fails, delays and a dropped connection in 70 requests
    want = expected_under_flaky(plan, seed)
    assert {"failed", "unfinished"} <= set(want)  # the scenario exercises faults, not only happy paths
    archive, seen = record(tmp_path, "flaky", seed, plan)
    assert [o for o, _ in seen] == want
    expected = Counter((form, scope, outcome) for (form, scope), outcome in zip(plan, want))
    report = analyze_json(archive)
    assert counts_of(report) == expected
    assert report["totals"]["requests"] == len(plan)
    by_session = analyze_json(archive, "--by", "session")
    assert len({g["split"]["session"] for g in by_session["groups"]}) == 2  # the drop forced a reconnect


@pytest.fixture(scope="module")
def html_page(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("html")
    archive, _ = record(tmp_path, "seed-oob-forced-function", 0, interleaved_plan(2))
    page = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["analyze", str(archive), "--html", str(page)])
    assert result.exit_code == 0, result.output
    return page


def test_html_of_a_recorded_archive_shows_each_failure_with_its_timeline(html_page):
    html = html_page.read_text()
    assert html.count('<tr class="failed">') == 2 and html.count('<section id="t-') == 2
    assert "&quot;server_error&quot;" in html  # the response.done payload in the excerpt


@pytest.mark.skipif(render_html_check.find_browser() is None, reason="no Chromium installed")
def test_html_renders_in_headless_chromium(html_page, tmp_path):
    assert render_html_check.check(html_page, tmp_path / "report.png", render_html_check.find_browser()) == []
