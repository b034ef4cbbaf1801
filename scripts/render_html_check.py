"""Render an `rtreplay analyze --html` page in headless Chromium: screenshot it and check the charts loaded.

    python scripts/render_html_check.py report.html --screenshot /tmp/report.png
    python scripts/render_html_check.py logs/ --screenshot /tmp/report.png   # runs `rtreplay analyze --html` first
    python scripts/render_html_check.py logs/ --report all --screenshot /tmp/all.png  # with the voice sections

Checks (exit 1 on failure, 2 when no Chromium is installed): Chromium's DOM after loading the file still
holds every SVG chart of the file (two for the tool_choice page, more with the voice reports' sections), their
marks and every failed-request row; the page loaded with networking off; the screenshot is not blank (a blank
page compresses to a few kilobytes); laid out 1400 px wide, no table overflows its box (no scrollbar, nothing
clipped) and no two chart labels on one line overlap (measured by a probe page that frames the report; the
report itself has no scripts). Look at the screenshot to judge it.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
MIN_PNG_BYTES = 20_000
LAYOUT_WIDTH = 1400
# Frames the report and writes what it measured into its own DOM, which --dump-dom prints.
PROBE = """<!DOCTYPE html><html><body><iframe id="f" src="REPORT" style="width:WIDTHpx;height:900px;border:0"></iframe>
<pre id="out">not measured</pre><script>
document.getElementById("f").onload = () => {
  const d = document.getElementById("f").contentDocument, found = [];
  d.querySelectorAll("table").forEach(t => {
    if (t.scrollWidth > t.clientWidth + 1 || t.getBoundingClientRect().right > d.documentElement.clientWidth + 1)
      found.push("table clipped: " + (t.previousElementSibling || {}).textContent);
  });
  d.querySelectorAll("svg").forEach(svg => {
    const rows = {};
    svg.querySelectorAll("text").forEach(t => (rows[t.getAttribute("y")] ||= []).push(t.getBoundingClientRect()));
    Object.values(rows).forEach(r => r.sort((a, b) => a.left - b.left).forEach((box, i) => {
      if (i && box.left < r[i - 1].right) found.push("chart labels overlap at x=" + Math.round(box.left));
    }));
  });
  document.getElementById("out").textContent = ["measured", ...found].join(String.fromCharCode(10));
};
</script></body></html>"""


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def chromium(browser: str, profile: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={profile}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


def check(html: Path, screenshot: Path, browser: str) -> list[str]:
    """Problems found rendering `html` (empty when it rendered), the screenshot written to `screenshot`."""
    url = html.resolve().as_uri()
    source = html.read_text(encoding="utf-8")
    problems = []
    with tempfile.TemporaryDirectory() as profile:
        dom = chromium(browser, profile, "--dump-dom", url).stdout
        shot = chromium(browser, profile, f"--window-size={LAYOUT_WIDTH},1800", f"--screenshot={screenshot}", url)
        probe = Path(profile) / "probe.html"
        probe.write_text(PROBE.replace("REPORT", url).replace("WIDTH", str(LAYOUT_WIDTH)), encoding="utf-8")
        measured = chromium(browser, profile, "--allow-file-access-from-files", "--virtual-time-budget=10000",
                            f"--window-size={LAYOUT_WIDTH + 40},1000", "--dump-dom", probe.as_uri()).stdout
    if dom.count("<svg") != source.count("<svg") or dom.count("<svg") < 1:
        problems.append(f"{source.count('<svg')} SVG charts in the file, {dom.count('<svg')} in the rendered DOM")
    for mark, what in (("<circle", "failure-rate dots"), ("<rect", "time bars")):
        if source.count(mark) != dom.count(mark):
            problems.append(f"{what}: {source.count(mark)} in the file, {dom.count(mark)} rendered")
    if source.count('class="failed"') != dom.count('class="failed"'):
        problems.append("not every failed-request row made it into the rendered DOM")
    layout = measured.split('<pre id="out">', 1)[-1].split("</pre>", 1)[0]
    if not layout.startswith("measured"):
        problems.append(f"the layout probe did not run: {layout[:200]!r}")
    problems += [f"at {LAYOUT_WIDTH} px: {line}" for line in layout.splitlines()[1:] if line]
    if not screenshot.exists():
        problems.append(f"no screenshot written: {shot.stderr.strip()[-300:]}")
    elif screenshot.stat().st_size < MIN_PNG_BYTES:
        problems.append(f"screenshot is {screenshot.stat().st_size} bytes: the page looks blank")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path, help="an HTML report, or an archive directory to report on first")
    parser.add_argument("--screenshot", type=Path, default=Path("report.png"))
    parser.add_argument("--report", default="tool_choice",
                        help="reports of the page made from an archive (rtreplay analyze --report), e.g. all")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium found (apt-get install -y chromium); nothing checked", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        html = args.page
        if html.is_dir():
            html = Path(tmp) / "report.html"
            subprocess.run([sys.executable, "-c", "from rtreplay.cli import main; main()", "analyze", str(args.page), "--html", str(html),
                            "--format", "json", "--report", args.report], check=True, stdout=subprocess.DEVNULL)
        problems = check(html, args.screenshot, browser)
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    if not problems:
        print(f"ok: rendered in {browser}; screenshot {args.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
