"""A `Report` as one self-contained HTML page: inline CSS, inline SVG charts, no scripts, no fetches.

Sections: the headline; failure rate by form with 95% Wilson whiskers; outcomes over time (stacked bars);
the table of groups; the failed requests, each with the `rtreplay show` command that opens its timeline
and, when `timelines` has it, an anchor to an excerpt of the events around it appended at the end.
Every value from the archive is HTML-escaped, so recorded payloads cannot inject markup.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from html import escape

from rtreplay.analyzer.state.request import OUTCOMES, Request
from rtreplay.analyzer.report.render import error_text, forced_text
from rtreplay.analyzer.report.tool_choice import Group, Report, interval_text, pct
from rtreplay.analyzer.report.timelines import TimelineEvent

# One hue per outcome, told apart at a glance (cancelled amber, rejected teal: no two similar oranges).
COLOURS = {"completed": "#2e7d32", "failed": "#c62828", "cancelled": "#f9a825", "incomplete": "#6a1b9a",
           "rejected": "#00838f", "unfinished": "#9e9e9e"}
LABEL_FORMATS = {"day": "%Y-%m-%d", "hour": "%m-%d %H:00", "minute": "%H:%M", "second": "%H:%M:%S"}
LABEL_CHAR_PX = 6.5  # width of one character of a 10px axis label, generously
SCOPE_COLOURS = {"out-of-band": "#c62828", "default": "#1565c0"}
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1500px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd}
.headline{font-size:16px;font-weight:600;background:#f5f5f5;border-left:4px solid #c62828;padding:10px 14px}
table{border-collapse:collapse;font-size:13px;margin:8px 0;display:block;overflow-x:auto;max-width:100%} th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#fafafa;white-space:nowrap} td{white-space:nowrap;vertical-align:top} td.l,th.l{text-align:left}
td.wrap{white-space:normal;min-width:160px} td.cmd{white-space:normal;overflow-wrap:anywhere;min-width:220px} code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
pre{white-space:pre-wrap;word-break:break-all;margin:0;max-width:640px} tr.mark{background:#fff3e0}
.legend span{display:inline-block;margin-right:14px} .legend i{display:inline-block;width:11px;height:11px;margin-right:4px}
.muted{color:#777} svg text{font-family:system-ui,sans-serif}
"""


def _inline_code(text: str) -> str:
    """Escaped text whose `backticked` spans become <code> (the headline is written for Markdown too)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _label(g: Group) -> str:
    return " · ".join([g.form, *("-" if v is None else str(v) for _, v in g.split)])


def rate_chart(groups: Sequence[Group]) -> str:
    """Failure rate per group as a dot with its 95% interval as whiskers, on a 0–100% axis."""
    left, width, row = 240, 420, 26
    height = 40 + row * len(groups)

    def x(v: float) -> float:
        return left + v * width

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 170}" height="{height}" '
             f'role="img" aria-label="failure rate by tool_choice form">']
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line x1="{x(tick):.1f}" y1="20" x2="{x(tick):.1f}" y2="{height - 14}" stroke="#e0e0e0"/>'
                     f'<text x="{x(tick):.1f}" y="14" font-size="11" text-anchor="middle">{tick:.0%}</text>')
    for i, g in enumerate(groups):
        y = 34 + i * row
        scope = dict(g.split).get("scope")
        colour = SCOPE_COLOURS.get(str(scope), "#333")
        parts.append(f'<text x="{left - 8}" y="{y + 4}" font-size="12" text-anchor="end">{escape(_label(g))}</text>')
        if g.interval is None or g.failure_rate is None:
            parts.append(f'<text x="{x(0) + 4}" y="{y + 4}" font-size="11" fill="#777">no decided requests</text>')
            continue
        lo, hi = x(g.interval[0]), x(g.interval[1])
        tip = f"{_label(g)}: {pct(g.failure_rate)} ({g.failed}/{g.decided}), 95% CI {interval_text(g.interval)}"
        parts.append(
            f'<g class="rate"><title>{escape(tip)}</title>'
            f'<line x1="{lo:.1f}" y1="{y}" x2="{hi:.1f}" y2="{y}" stroke="{colour}" stroke-width="2"/>'
            f'<line x1="{lo:.1f}" y1="{y - 6}" x2="{lo:.1f}" y2="{y + 6}" stroke="{colour}" stroke-width="2"/>'
            f'<line x1="{hi:.1f}" y1="{y - 6}" x2="{hi:.1f}" y2="{y + 6}" stroke="{colour}" stroke-width="2"/>'
            f'<circle cx="{x(g.failure_rate):.1f}" cy="{y}" r="5" fill="{colour}"/></g>'
            f'<text x="{x(1) + 10}" y="{y + 4}" font-size="11">{pct(g.failure_rate)} ({g.failed}/{g.decided}) '
            f'[{interval_text(g.interval)}]</text>')
    parts.append("</svg>")
    return "".join(parts)


def time_chart(report: Report) -> str:
    """Outcome counts per hour or day as stacked bars, one colour per outcome."""
    buckets = report.over_time
    left, width, height, top = 50, 860, 220, 10
    peak = max((sum(b.outcomes.values()) for b in buckets), default=0) or 1
    step = min(width / max(len(buckets), 1), 48)  # a few buckets make narrow bars, not slabs
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 10}" height="{height + 50}" '
             f'role="img" aria-label="outcomes over time">']
    for frac in (0, 0.5, 1):
        y = top + height * (1 - frac)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#e0e0e0"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{round(peak * frac)}</text>')
    fmt = LABEL_FORMATS.get(report.time_unit, "%Y-%m-%d %H:%M:%S")
    # Labels never overlap: every n-th bucket, n so that one label's width (plus a gap) fits in n steps.
    label_px = len(dt.datetime(2000, 12, 31, 23, 59, 59).strftime(fmt)) * LABEL_CHAR_PX + 12
    label_every = max(1, math.ceil(label_px / step))
    for i, b in enumerate(buckets):
        x0, y = left + i * step, top + height
        for outcome in OUTCOMES:
            n = b.outcomes[outcome]
            if not n:
                continue
            h = height * n / peak
            y -= h
            parts.append(f'<rect x="{x0 + step * 0.1:.1f}" y="{y:.1f}" width="{max(step * 0.8, 1):.1f}" '
                         f'height="{h:.1f}" fill="{COLOURS[outcome]}"><title>{b.start.strftime(fmt)} UTC: '
                         f'{n} {outcome}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{x0 + step / 2:.1f}" y="{top + height + 16}" font-size="10" '
                         f'text-anchor="middle">{b.start.strftime(fmt)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{COLOURS[o]}"></i>{o}</span>' for o in OUTCOMES)
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _groups_table(report: Report) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in ("requests", *OUTCOMES, "failure rate", "95% CI", "forced call"))
    splits = "".join(f'<th class="l">{escape(s)}</th>' for s in report.splits)
    rows = []
    for g in report.groups:
        cells = "".join(f'<td class="l">{escape("-" if v is None else str(v))}</td>' for _, v in g.split)
        counts = "".join(f"<td>{g.outcomes[o]}</td>" for o in OUTCOMES)
        errors = escape("; ".join(error_text(e) for e in g.top_errors))
        rows.append(f'<tr><td class="l"><code>{escape(g.form)}</code></td>{cells}<td>{g.requests}</td>{counts}'
                    f'<td>{pct(g.failure_rate)}</td><td>{interval_text(g.interval)}</td><td>{forced_text(g)}</td>'
                    f'<td class="l wrap">{errors}</td></tr>')
    return (f'<table><tr><th class="l">form</th>{splits}{head}<th class="l">top errors</th></tr>'
            + "".join(rows) + "</table>")


def anchor(r: Request) -> str:
    return f"t-{r.session_id}-{r.seq}"


def show_command(archive: str | None, r: Request) -> str:
    return f"rtreplay show {shlex.quote(archive or '.')} {shlex.quote(r.session_id)} --at {r.seq}"


def _failed_table(report: Report, timelines: Mapping[str, Sequence[TimelineEvent]]) -> str:
    if not report.failed:
        return '<p class="muted">No failed requests.</p>'
    rows = []
    for r in report.failed:
        where = escape(f"{r.session_id}:{r.seq}")
        link = f'<a href="#{escape(anchor(r))}">{where}</a>' if r.request_id in timelines else where
        error = escape((r.error_type or "?") + (f"/{r.error_code}" if r.error_code else ""))
        rows.append(f'<tr class="failed"><td class="l">{link}</td><td class="l">{r.ts.strftime("%Y-%m-%d %H:%M:%S")}</td>'
                    f'<td class="l"><code>{escape(r.form_sent)}</code></td><td class="l">{escape(r.scope)}</td>'
                    f'<td class="l">{error}</td><td class="l">{escape(r.response_id or "")}</td>'
                    f'<td class="l cmd"><code>{escape(show_command(report.source, r))}</code></td></tr>')
    return ('<table><tr><th class="l">request</th><th class="l">time (UTC)</th><th class="l">form</th>'
            '<th class="l">scope</th><th class="l">error</th><th class="l">response</th>'
            '<th class="l">timeline</th></tr>' + "".join(rows) + "</table>")


def _timeline_sections(report: Report, timelines: Mapping[str, Sequence[TimelineEvent]]) -> str:
    out = []
    for r in report.failed:
        events = timelines.get(r.request_id)
        if events is None:
            continue
        marks = {r.seq, r.answer_seq, r.done_seq}
        rows = []
        for e in events:
            if e.gap:
                rows.append(f'<tr><td colspan="5" class="l muted">… {e.gap} events not shown …</td></tr>')
                continue
            cls = ' class="mark"' if e.seq in marks else ""
            rows.append(f'<tr{cls}><td>{e.seq}</td><td class="l">{e.ts.strftime("%H:%M:%S.%f")[:-3]}</td>'
                        f'<td class="l">{escape(e.direction)}</td><td class="l">{escape(e.type)}</td>'
                        f'<td class="l"><pre>{escape(e.payload)}</pre></td></tr>')
        out.append(f'<section id="{escape(anchor(r))}"><h3>{escape(r.request_id)} — {escape(r.form_sent)}, '
                   f'{escape(r.scope)}</h3><table><tr><th>seq</th><th class="l">time</th><th class="l">dir</th>'
                   f'<th class="l">type</th><th class="l">payload</th></tr>{"".join(rows)}</table></section>')
    if not out:
        return ""
    return "<h2>Timelines of failed requests</h2>" + "".join(out)


def render_html(report: Report, timelines: Mapping[str, Sequence[TimelineEvent]] | None = None,
                now: dt.datetime | None = None, extra: str = "") -> str:
    """The whole page. `timelines` maps request ids to event excerpts (see rtreplay.analyzer.report.timelines);
    `extra` is more sections (already HTML, e.g. rtreplay.analyzer.report.voice_html) placed before the excerpts."""
    timelines = timelines or {}
    t = report.total
    made = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    problems = "".join(f"<li>{escape(p)}</li>" for p in report.problems)
    not_shown = len(report.failed) - sum(1 for r in report.failed if r.request_id in timelines)
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>rtreplay analyze — {escape(report.source or '')}</title><style>{CSS}</style></head><body>",
        f"<h1>Failure report by tool_choice form</h1><p class='muted'>{escape(report.source or '')} · "
        f"{t.requests} requests · split by {escape(', '.join(report.splits) or 'nothing')} · made {made}</p>",
        f'<p class="headline">{_inline_code(report.headline.text)}</p>',
        f"<p>All requests: failure rate {pct(t.failure_rate)} ({t.failed}/{t.decided}, 95% CI "
        f"{interval_text(t.interval)}); rejected {t.outcomes['rejected']}, unfinished {t.outcomes['unfinished']}.</p>",
        f"<h2>Failure rate by form (95% Wilson interval)</h2>{rate_chart(report.groups)}",
        f"<h2>Outcomes per {report.time_unit}</h2>{time_chart(report)}",
        f"<h2>Requests by form</h2>{_groups_table(report)}",
        f"<h2>Failed requests ({len(report.failed)})</h2>",
        (f'<p class="muted">{not_shown} failed requests have no excerpt below; '
         f"run the command in their row to see their timeline.</p>" if not_shown and report.failed else ""),
        _failed_table(report, timelines),
        extra,
        _timeline_sections(report, timelines),
        f"<h2>Unreadable files</h2><ul>{problems}</ul>" if problems else "",
        "</body></html>\n",
    ])
