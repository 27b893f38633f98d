"""Security of ``lake sql``: read-only and confined to the lake (issue 13, items 1 and 2).

Two layers are tested apart: the statement check (``LakeClient.sql`` refuses every non-SELECT kind)
and the locked DuckDB session itself (``LakeClient.duckdb()``: reads outside the lake, settings,
extensions, attaches and exports fail even when a statement reaches it).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.client import LakeClient
from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake
from lake_resources.storage.s3 import httpfs_extension_path
from lake_tests.reliability.conftest import REPO_ROOT, child_env

TICKS = dataset_spec("ticks")
DAYS = ("2019-02-04", "2019-02-05", "2019-02-06")
LAKE_BIN = Path(sys.executable).parent / "lake"


def _shifted(frame: pl.DataFrame, days: int) -> pl.DataFrame:
    return frame.with_columns(pl.col("ts") + pl.duration(days=days))


def _fill(lake: Lake, frame: pl.DataFrame) -> dict[str, int]:
    """Ticks of one day in each tier (hot, warm, cold) and a warm bars_1m partition; rows per tier."""
    rows = {}
    for i, tier in enumerate(("hot", "warm", "cold")):
        part = _shifted(frame, i).head(1000 * (i + 1))
        lake.write(TICKS, TICKS.partition(symbol="EURUSD", date=DAYS[i]), part, tier=tier)
        rows[tier] = part.height
    bars = pl.DataFrame({"ts": frame["ts"].head(3).dt.truncate("1m"), "symbol": ["EURUSD"] * 3, "close": [1.0, 2.0, 3.0]})
    lake.write("bars_1m", dataset_spec("bars_1m").partition(symbol="EURUSD", date=DAYS[0]), bars)
    return rows


def _snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (lock files aside: taken by reads and writes alike)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "locks" not in p.parts}


@pytest.fixture
def lake3(tmp_path, fixture_versions):
    settings = LakeSettings(home=tmp_path / "lake")
    lake = Lake(settings)
    rows = _fill(lake, fixture_versions["old"]["frame"])
    return settings, rows, tmp_path


def _hot_file(settings: LakeSettings) -> Path:
    return settings.hot_root / "ticks" / "symbol=EURUSD" / f"date={DAYS[0]}" / "part-0.parquet"


#: Statements of every kind that writes, escapes the lake, or changes the session (the class, not two).
ATTACKS = {
    "copy-to-warm-file": "copy (select 1 as x) to '{warm}' (format csv)",
    "copy-to-warm-wal": "copy (select 1 as x) to '{warm}.wal' (format csv)",
    "copy-to-hot-parquet": "copy (select 1 as x) to '{hot}' (format parquet)",
    "copy-to-tmp": "copy (select 1 as x) to '{tmp}/out.csv'",
    "copy-view-to-tmp": "copy ticks to '{tmp}/ticks.parquet'",
    "read-etc-passwd": "select * from read_text('/etc/passwd')",
    "read-csv-etc-passwd": "select * from read_csv('/etc/passwd')",
    "read-blob-outside": "select * from read_blob('{tmp}/outside.txt')",
    "glob-root": "select * from glob('/root/*')",
    "glob-beside-lake": "select * from glob('{tmp}/*')",
    "attach-other-new": "attach '{tmp}/other.duckdb' as o",
    "attach-other-ro": "attach '{tmp}/existing.duckdb' as o (read_only)",
    "attach-warm-rw": "attach '{warm}' as rw (read_write)",
    "detach-warm": "detach warm",
    "export-database": "export database '{tmp}/export'",
    "set-external-access": "set enable_external_access = true",
    "reset-external-access": "reset enable_external_access",
    "set-allowed-directories": "set allowed_directories = ['/']",
    "pragma-setting": "pragma enable_external_access = true",
    "set-threads": "set threads = 1",
    "set-unredacted": "set allow_unredacted_secrets = true",
    "install": "install httpfs",
    "load-by-name": "load httpfs",
    "load-by-path": "load '{httpfs}'",
    "create-secret": "create secret s2 (type s3, key_id 'a', secret 'b')",
    "create-table-warm": "create table warm.evil as select 1 as x",
    "create-temp-table": "create temp table t as select 1 as x",
    "insert-warm": "insert into warm.ticks select * from warm.ticks limit 1",
    "delete-warm": "delete from warm.ticks",
    "delete-manifest": "delete from warm._lake_partitions",
    "checkpoint": "checkpoint",
    "call-checkpoint": "call checkpoint()",
    "multi-statement": "select 1; copy (select 1 as x) to '{hot}' (format parquet)",
    "explain-analyze-copy": "explain analyze copy (select 1 as x) to '{hot}' (format parquet)",
    "prepare": "prepare p as select 1",
    "set-variable": "set variable x = 1",
    "use": "use memory",
}


def _fmt(statement: str, settings: LakeSettings, tmp: Path) -> str:
    return statement.format(warm=settings.warm_path, hot=_hot_file(settings), tmp=tmp, httpfs=httpfs_extension_path())


@pytest.mark.data_loss
@pytest.mark.parametrize("name", list(ATTACKS))
def test_lake_sql_refuses_every_write_escape_and_settings_change(lake3, name):
    """``LakeClient.sql`` (``lake sql``) refuses every statement that writes (COPY to the warm file,
    a hot Parquet file, /tmp), reads outside the lake, attaches, exports, changes a setting, installs
    or loads an extension, creates a secret or table, or checkpoints: an error, and no file of the lake
    or beside it changes."""
    settings, rows, tmp = lake3
    (tmp / "outside.txt").write_text("not the lake's\n")
    import duckdb

    duckdb.connect(str(tmp / "existing.duckdb")).close()
    before, beside = _snapshot(settings.home_abs), sorted(p.name for p in tmp.iterdir())
    with pytest.raises(Exception) as refused:
        LakeClient(settings).sql(_fmt(ATTACKS[name], settings, tmp))
    assert "read-only" in str(refused.value) or "Permission" in str(refused.value), refused.value
    assert _snapshot(settings.home_abs) == before
    assert sorted(p.name for p in tmp.iterdir()) == beside
    assert LakeClient(settings).sql("select count(*) as n from ticks")["n"][0] == sum(rows.values())


#: What the session itself refuses when a statement reaches it (the statement check bypassed).
SESSION_REFUSES = ["read-etc-passwd", "read-csv-etc-passwd", "read-blob-outside", "glob-root", "glob-beside-lake",
                   "copy-to-tmp", "copy-view-to-tmp", "copy-to-warm-file", "attach-other-new", "attach-other-ro",
                   "attach-warm-rw", "detach-warm", "export-database", "set-external-access", "reset-external-access",
                   "set-allowed-directories", "pragma-setting", "set-threads", "set-unredacted", "install",
                   "load-by-name", "load-by-path"]


@pytest.mark.parametrize("name", SESSION_REFUSES)
def test_the_sql_session_itself_is_confined_and_locked(lake3, name):
    """The DuckDB session ``lake sql`` runs on (``LakeClient.duckdb()``) refuses, on its own, reads
    outside the lake's tiers, writes outside them, attaching or detaching files, exporting, changing
    any setting (``enable_external_access``, ``allowed_directories``, ...) and installing or loading
    extensions; the lake is unchanged and the session still reads every tier."""
    settings, rows, tmp = lake3
    (tmp / "outside.txt").write_text("not the lake's\n")
    import duckdb

    duckdb.connect(str(tmp / "existing.duckdb")).close()
    before, beside = _snapshot(settings.home_abs), sorted(p.name for p in tmp.iterdir())
    with LakeClient(settings).duckdb() as con:
        with pytest.raises(duckdb.Error):
            con.execute(_fmt(ATTACKS[name], settings, tmp)).fetchall()
        assert con.execute("select current_setting('enable_external_access')").fetchone()[0] is False
        assert con.execute("select count(*) from ticks").fetchone()[0] == sum(rows.values())
    assert _snapshot(settings.home_abs) == before
    assert sorted(p.name for p in tmp.iterdir()) == beside


def test_lake_sql_reads_every_tier_and_allows_every_select_form(lake3):
    """Under the lock-down, SELECTs over hot, warm and cold (local) data still work, in every read-only
    form (WITH, FROM, SHOW/DESCRIBE/SUMMARIZE, EXPLAIN, glob inside the lake)."""
    settings, rows, _tmp = lake3
    client = LakeClient(settings)
    by_day = client.sql("select strftime(ts, '%Y-%m-%d') as d, count(*) as n from ticks group by d order by d")
    assert by_day["n"].to_list() == [rows["hot"], rows["warm"], rows["cold"]]
    assert client.sql("select count(*) as n from bars_1m")["n"][0] == 3
    assert client.sql("with t as (select * from ticks) from t select count(*) as n")["n"][0] == sum(rows.values())
    assert "ts" in client.sql("describe ticks")["column_name"].to_list()
    assert client.sql("summarize ticks").height > 0
    assert client.sql("explain select count(*) from ticks").height > 0
    assert client.sql("select count(*) as n from warm._lake_partitions")["n"][0] == 2
    hot_files = client.sql(f"select * from glob('{settings.hot_root}/ticks/*/*/part-0.parquet')")
    assert hot_files.height == 1


def test_lake_sql_cli_refuses_copy_onto_the_warm_file(lake3):
    """The issue's exact attack: ``lake sql "copy (select 1 as x) to '$LAKE_HOME/warm.duckdb' (format
    csv)"`` exits 2 with one line saying lake sql is read-only; every warm dataset is intact."""
    settings, rows, _tmp = lake3
    before = _snapshot(settings.home_abs)
    proc = subprocess.run([str(LAKE_BIN), "sql", f"copy (select 1 as x) to '{settings.warm_path}' (format csv)"],
                          env=child_env({"LAKE_HOME": str(settings.home)}), capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "read-only" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert _snapshot(settings.home_abs) == before
    assert LakeClient(settings).sql("select count(*) as n from warm.ticks")["n"][0] == rows["warm"]


# ---------------------------------------------------------------------------------------------
# On S3: reads work, writes and the secret do not get out
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def s3_lake(tmp_path, own_s3, own_bucket_env, fixture_versions, monkeypatch):
    """A lake with its cold tier on the suite's own S3 server; the keys also in the environment, as
    in production (httpfs reads ``AWS_*`` into its settings when it loads)."""
    for key, value in own_bucket_env.items():
        monkeypatch.setenv(key, value)
    settings = LakeSettings.from_env({"LAKE_HOME": str(tmp_path / "lake"), **own_bucket_env})
    lake = Lake(settings)
    lake.ensure_bucket()
    rows = _fill(lake, fixture_versions["old"]["frame"])
    return settings, rows, lake


def _bucket_keys(lake: Lake) -> dict[str, str]:
    fs = lake.cold.fs
    return {p: fs.info(p).get("ETag", "") for p in fs.find(lake.settings.s3_bucket)}


PROBES = [
    "select current_setting('s3_secret_access_key') as v",
    "select current_setting('s3_access_key_id') as v",
    "select current_setting('s3_session_token') as v",
    "select * from duckdb_settings()",
    "select * from duckdb_secrets()",
    "select * from duckdb_secrets(redact = false)",
    "select * from which_secret('s3://{bucket}/lake/cold/x', 's3')",
    "select * from duckdb_variables()",
    "select * from duckdb_extensions()",
    "select name, value from duckdb_settings() where name like '%secret%' or name like '%key%'",
]


def test_lake_sql_never_reveals_the_s3_secret(s3_lake, own_s3):
    """With the keys in the environment and a cold tier on a real S3 server, no probing query
    (``current_setting('s3_secret_access_key')``, ``duckdb_settings()``, ``duckdb_secrets()``, with or
    without redaction, ...) shows the secret key in a result or an error; cold reads still work."""
    settings, rows, _lake = s3_lake
    client = LakeClient(settings)
    assert client.sql("select count(*) as n from ticks")["n"][0] == sum(rows.values())
    shown = []
    for probe in PROBES:
        try:
            df = client.sql(probe.format(bucket=settings.s3_bucket))
            shown.append(json.dumps(df.to_dicts(), default=str))
        except Exception as exc:  # noqa: BLE001 - an error is fine, if it does not print the key
            shown.append(str(exc))
    leaks = [probe for probe, text in zip(PROBES, shown) if own_s3.secret_key in text]
    assert leaks == []
    assert all(own_s3.access_key not in text for text in shown[:4])  # no legacy setting holds the key id
    assert any("lake_s3" in text for text in shown)  # the secret exists, redacted


@pytest.mark.data_loss
@pytest.mark.parametrize("target", ["cold/ticks/symbol=EURUSD/date=2019-02-06/part-0.parquet", "cold/evil.csv", "raw/evil.csv"])
def test_lake_sql_cannot_write_into_the_bucket(s3_lake, target):
    """``COPY ... TO 's3://bucket/lake/...'`` (over a cold partition, a new key, the raw zone) is
    refused; no object of the bucket changes and the cold partition still reads right."""
    settings, rows, lake = s3_lake
    before = _bucket_keys(lake)
    url = f"s3://{settings.s3_bucket}/lake/{target}"
    with pytest.raises(Exception) as refused:
        LakeClient(settings).sql(f"copy (select 1 as x) to '{url}' (format parquet)")
    assert "read-only" in str(refused.value)
    with LakeClient(settings).duckdb() as con:  # the session itself: outside the cold tier, refused
        import duckdb

        with pytest.raises(duckdb.Error):
            con.execute(f"copy (select 1 as x) to 's3://{settings.s3_bucket}/lake/raw/evil.csv'")
        with pytest.raises(duckdb.Error):
            con.execute(f"select * from glob('s3://{settings.s3_bucket}/*')").fetchall()
    assert _bucket_keys(lake) == before
    assert lake.verify(TICKS, TICKS.partition(symbol="EURUSD", date=DAYS[2]), "cold")[0]
