"""rtreplay.analyzer.report.render and rtreplay.analyzer.report.html: the same numbers in every format; JSON shape as docs/report.md says."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html.parser import HTMLParser
from pathlib import Path

from rich.console import Console

from rtreplay.analyzer.report.render import render_csv, render_json, render_markdown, render_table, to_json
from rtreplay.analyzer.report.html import anchor, render_html
from rtreplay.analyzer.report.tool_choice import build_report
from rtreplay.analyzer.report.timelines import TimelineEvent
from report_factory import T0, many

DOC = Path(__file__).resolve().parents[2] / "docs" / "report.md"


def seed_requests():
    return (many(12, "function", "failed") + many(12, "required", "completed") + many(3, "auto", "completed", "default")
            + many(1, "invalid", "rejected") + many(2, "auto", "unfinished", "default"))


def test_json_groups_carry_every_documented_field_with_null_semantics():
    data = to_json(build_report(seed_requests()))
    assert list(data) == ["report", "version", "source", "filters", "split_by", "headline", "totals", "groups",
                          "over_time", "problems"]
    keys = [(g["form"], g["split"]["scope"]) for g in data["groups"]]
    assert keys == [("auto", "default"), ("required", "out-of-band"), ("function", "out-of-band"),
                    ("invalid", "out-of-band")]
    auto, required, function, invalid = data["groups"]
    assert function["requests"] == 12 and function["failed"] == 12 and function["decided"] == 12
    assert function["failure_rate"] == 1.0 and round(function["ci_low"], 4) == 0.7575 and function["ci_high"] == 1.0
    assert function["forced_call"] == {"expected": 12, "happened": 0}
    assert function["top_errors"] == [{"outcome": "failed", "type": "server_error", "code": None, "count": 12}]
    assert required["forced_call"] == {"expected": 12, "happened": 12}
    assert auto["forced_call"] is None and auto["unfinished"] == 2 and auto["decided"] == 3
    assert invalid["failure_rate"] == 0.0 and invalid["forced_call"] is None  # rejected: no forced_call known
    assert data["totals"]["requests"] == 30
    assert data["headline"]["worst"]["form"] == "function" and data["headline"]["overlap"] is False


def test_json_rate_is_null_when_nothing_was_decided():
    (group,) = to_json(build_report(many(2, "auto", "unfinished")))["groups"]
    assert (group["failure_rate"], group["ci_low"], group["ci_high"]) == (None, None, None)


def test_json_is_stable_for_the_same_requests_in_any_order():
    requests = seed_requests()
    assert render_json(build_report(requests)) == render_json(build_report(list(reversed(requests))))


def test_every_json_field_is_documented():
    doc = DOC.read_text()
    data = to_json(build_report(seed_requests()))
    fields = set(data) | set(data["groups"][0]) | set(data["headline"]) | set(data["filters"]) | {"unit", "buckets"}
    missing = sorted(f for f in fields if f"`{f}`" not in doc)
    assert not missing, f"docs/report.md does not mention {missing}"


def test_csv_and_markdown_show_the_same_counts_as_json():
    report = build_report(seed_requests(), splits=["scope", "model"])
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    groups = to_json(report)["groups"]
    assert [(r["form"], r["scope"], int(r["failed"]), int(r["requests"])) for r in rows] == [
        (g["form"], g["split"]["scope"], g["failed"], g["requests"]) for g in groups]
    assert rows[0]["failure_rate"] == "0.0" and rows[0]["forced_expected"] == ""
    md = render_markdown(report)
    assert md.startswith("**Out-of-band requests with tool_choice form `function` failed 100%")
    assert "| `function` | out-of-band | gpt-realtime | 12 | 0 | 12 | 0 | 0 | 0 | 0 | 100% (76–100%) | 0/12 |" in md


def test_terminal_table_lists_each_group_and_the_headline():
    console = Console(file=io.StringIO(), width=220, color_system=None)
    render_table(build_report(seed_requests()), console)
    text = console.file.getvalue()
    assert re.search(r"function\s+out-of-band\s+12\s+0\s+12\s+0\s+0\s+0\s+0\s+100%\s+76–100%\s+0/12", text)
    assert "function out-of-band: server_error ×12" in text and "intervals do not overlap" in text


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.failed_rows = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        self.refs += [v for k, v in attrs if k in ("href", "src", "xlink:href", "action", "srcset")]
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "tr" and a.get("class") == "failed":
            self.failed_rows += 1


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def test_html_is_self_contained_with_charts_and_every_failed_request():
    requests = seed_requests() + many(2, "function", "failed", ts=T0 + dt.timedelta(hours=3))
    report = build_report(requests, source="logs/")
    first = report.failed[0]
    excerpt = {first.request_id: [TimelineEvent(first.seq, T0, "client", "response.create", "{}")]}
    html = render_html(report, excerpt)
    tags = _parse(html)
    assert tags.tags.count("svg") == 2 and "circle" in tags.tags and "rect" in tags.tags
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(tags.tags)
    assert all(ref.startswith("#") for ref in tags.refs), tags.refs  # no network fetches, only in-page anchors
    assert "url(" not in html and "@import" not in html
    assert tags.failed_rows == len(report.failed) == 14
    assert all(f"rtreplay show logs/ {r.session_id} --at {r.seq}" in html for r in report.failed)
    assert f"#{anchor(first)}" in tags.refs and anchor(first) in tags.ids


def test_html_escapes_recorded_text():
    evil = many(1, "function", "failed", session_id="<script>alert(1)</script>", error_type="<b>x</b>")
    report = build_report(evil)
    r = report.failed[0]
    html = render_html(report, {r.request_id: [TimelineEvent(r.seq, T0, "server", "error", "<script>x</script>")]})
    assert "<script>" not in html and "script" not in _parse(html).tags and "b" not in _parse(html).tags


def test_html_of_an_empty_report_still_renders():
    html = render_html(build_report([]))
    assert "No failed requests" in html and _parse(html).tags.count("svg") == 2
