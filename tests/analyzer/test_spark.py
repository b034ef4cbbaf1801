"""`rtreplay.spark` on a real local Spark: the same report as `rtreplay analyze --format json`, field for field.

Needs the `spark` extra (pyspark) and a Java runtime (Debian: default-jre-headless); .ci/run installs both.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

pyspark = pytest.importorskip("pyspark", reason="the Spark test needs the spark extra (pip install -e '.[spark]')")
if shutil.which("java") is None:
    pytest.skip("the Spark test needs a Java runtime (apt-get install default-jre-headless)", allow_module_level=True)

from pyspark.sql import SparkSession  # noqa: E402

from rtreplay import spark as rtspark  # noqa: E402
from rtreplay.cli import cli  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate_archive  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


@pytest.fixture(scope="module")
def spark():
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # the JVM binds to loopback only
    os.environ["PYSPARK_PYTHON"] = sys.executable  # workers run this interpreter, which has rtreplay
    session = (SparkSession.builder.master("local[2]").appName("rtreplay-test")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
               .getOrCreate())
    yield session
    session.stop()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark") / "logs"
    generate_archive.generate(root, 20_000, seed=3, minutes=3)
    for name in ("text", "audio"):  # real recorded sessions beside the generated ones
        shutil.copytree(GOLDEN / name / "events", root / "events", dirs_exist_ok=True)
    return str(root)


def local_json(archive: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["analyze", archive, "--format", "json", "--jobs", "1", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_spark_report_equals_analyze_json(spark, archive) -> None:
    got = rtspark.report_json(spark, archive)
    assert got == local_json(archive)
    report = json.loads(got)
    assert report["totals"]["requests"] > 100 and report["totals"]["failed"] > 0


def test_spark_report_with_splits_and_sql_rates(spark, archive) -> None:
    assert rtspark.report_json(spark, archive, ("scope", "session")) == local_json(archive, "--by", "+session")
    groups = {(g["form"], g["split"]["scope"]): g for g in json.loads(local_json(archive))["groups"]}
    rates = rtspark.failure_rates(spark)
    assert len(rates) == len(groups)
    for r in rates:
        g = groups[(r["form_sent"], r["scope"])]
        assert (r["requests"], r["failed"], r["decided"]) == (g["requests"], g["failed"], g["decided"])
        assert r["failure_rate"] == g["failure_rate"]
