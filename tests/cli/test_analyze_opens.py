"""`rtreplay analyze` lists the archive once and opens each archive file once (issue 13).

The archive is served through a pyarrow file system that counts every listing and every open, rooted in
the archive directory (paths inside it are relative): a reader that went around the opened `Archive` to
the local disk would not find the files at all.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.fs as pafs
from click.testing import CliRunner

from rtreplay.cli import cli
from rtreplay.recorder import store

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


class Counting(pafs.FileSystemHandler):
    """A pyarrow file system handler over another file system, counting listings and opens by path."""

    def __init__(self, fs: pafs.FileSystem) -> None:
        self.fs, self.listings, self.opens = fs, Counter(), Counter()

    def get_type_name(self): return "counting"
    def normalize_path(self, path): return path
    def get_file_info(self, paths): return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        self.listings[selector.base_dir] += 1
        return self.fs.get_file_info(selector)

    def open_input_file(self, path):
        self.opens[path] += 1
        return self.fs.open_input_file(path)

    def open_input_stream(self, path):
        self.opens[path] += 1
        return self.fs.open_input_stream(path)

    def _refuse(self, *args):  # writing: readers never write
        raise NotImplementedError("read-only")

    copy_file = create_dir = delete_dir = delete_dir_contents = delete_file = _refuse
    delete_root_dir_contents = move = open_append_stream = open_output_stream = _refuse

    def __eq__(self, other): return self is other
    def __ne__(self, other): return self is not other


def test_analyze_lists_once_and_opens_each_file_once(tmp_path, monkeypatch) -> None:
    root = tmp_path / "logs"
    for name in ("text", "audio"):
        shutil.copytree(GOLDEN / name, root, dirs_exist_ok=True)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))
    assert len(files) == 2
    counting = Counting(pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem()))
    opened_as: list[str] = []

    def filesystem_for(location: str):
        opened_as.append(location)
        return pafs.PyFileSystem(counting), ""

    monkeypatch.setattr(store, "filesystem_for", filesystem_for)
    result = CliRunner().invoke(cli, ["analyze", "ARCHIVE", "--format", "json", "--jobs", "1"])  # counted here
    assert result.exit_code == 0, result.output
    assert opened_as == ["ARCHIVE"]
    assert sum(counting.listings.values()) == 1
    assert sorted(counting.opens) == files and set(counting.opens.values()) == {1}
    # and the report is the one the local archive gives
    monkeypatch.undo()
    local = CliRunner().invoke(cli, ["analyze", str(root), "--format", "json"])
    assert json.loads(result.output)["groups"] == json.loads(local.output)["groups"]
