"""Check that the given distributions' requirements are installed at the newest release the index offers.

    python .ci/newest.py rtreplay 'pytest>=8' 'openai[realtime]>=1.107'

Each argument is a requirement; for an installed distribution named alone (`rtreplay`) its own unconditional
requirements are checked instead. Exits 1 naming every requirement with a newer release; prints the versions.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import distribution, version


def name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def main(specs: list[str]) -> int:
    names: set[str] = set()
    for spec in specs:
        if spec == name(spec):  # a distribution: its own requirements (extras' ones carry a marker)
            names |= {name(r) for r in distribution(spec).requires or [] if ";" not in r}
        else:
            names.add(name(spec))
    env = {k: v for k, v in os.environ.items() if k != "PIP_QUIET"}  # a quiet pip lists nothing
    listed = subprocess.run([sys.executable, "-m", "pip", "list", "--outdated", "--format=json"],
                            capture_output=True, text=True, check=True, env=env).stdout
    outdated = {name(p["name"]): p["latest_version"] for p in json.loads(listed)}
    print("  " + ", ".join(f"{n} {version(n)}" for n in sorted(names)))
    stale = sorted(n for n in names if n in outdated)
    for n in stale:
        print(f"FAIL: {n} {version(n)} is installed but {outdated[n]} is the newest release", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
