"""The distribution installs one top-level import package, `rtreplay`, and the folders keep their import rules.

The wheel is built offline from a copy of the tracked files (no build isolation: the test extra brings
setuptools), and its top-level names are read from the archive, which is what `pip install .` puts into
site-packages.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_only_rtreplay_at_the_top_level(tmp_path) -> None:
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("rtreplay-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"rtreplay"}
    for part in ("recorder", "analyzer/state", "analyzer/report", "analyzer/replay", "queries", "simulator", "cli"):
        assert f"rtreplay/{part}/__init__.py" in names
    assert "rtreplay/queries/events.sql" in names and any(n.startswith("rtreplay/simulator/profiles/") for n in names)
    assert not any(n.startswith(("rtreplay/tests/", "rtreplay/benchmarks/", "queries/")) for n in names)


# What each folder may import from rtreplay (README, Architecture).
ALLOWED = {
    "recorder": {"recorder"},
    "simulator": {"simulator"},
    "queries": {"queries", "recorder"},
    "analyzer": {"analyzer", "recorder", "queries"},
}


def test_import_rules() -> None:
    broken = []
    for folder, allowed in ALLOWED.items():
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "rtreplay" and len(parts) > 1 and parts[1] not in allowed:
                        broken.append(f"{path.relative_to(ROOT)} imports {name}")
    assert broken == []
