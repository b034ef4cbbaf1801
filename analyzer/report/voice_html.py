"""The voice reports as sections of the `--html` page: inline SVG charts and tables, no scripts, no fetches.

Latency: the distribution of time to first audio (histogram) and its p50/p90 by session minute. Interruptions:
a timeline per session with each barge-in marked by what the app did (truncated, invalid truncate, none).
Cost: a bar per session, split into heard output, unheard audio and transcription. Failures: counts per
hour/day stacked by kind. Every value from the archive is HTML-escaped.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from typing import Any

from rtreplay.analyzer.report.cost import CostReport
from rtreplay.analyzer.report.failures import KINDS, FailuresReport
from rtreplay.analyzer.report.html import CSS
from rtreplay.analyzer.report.interruptions import InterruptionsReport
from rtreplay.analyzer.report.latency import LatencyReport
from rtreplay.analyzer.report.voice_render import Table, cell, ms, money

PALETTE = ("#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#f9a825", "#5d4037", "#ad1457",
           "#9e9e9e", "#283593", "#558b2f", "#d84315", "#37474f")
MARK = {"ok": "#2e7d32", "invalid": "#c62828", "none": "#ef6c00"}


def _svg(width: float, height: float, label: str, body: Sequence[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" role="img" '
            f'aria-label="{escape(label)}">' + "".join(body) + "</svg>")


def _axis(left: float, top: float, width: float, height: float, peak: float, unit: str = "") -> list[str]:
    out = []
    for frac in (0, 0.5, 1):
        y = top + height * (1 - frac)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#e0e0e0"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
                   f'{escape(cell(round(peak * frac) if isinstance(peak, int) else round(peak * frac, 4)))}{unit}</text>')
    return out


def table_html(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    def td(i: int, v: Any) -> str:  # text left, numbers right
        left = i == 0 or (isinstance(v, str) and not v.lstrip("$…").replace(",", "").replace(".", "").isdigit())
        return f'<td class="{"l" if left else ""}">{escape(cell(v))}</td>'

    rows = "".join("<tr>" + "".join(td(i, v) for i, v in enumerate(r)) + "</tr>" for r in t.rows)
    note = f'<p class="muted">{escape(t.note)}</p>' if t.note else ""
    return f"<h3>{escape(t.title)}</h3><table><tr>{head}</tr>{rows}</table>{note}"


def histogram_chart(report: LatencyReport) -> str:
    bins = report.histogram
    if not bins:
        return '<p class="muted">No spoken turn got audio back.</p>'
    left, width, height, top = 50, 860, 180, 10
    peak = max(n for _, n in bins) or 1
    step = width / len(bins)
    width_ms = bins[1][0] - bins[0][0] if len(bins) > 1 else 50
    body = _axis(left, top, width, height, peak)
    for i, (lo, n) in enumerate(bins):
        h = height * n / peak
        body.append(f'<rect x="{left + i * step + 1:.1f}" y="{top + height - h:.1f}" width="{max(step - 2, 1):.1f}" '
                    f'height="{h:.1f}" fill="#1565c0"><title>{lo:,.0f}–{lo + width_ms:,.0f} ms: {n} turns</title></rect>')
        if i % max(1, round(len(bins) / 10)) == 0:
            body.append(f'<text x="{left + i * step:.1f}" y="{top + height + 16}" font-size="10">{lo:,.0f}</text>')
    body.append(f'<text x="{left + width}" y="{top + height + 30}" font-size="11" text-anchor="end">'
                f'ms from speech_stopped to first audio</text>')
    return _svg(left + width + 10, height + 50, "time to first audio distribution", body)


def minute_chart(report: LatencyReport) -> str:
    pts = [(m, s) for m, s in report.by_minute if s.n]
    if len(pts) < 2:
        return f'<p class="muted">Samples in {len(pts)} session minute(s) only: no trend to draw (see the table).</p>'
    left, width, height, top = 50, 860, 180, 10
    peak = max(s.p90 or 0 for _, s in pts) or 1
    last = max(m for m, _ in pts) or 1

    def xy(m: int, v: float | None) -> str:
        return f"{left + width * m / last:.1f},{top + height * (1 - (v or 0) / peak):.1f}"

    body = _axis(left, top, width, height, peak, " ms")
    for key, colour in (("p90", "#c62828"), ("p50", "#1565c0")):
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                    + " ".join(xy(m, getattr(s, key)) for m, s in pts) + '"/>')
        for m, s in pts:
            x, y = xy(m, getattr(s, key)).split(",")
            body.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"><title>minute {m}: {key} '
                        f'{getattr(s, key):,.0f} ms (n={s.n})</title></circle>')
    body.append(f'<text x="{left + width}" y="{top + height + 18}" font-size="11" text-anchor="end">'
                f'session minute (0–{last})</text>')
    legend = '<div class="legend"><span><i style="background:#1565c0"></i>p50</span>' \
             '<span><i style="background:#c62828"></i>p90</span></div>'
    return _svg(left + width + 10, height + 30, "time to first audio by session minute", body) + legend


def barge_in_chart(report: InterruptionsReport, lanes: int = 20) -> str:
    by_session: dict[str, list] = {}
    for sid, b in report.barge_ins:
        by_session.setdefault(sid, []).append(b)
    if not by_session:
        return '<p class="muted">No barge-ins.</p>'
    shown = sorted(by_session, key=lambda s: (-len(by_session[s]), s))[:lanes]
    left, width, row = 200, 700, 22
    span = max(b.at_s for s in shown for b in by_session[s]) or 1
    body = []
    for i, sid in enumerate(shown):
        y = 20 + i * row
        body.append(f'<text x="{left - 8}" y="{y + 4}" font-size="11" text-anchor="end">{escape(sid[-24:])}</text>'
                    f'<line x1="{left}" y1="{y}" x2="{left + width}" y2="{y}" stroke="#e0e0e0"/>')
        for b in by_session[sid]:
            what = "none" if b.truncate_seq is None else ("ok" if b.valid or b.truncated_by == "server" else "invalid")
            heard = f" heard {b.heard!r} of {b.generated!r}" if b.heard is not None else ""
            body.append(f'<circle cx="{left + width * b.at_s / span:.1f}" cy="{y}" r="5" fill="{MARK[what]}">'
                        f'<title>{escape(sid)} seq {b.seq} at {b.at_s:,.1f} s: truncate {what}, '
                        f'{ms(b.generated_ms) or "unknown"} ms generated, audio_end_ms {b.audio_end_ms}'
                        f'{" (the server truncated)" if b.truncated_by == "server" else ""}{escape(heard)}'
                        f'</title></circle>')
    h = 30 + row * len(shown)
    end = f"{span:,.0f}" if span >= 10 else f"{span:.1f}"  # short sessions: 0–0.8, not 0–1
    body.append(f'<text x="{left + width}" y="{h}" font-size="11" text-anchor="end">seconds since session start '
                f'(0–{end})</text>')
    legend = ('<div class="legend"><span><i style="background:#2e7d32"></i>truncated</span>'
              '<span><i style="background:#c62828"></i>invalid truncate</span>'
              '<span><i style="background:#ef6c00"></i>never truncated</span></div>')
    more = f'<p class="muted">{len(by_session) - lanes} more sessions in the JSON.</p>' if len(by_session) > lanes else ""
    return _svg(left + width + 20, h + 8, "barge-ins per session", body) + legend + more


def cost_chart(report: CostReport, limit: int = 30) -> str:
    lines = sorted(report.sessions, key=lambda s: (-(s.usd or 0), s.key))[:limit]
    if not lines or not any(s.usd for s in lines):
        return '<p class="muted">Nothing priced.</p>'
    left, width, row = 200, 640, 20
    peak = max(s.usd or 0 for s in lines) or 1
    body = []
    for i, s in enumerate(lines):
        y = 10 + i * row
        parts = [("output heard", (s.usd or 0) - s.unheard_usd - (s.transcription_usd or 0), "#1565c0"),
                 ("audio never heard", s.unheard_usd, "#ef6c00"), ("transcription", s.transcription_usd or 0, "#9e9e9e")]
        x = left
        body.append(f'<text x="{left - 8}" y="{y + 13}" font-size="11" text-anchor="end">{escape(str(s.key[0])[-24:])}</text>')
        for name, v, colour in parts:
            w = width * max(v, 0) / peak
            if w > 0:
                body.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{colour}">'
                            f'<title>{escape(str(s.key[0]))}: {name} {money(v)}</title></rect>')
            x += w
        body.append(f'<text x="{x + 4:.1f}" y="{y + 13}" font-size="11">{money(s.usd)}</text>')
    legend = ('<div class="legend"><span><i style="background:#1565c0"></i>responses (heard)</span>'
              '<span><i style="background:#ef6c00"></i>audio never heard</span>'
              '<span><i style="background:#9e9e9e"></i>transcription</span></div>')
    return _svg(left + width + 90, 20 + row * len(lines), "cost by session", body) + legend


def failures_chart(report: FailuresReport) -> str:
    buckets = report.over_time
    if not buckets:
        return '<p class="muted">No failures.</p>'
    kinds = [k for k in KINDS if any(k in c for _, c in buckets)]
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}
    left, width, height, top = 50, 860, 180, 10
    peak = max(sum(c.values()) for _, c in buckets) or 1
    step = min(width / len(buckets), 48)
    fmt = "%m-%d %H:00" if report.time_unit == "hour" else "%Y-%m-%d"
    body = _axis(left, top, width, height, peak)
    for i, (start, counts) in enumerate(buckets):
        y = top + height
        label = dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime(fmt)
        for k in kinds:
            n = counts.get(k, 0)
            if n:
                h = height * n / peak
                y -= h
                body.append(f'<rect x="{left + i * step + step * 0.1:.1f}" y="{y:.1f}" width="{max(step * 0.8, 1):.1f}" '
                            f'height="{h:.1f}" fill="{colour[k]}"><title>{label} UTC: {n} {k}</title></rect>')
        if i % max(1, round(len(buckets) / 10)) == 0:
            body.append(f'<text x="{left + i * step + step / 2:.1f}" y="{top + height + 16}" font-size="10" '
                        f'text-anchor="middle">{label}</text>')
    legend = "".join(f'<span><i style="background:{colour[k]}"></i>{k}</span>' for k in kinds)
    return _svg(left + width + 10, height + 30, "failures over time", body) + f'<div class="legend">{legend}</div>'


CHARTS: dict[str, Any] = {
    "latency": lambda r: ("<h3>Time to first audio: distribution</h3>" + histogram_chart(r)
                          + "<h3>Time to first audio by session minute</h3>" + minute_chart(r)),
    "interruptions": lambda r: "<h3>Barge-ins per session</h3>" + barge_in_chart(r),
    "cost": lambda r: "<h3>Cost by session</h3>" + cost_chart(r),
    "failures": lambda r: f"<h3>Failures per {r.time_unit}</h3>" + failures_chart(r),
}
TITLES = {"latency": "Latency", "interruptions": "Interruptions", "cost": "Cost", "failures": "Failures"}


def section(name: str, report: Any) -> str:
    """One report as a section: its headline, chart(s) and tables."""
    return (f'<h2 id="{name}">{TITLES[name]}</h2><p class="headline">{escape(report.headline)}</p>'
            + CHARTS[name](report) + "".join(table_html(t) for t in report.tables()))


def page(reports: dict[str, Any], source: str | None, now: dt.datetime | None = None) -> str:
    """A page of voice-report sections (used when the tool_choice report is not asked for)."""
    made = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>rtreplay analyze — {escape(source or '')}</title><style>{CSS}</style></head><body>",
        f"<h1>Voice session report</h1><p class='muted'>{escape(source or '')} · made {made}</p>",
        *(section(n, r) for n, r in reports.items()),
        "</body></html>\n",
    ])
