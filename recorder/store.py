"""An archive opened once: where it is, the file system it lives on, its files (listed once) and what was
skipped while listing them.

A command opens its archive with `Archive.open(location)` and passes the value down; every reader takes
the files from it instead of listing the location again, and reads each file through `read` /
`read_buffer` (one open per file). The file system is a pyarrow `FileSystem`, so an object-store location
fits the same value as a local directory.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rtreplay.recorder.archive import (
    JOURNAL_SUFFIX, PARQUET_SUFFIX, TMP_SUFFIX, ArchiveError, ArchiveProblem, read_table,
)
from rtreplay.recorder.marks import LOST_SUFFIX, MARKS_SUFFIX
from rtreplay.recorder.schema import version_of


@dataclass(frozen=True)
class ArchiveFile:
    """One finished session's Parquet file (or a part of it), or an open session's journal."""

    path: str  # inside the archive's file system
    size: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_journal(self) -> bool:
        return self.name.endswith(JOURNAL_SUFFIX)

    @property
    def session_id(self) -> str:
        """The session the file is named after (parts and suffixes removed; a compacted file's first)."""
        return self.stem.split(".part-")[0].split(COMPACTED_SEP)[0]

    @property
    def stem(self) -> str:
        return self.name.removesuffix(PARQUET_SUFFIX).removesuffix(JOURNAL_SUFFIX)

    @property
    def last_session(self) -> str:
        """The last session in the file: a compacted file holds a range of whole sessions."""
        stem = self.stem.split(".c-")[0]
        return stem.split(COMPACTED_SEP)[1] if COMPACTED_SEP in stem else self.session_id

    @property
    def compaction(self) -> str | None:
        """The id of the compaction that wrote the file (None for a session's own file)."""
        stem = self.stem
        return stem.rsplit(".c-", 1)[1] if COMPACTED_SEP in stem and ".c-" in stem else None

    def holds(self, session_id: str) -> bool:
        return self.session_id <= session_id <= self.last_session

    def __str__(self) -> str:
        return self.path


COMPACTED_SEP = "--"  # `<first session>--<last session>.c-<compaction id>.parquet`: a compacted file
MANIFEST_PREFIX = "_compact-"  # `_compact-<compaction id>.json` in a day's folder: what that compaction replaced


@dataclass
class Archive:
    """An archive's files in session order (journals of finished sessions left out), and the problems met
    listing them. `only` narrows it to some sessions without listing again."""

    location: str
    fs: pafs.FileSystem
    files: list[ArchiveFile]
    problems: list[ArchiveProblem] = field(default_factory=list)
    is_file: bool = False  # opened on one file rather than a directory
    root: str = ""  # the location's path inside `fs`

    @classmethod
    def open(cls, location: str | Path | Archive, days: tuple[str | None, str | None] = (None, None)) -> Archive:
        """List the archive at `location` (a path or URL of a directory, or one file); an `Archive` is
        returned as it is. With `days` (first, last: `YYYY-MM-DD`, either None for open-ended), only the
        partitions `events/date=D` in that range are listed (hive partition pruning) besides open journals.
        """
        if isinstance(location, Archive):
            return location
        fs, root = filesystem_for(str(location))
        name = display(str(location))
        try:
            info = fs.get_file_info(root)
            if info.type == pafs.FileType.File:
                if not info.base_name.endswith((PARQUET_SUFFIX, JOURNAL_SUFFIX)):
                    raise ArchiveError(f"{name}: not an archive (give its directory, a .parquet file or a "
                                       ".arrows journal)")
                return cls(name, fs, [ArchiveFile(root, info.size or 0)], is_file=True, root=root)
            infos = _listing(fs, root, days)
        except OSError as exc:
            raise ArchiveError(f"{name}: cannot be listed ({exc})") from None
        if infos is None:
            raise ArchiveError(f"{name}: no such file or directory")
        return cls(name, fs, *_list(infos, root, _manifests(fs, infos)), root=root)

    @cached_property
    def sessions(self) -> dict[str, list[ArchiveFile]]:
        """The files of each session, by the session id in their names, in session order."""
        out: dict[str, list[ArchiveFile]] = {}
        for f in self.files:
            out.setdefault(f.session_id, []).append(f)
        return out

    def files_of(self, session_id: str) -> list[ArchiveFile]:
        """The files that can hold a session: its own (and its parts), or a compacted file whose range has it."""
        if self.is_file:
            return list(self.files)
        own = self.sessions.get(session_id, [])
        return own + [f for f in self.files if f.compaction and f.session_id != session_id and f.holds(session_id)]

    def only(self, sessions: Iterable[str]) -> Archive:
        """The same archive narrowed to the files named after `sessions`."""
        wanted = set(sessions)
        return Archive(self.location, self.fs, [f for f in self.files if f.session_id in wanted or self.is_file],
                       self.problems, self.is_file, self.root)

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def read_buffer(self, file: ArchiveFile) -> pa.Buffer:
        """The bytes of one file, read in one go."""
        try:
            with self.fs.open_input_file(file.path) as f:
                return f.read_buffer()
        except OSError as exc:
            raise ArchiveError(f"{file}: {exc}") from exc

    def read(self, file: ArchiveFile) -> tuple[pa.Table, str | None]:
        """One file at the current schema version, and a note on damage (a journal cut short)."""
        return read_bytes(file, self.read_buffer(file))

    def iter(self) -> Iterator[tuple[ArchiveFile | str, pa.Table | None, ArchiveProblem | None]]:
        """(file, table, None) per readable file, (file, None, problem) per unreadable one, the listing's
        problems first; a damaged-but-readable file comes with its problem. One file in memory at a time."""
        for problem in self.problems:
            yield problem.path, None, problem
        for f in self.files:
            try:
                table, note = self.read(f)
            except ArchiveError as exc:
                yield f, None, ArchiveProblem(str(f), str(exc).removeprefix(f"{f}: "))
                continue
            yield f, table, (ArchiveProblem(str(f), note) if note else None)


def is_url(location: str | Path) -> bool:
    """An object-store location (`s3://bucket/prefix`, `gs://…`) rather than a local path."""
    return "://" in str(location)


def display(location: str) -> str:
    """A location fit for messages and records: any credentials in it are cut out."""
    return re.sub(r"^(\w+://)[^/@]*@", r"\1", location)


def filesystem_for(location: str) -> tuple[pafs.FileSystem, str]:
    """The file system an archive location is on, and the location's path inside it.

    `s3://` uses the standard AWS settings (environment, config files, instance role); an
    `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) points it at any S3-compatible server. `gs://` uses the
    standard Google settings. Credentials are never part of what rtreplay prints or records.
    """
    if not is_url(location):
        return pafs.LocalFileSystem(), location
    scheme, _, rest = location.partition("://")
    if scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        options: dict = {"region": region} if region else {}
        if endpoint:
            scheme_, _, host = endpoint.partition("://")
            options.update(endpoint_override=host or scheme_, scheme=scheme_ if host else "https")
        if "@" in rest.split("/", 1)[0]:
            raise ArchiveError(f"{display(location)}: put credentials in the standard AWS settings, not the URL")
        return pafs.S3FileSystem(**options), rest.rstrip("/")
    try:
        fs, path = pafs.FileSystem.from_uri(location)
    except (pa.ArrowException, ValueError) as exc:
        raise ArchiveError(f"{display(location)}: not a location rtreplay can read ({exc})") from None
    return fs, path.rstrip("/")


def read_bytes(file: ArchiveFile, buf: pa.Buffer) -> tuple[pa.Table, str | None]:
    """The table in a file's bytes at the current schema version (upgraded if older), note on damage."""
    return read_table(pa.BufferReader(buf), str(file), file.is_journal)


def parquet_version(file: ArchiveFile, buf: pa.Buffer) -> int:
    """The schema version in a Parquet file's footer (ArchiveError naming the file if unreadable)."""
    try:
        return version_of(pq.ParquetFile(pa.BufferReader(buf)).schema_arrow)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ArchiveError(f"{file}: not a readable rtreplay Parquet file ({exc})") from exc


def _listing(fs: pafs.FileSystem, root: str, days: tuple[str | None, str | None]) -> list[pafs.FileInfo] | None:
    """Every file under `root` (None when there is no such directory); with `days`, only the `date=`
    partitions in range, open journals and files outside `events/`."""
    if days == (None, None):
        listing = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        if not listing and fs.get_file_info(root).type == pafs.FileType.NotFound:
            return None
        return listing
    first, last = days
    top = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    if not top and fs.get_file_info(root).type == pafs.FileType.NotFound:
        return None
    infos: list[pafs.FileInfo] = []
    for entry in top:
        if entry.type != pafs.FileType.Directory:
            infos.append(entry)
        elif entry.base_name != "events":
            infos += fs.get_file_info(pafs.FileSelector(entry.path, recursive=True))
        else:
            for part in fs.get_file_info(pafs.FileSelector(entry.path)):
                day = part.base_name.removeprefix("date=")
                if part.type == pafs.FileType.Directory and part.base_name.startswith("date=") and (
                        (first is not None and day < first) or (last is not None and day > last)):
                    continue  # pruned: a partition outside the days asked for
                infos += ([part] if part.type == pafs.FileType.File
                          else fs.get_file_info(pafs.FileSelector(part.path, recursive=True)))
    return infos


def _manifests(fs: pafs.FileSystem, infos: list[pafs.FileInfo]) -> dict[str, set[str]]:
    """Committed compactions: id -> the paths of the files it replaced (read from its manifest)."""
    out: dict[str, set[str]] = {}
    for info in infos:
        if info.type == pafs.FileType.File and info.base_name.startswith(MANIFEST_PREFIX):
            folder = info.path.rsplit("/", 1)[0]
            try:
                with fs.open_input_stream(info.path) as f:
                    manifest = json.loads(f.read())
                out[manifest["id"]] = {f"{folder}/{name}" for name in manifest["replaces"]}
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a manifest rtreplay wrote: the compaction it names does not count
    return out


def _list(infos: list[pafs.FileInfo], root: str = "",
          manifests: dict[str, set[str]] | None = None) -> tuple[list[ArchiveFile], list[ArchiveProblem]]:
    """Archive files among a recursive listing of `root`, in session order, and the files that are not part of it.

    A journal whose session already has a Parquet file is skipped: it is a leftover of a crash between
    the rename and the unlink, and the Parquet file holds the same events. Compaction is atomic for
    readers: a compacted file counts only once its manifest exists, and then the files it replaced do not.
    Other files directly under `root` (a README.txt beside the archive) are ignored; deeper ones are problems.
    """
    top = root.rstrip("/")
    manifests = manifests or {}
    replaced = set().union(*manifests.values()) if manifests else set()
    files: list[ArchiveFile] = []
    journals: list[ArchiveFile] = []
    problems: list[ArchiveProblem] = []
    for info in sorted(infos, key=lambda i: i.path):
        if (info.type != pafs.FileType.File or info.base_name.startswith((".", MANIFEST_PREFIX))
                or info.path in replaced):
            continue
        f = ArchiveFile(info.path, info.size or 0)
        if f.compaction is not None and f.compaction not in manifests:
            continue  # written by a compaction not (yet) committed: the files it would replace still count
        if f.name.endswith(PARQUET_SUFFIX):
            files.append(f)
        elif f.is_journal:
            journals.append(f)
        elif f.name.endswith((MARKS_SUFFIX, LOST_SUFFIX)):
            continue  # a proxy's progress marks, a dead proxy's loss report: for `recover` (recorder.marks)
        elif not f.name.endswith(TMP_SUFFIX) and info.path.rsplit("/", 1)[0] != top:  # *.tmp: a write in progress
            problems.append(ArchiveProblem(f.path, "not a Parquet file or journal; skipped"))
    finished = {f.session_id for f in files}
    files += [j for j in journals if j.session_id not in finished]
    files.sort(key=lambda f: (f.name, f.path))
    return files, problems
