"""A real S3-compatible server for tests: moto's server mode, started on 127.0.0.1 in its own process.

`s3_server()` yields the endpoint and sets the standard AWS settings (AWS_ENDPOINT_URL, fake keys, region)
in the environment of this process and of the processes it starts; buckets are made with `make_bucket`.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pyarrow.fs as pafs
import pytest

moto_server = pytest.importorskip("moto.server", reason="the S3 tests need moto[server] (the test extra has it)")

FAKE_KEY, FAKE_SECRET = "AKIAFAKEFAKEFAKE1234", "fake-secret-never-recorded-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
               "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield endpoint
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")
    return pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1", allow_bucket_creation=True)


def make_bucket(name: str) -> str:
    filesystem().create_dir(name)
    return f"s3://{name}"


def upload_tree(local: str, url: str) -> None:
    """Copy a local archive directory into the bucket (what `aws s3 cp --recursive` would do)."""
    pafs.copy_files(local, url.removeprefix("s3://"), destination_filesystem=filesystem())
