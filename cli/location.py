"""The ARCHIVE argument of every command: a local path, or an object-store URL (`s3://bucket/prefix`)."""
from __future__ import annotations

from pathlib import Path

import click

from rtreplay.recorder.store import display, is_url


class Location(click.ParamType):
    """A local path (checked like click.Path) or an `s3://`/`gs://` URL, kept as text (a Path would fold
    its `//`)."""

    name = "location"

    def __init__(self, exists: bool = False, file_okay: bool = True) -> None:
        self.path = click.Path(exists=exists, file_okay=file_okay, path_type=Path)

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, str) and is_url(value):
            if not value.startswith(("s3://", "gs://", "gcs://")):
                self.fail(f"{display(value)}: only s3:// and gs:// URLs are supported", param, ctx)
            return value
        return self.path.convert(value, param, ctx)


