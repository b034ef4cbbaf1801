"""Render an `rtreplay analyze --html` page in headless Chromium: screenshot it and check the charts loaded.

    python scripts/render_html_check.py report.html --screenshot /tmp/report.png
    python scripts/render_html_check.py logs/ --screenshot /tmp/report.png   # runs `rtreplay analyze --html` first
    python scripts/render_html_check.py logs/ --report all --screenshot /tmp/all.png  # with the voice sections

Checks (exit 1 on failure, 2 when no Chromium is installed): Chromium's DOM after loading the file still
holds every SVG chart of the file (two for the tool_choice page, more with the voice reports' sections), their
marks and every failed-request row; the page loaded with networking off; the
screenshot is not blank (a blank page compresses to a few kilobytes). Look at the screenshot to judge it.
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
        shot = chromium(browser, profile, "--window-size=1200,1800", f"--screenshot={screenshot}", url)
    if dom.count("<svg") != source.count("<svg") or dom.count("<svg") < 1:
        problems.append(f"{source.count('<svg')} SVG charts in the file, {dom.count('<svg')} in the rendered DOM")
    for mark, what in (("<circle", "failure-rate dots"), ("<rect", "time bars")):
        if source.count(mark) != dom.count(mark):
            problems.append(f"{what}: {source.count(mark)} in the file, {dom.count(mark)} rendered")
    if source.count('class="failed"') != dom.count('class="failed"'):
        problems.append("not every failed-request row made it into the rendered DOM")
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
