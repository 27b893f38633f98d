"""Concurrent writers: two runs materializing the same partition at once; many small writers on the
warm DuckDB file at once (DuckDB allows one writing process per file: the lake retries the lock)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date, timedelta

import polars as pl
import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.client import LakeClient
from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake, encode_parquet, prepare_frame, sha256
from lake_tests.reliability.child import FIXTURE_DAY, fixture_ticks
from lake_tests.reliability.conftest import (
    CHILD,
    REPO_ROOT,
    child_env,
    failure_messages,
    lake_resources_for,
    materialize,
)

TICKS = dataset_spec("ticks")
WRITERS = 8
DAYS_PER_WRITER = 3
ROWS = 2000


def _stored_shas(lake: Lake) -> dict[tuple[str, tuple], str]:
    out = {}
    for name in ("raw_dukascopy", "ticks", "quarantine"):
        for located in lake.locate(name):
            out[(name, located.partition)] = lake.manifest(name, located.partition, located.tier)["sha256"]
    return out


@pytest.mark.data_loss
def test_two_runs_materializing_the_same_partition_at_once(tmp_path, dagster_defs, datafeed_dir):
    """Two processes materialize ``raw_dukascopy`` and ``ticks`` of the same partition into one lake
    at the same moment: each succeeds or fails cleanly (no lock error reaches the user), and the
    stored result equals a clean run, checksum for checksum, and verifies."""
    clean_home = tmp_path / "clean"
    clean = materialize(dagster_defs, ["raw_dukascopy", "ticks"], lake_resources_for(clean_home, datafeed_dir))
    assert clean.success, failure_messages(clean)
    expected = _stored_shas(Lake(LakeSettings(home=clean_home)))

    home = tmp_path / "lake"
    barrier = tmp_path / "go"
    procs = [subprocess.Popen(CHILD + ["materialize", "--datafeed", str(datafeed_dir), "--barrier", str(barrier)],
                              env=child_env({"LAKE_HOME": str(home)}), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    time.sleep(0.5)
    barrier.touch()
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    assert any(o["success"] for o in outcomes), outcomes
    for o in outcomes:
        if not o["success"]:  # a clean failure says what failed; a raw lock error is not clean
            assert o["errors"] and not any("could not set lock" in e.lower() for e in o["errors"]), o

    lake = Lake(LakeSettings(home=home))
    assert _stored_shas(lake) == expected
    for (name, partition), _sha in expected.items():
        ok, detail = lake.verify(name, partition)
        assert ok, detail


def _day(i: int) -> str:
    return (date(2019, 3, 1) + timedelta(days=i)).isoformat()


@pytest.fixture(scope="module")
def many_writers(tmp_path_factory) -> dict:
    """Eight writer processes store three partitions each into the one warm DuckDB file at once while
    this process keeps querying it through ``LakeClient.sql``."""
    home = tmp_path_factory.mktemp("many-writers") / "lake"
    settings = LakeSettings(home=home)
    seed_day = "2019-02-28"  # the table exists before the readers start
    Lake(settings).write(TICKS, TICKS.partition(symbol="EURUSD", date=seed_day), _rows_on(seed_day), tier="warm")
    plans = [[_day(w * DAYS_PER_WRITER + k) for k in range(DAYS_PER_WRITER)] for w in range(WRITERS)]
    procs = [subprocess.Popen(CHILD + ["write-many", "--dataset", "ticks", "--tier", "warm", "--dates", ",".join(days),
                                       "--rows", str(ROWS)],
                              env=child_env({"LAKE_HOME": str(home)}), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for days in plans]
    client = LakeClient(settings)
    reads, wrong = 0, []
    while any(p.poll() is None for p in procs):
        counts = client.sql("select cast(ts as date) as d, count(*) as n from ticks group by 1 order by 1")
        reads += 1
        wrong += [(str(d), n) for d, n in counts.iter_rows() if n != ROWS]
        time.sleep(0.05)  # leave the CPU to the writers
    outcomes = [(proc.returncode, *proc.communicate(timeout=300)) for proc in procs]
    return {"settings": settings, "plans": plans, "seed_day": seed_day, "outcomes": outcomes,
            "reads": reads, "wrong": wrong}


def _rows_on(day: str) -> pl.DataFrame:
    return fixture_ticks("old").head(ROWS).with_columns(
        pl.col("ts") + pl.duration(days=(date.fromisoformat(day) - FIXTURE_DAY).days))


def test_many_small_writers_all_succeed_without_lock_errors(many_writers):
    """Eight processes writing the warm DuckDB file at once all succeed: DuckDB's one-writer lock is
    waited for and retried, never surfaced to the user."""
    for returncode, out, err in many_writers["outcomes"]:
        assert returncode == 0, err[-3000:]
        assert len(json.loads(out.strip().splitlines()[-1])) == DAYS_PER_WRITER


@pytest.mark.data_loss
def test_many_small_writers_lose_no_partition(many_writers):
    """After eight concurrent writers, all 24 partitions (and the one stored before) are in the warm
    tier, each whole, verified and with the checksum of its rows."""
    settings, plans = many_writers["settings"], many_writers["plans"]
    lake = Lake(settings)
    stored = {dict(l.partition)["date"]: l.tier.value for l in lake.locate(TICKS)}
    wanted = [d for days in plans for d in days]
    assert sorted(stored) == sorted(wanted + [many_writers["seed_day"]]) and set(stored.values()) == {"warm"}
    for day in wanted:
        part = TICKS.partition(symbol="EURUSD", date=day)
        assert lake.manifest(TICKS, part, "warm")["sha256"] == sha256(encode_parquet(prepare_frame(TICKS, _rows_on(day))))
        ok, detail = lake.verify(TICKS, part, "warm")
        assert ok, detail
    assert LakeClient(settings).sql("select count(*) as n from ticks")["n"][0] == ROWS * (len(wanted) + 1)


def test_readers_never_see_a_partial_or_doubled_partition_while_writers_run(many_writers):
    """Queries through ``LakeClient.sql`` running all the while the eight writers work see every
    partition whole: never half-written, never counted twice."""
    assert many_writers["reads"] > 0
    assert many_writers["wrong"] == []


def test_warm_file_stays_locked_while_a_lake_sql_session_reads_it(tmp_path, fixture_versions):
    """While a ``LakeClient.duckdb()`` session (what ``lake sql`` runs on) has the warm file attached,
    no other process can open it for writing: otherwise a writer could change the file under the
    session's feet (DuckDB's file lock is what keeps its reads consistent)."""
    settings = LakeSettings(home=tmp_path / "lake")
    Lake(settings).write(TICKS, TICKS.partition(symbol="EURUSD", date="2019-02-04"),
                         fixture_versions["old"]["frame"], tier="warm")
    probe = ("import duckdb, sys\n"
             "try:\n    duckdb.connect(sys.argv[1]).close()\nexcept duckdb.Error as exc:\n    print('refused:', exc)\n"
             "else:\n    print('writer got in')")
    with LakeClient(settings).duckdb() as con:
        assert con.execute("select count(*) from ticks").fetchone()[0] == fixture_versions["old"]["rows"]
        got = subprocess.run([sys.executable, "-c", probe, str(settings.warm_path)], capture_output=True, text=True,
                             timeout=60)
    assert got.stdout.startswith("refused:") and "lock" in got.stdout, got.stdout + got.stderr
