"""Every SQL view and canned report is listed in the README's SQL section and in docs/sql.md."""
from __future__ import annotations

from pathlib import Path

import pytest

from rtreplay import queries
ROOT = Path(__file__).resolve().parents[2]


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## SQL views and reports")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


@pytest.mark.parametrize("name", [*queries.VIEWS, *queries.reports()])
def test_listed_in_readme_and_docs(name):
    assert f"`{name}`" in readme_section()
    assert f"| `{name}` |" in (ROOT / "docs" / "sql.md").read_text()
