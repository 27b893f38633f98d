"""Damage nobody sees (issue 13, item 11): a truncated hot Parquet file, an overwritten one, or a
corrupted warm.duckdb block is reported by ``lake storage --verify`` and the scheduled check, a read
over it fails naming the partition (or reads around it when asked, with a warning naming it), and
re-materializing the partition repairs it."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.client import LakeClient
from lake_resources.lifecycle.damage import verify_lake
from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake
from lake_resources.storage.layout import DamagedPartitionWarning, PartitionDamaged
from lake_tests.reliability.conftest import REPO_ROOT, child_env, failure_messages, lake_resources_for, materialize

TICKS = dataset_spec("ticks")
DAY = "2019-02-04"
EUR = TICKS.partition(symbol="EURUSD", date=DAY)
XAU = TICKS.partition(symbol="XAUUSD", date=DAY)
LAKE_BIN = Path(sys.executable).parent / "lake"


def _lake(tmp_path, frame: pl.DataFrame, tier: str = "hot") -> tuple[LakeSettings, Lake, pl.DataFrame]:
    settings = LakeSettings(home=tmp_path / "lake")
    lake = Lake(settings)
    xau = frame.head(2000).with_columns(symbol=pl.lit("XAUUSD"))
    lake.write(TICKS, EUR, frame, tier=tier)
    lake.write(TICKS, XAU, xau, tier=tier)
    return settings, lake, xau


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _lake_cli(settings: LakeSettings, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LAKE_BIN), *argv], env=child_env({"LAKE_HOME": str(settings.home)}),
                          capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)


def _names_eurusd(text: str, tier: str, path: str | None = None) -> bool:
    return ("ticks" in text and "symbol=EURUSD" in text and f"date={DAY}" in text and f"in {tier}" in text
            and (path is None or path in text) and "XAUUSD" not in text)


@pytest.mark.data_loss
def test_truncated_hot_file_is_reported_by_lake_storage_verify(tmp_path, fixture_versions):
    """A hot Parquet file truncated to half: ``lake storage --verify`` exits 1 with a line naming the
    dataset, symbol, date, tier and path (the healthy partition not named); ``--symbols XAUUSD`` exits 0."""
    settings, lake, _xau = _lake(tmp_path, fixture_versions["new"]["frame"])
    path = Path(lake.hot.uri(TICKS, EUR))
    _truncate(path)
    proc = _lake_cli(settings, "storage", "--verify")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    damaged = [line for line in proc.stdout.splitlines() if line.startswith("DAMAGED")]
    assert len(damaged) == 1 and _names_eurusd(damaged[0], "hot", str(path)), proc.stdout
    assert "Traceback" not in proc.stderr
    assert _lake_cli(settings, "storage", "--verify", "--symbols", "XAUUSD").returncode == 0


@pytest.mark.data_loss
def test_overwritten_hot_file_is_reported_by_lake_storage_verify(tmp_path, fixture_versions):
    """A hot Parquet file replaced by another valid Parquet file (what ``COPY ... TO`` did): reads
    cannot tell, ``lake storage --verify`` does (SHA-256 and rows differ from the manifest)."""
    settings, lake, _xau = _lake(tmp_path, fixture_versions["new"]["frame"])
    path = Path(lake.hot.uri(TICKS, EUR))
    pl.DataFrame({"x": [1]}).write_parquet(path)
    proc = _lake_cli(settings, "storage", "--verify", "--dataset", "ticks")
    assert proc.returncode == 1 and _names_eurusd(proc.stdout.splitlines()[0], "hot", str(path)), proc.stdout


@pytest.mark.data_loss
def test_read_over_a_truncated_file_names_it_or_skips_it_with_a_warning(tmp_path, fixture_versions):
    """``LakeClient.read`` over a truncated partition raises ``PartitionDamaged`` naming dataset, symbol,
    date, tier and path; ``on_damage="skip"`` returns the other symbol's rows with a warning naming it."""
    settings, lake, xau = _lake(tmp_path, fixture_versions["new"]["frame"])
    path = Path(lake.hot.uri(TICKS, EUR))
    _truncate(path)
    client = LakeClient(settings)
    with pytest.raises(PartitionDamaged) as failed:
        client.read("ticks")
    assert _names_eurusd(str(failed.value), "hot", str(path)), failed.value
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = client.read("ticks", on_damage="skip")
    assert got.equals(xau)
    named = [str(w.message) for w in caught if issubclass(w.category, DamagedPartitionWarning)]
    assert len(named) == 1 and _names_eurusd(named[0], "hot", str(path)), named


@pytest.mark.data_loss
def test_lake_sql_over_a_truncated_file_fails_naming_it_only_when_its_rows_are_needed(tmp_path, fixture_versions):
    """``lake sql`` with one symbol's ticks file truncated: a query needing its rows (``count(*)`` over
    ticks, a filter on another column) exits 1 with one line naming the damaged partition, not a traceback;
    a query over the other symbol answers right, with a warning line naming the damaged partition;
    ``--skip-damaged`` answers the whole query without it, with a warning naming it."""
    settings, lake, xau = _lake(tmp_path, fixture_versions["new"]["frame"])
    path = Path(lake.hot.uri(TICKS, EUR))
    _truncate(path)
    client = LakeClient(settings)
    for needs_it in ("select count(*) as n from ticks", "select count(*) as n from ticks where bid > 0",
                     "select count(*) as n from ticks where symbol = 'EURUSD'"):
        with pytest.raises(PartitionDamaged) as failed:
            client.sql(needs_it)
        assert _names_eurusd(str(failed.value), "hot", str(path)), needs_it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = client.sql("select count(*) as n, sum(bid) as b from ticks where symbol = ?", ["XAUUSD"])
    assert got.to_dicts() == [{"n": xau.height, "b": pytest.approx(xau["bid"].sum())}]
    assert [_names_eurusd(str(w.message), "hot", str(path)) for w in caught
            if issubclass(w.category, DamagedPartitionWarning)] == [True]

    proc = _lake_cli(settings, "sql", "--format", "csv", "select count(*) as n from ticks")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert _names_eurusd(proc.stderr, "hot", str(path)) and "Traceback" not in proc.stderr
    proc = _lake_cli(settings, "sql", "--format", "csv", "select count(*) as n from ticks where symbol = 'XAUUSD'")
    assert proc.returncode == 0 and proc.stdout.split() == ["n", str(xau.height)], proc.stderr
    assert _names_eurusd(proc.stderr, "hot", str(path)) and "warning" in proc.stderr
    proc = _lake_cli(settings, "sql", "--format", "csv", "--skip-damaged", "select count(*) as n from ticks")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["n", str(xau.height)]
    warned = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warned) == 1 and "skipped" in warned[0] and _names_eurusd(warned[0], "hot", str(path)), proc.stderr


def _corrupt_a_eurusd_block(lake: Lake) -> None:
    """Overwrite 16 bytes inside the first 256 KiB block of warm.duckdb whose damage only the EURUSD
    partition's rows see (found by trying: DuckDB decides where rows go)."""
    path = lake.warm.path
    original = path.read_bytes()
    block, header = 256 * 1024, 3 * 4096
    for i in range((len(original) - header) // block):
        data = bytearray(original)
        offset = header + i * block + 100
        data[offset: offset + 16] = b"\xff" * 16
        path.write_bytes(bytes(data))
        found = verify_lake(Lake(lake.settings), datasets=["ticks"]).damaged
        if [d.partition for d in found] == [EUR]:
            return
    path.write_bytes(original)
    pytest.fail("no block of warm.duckdb holds only EURUSD rows")


@pytest.mark.data_loss
def test_corrupted_warm_block_is_reported_and_reads_fail_naming_the_partition(tmp_path, fixture_versions):
    """A corrupted block of warm.duckdb: ``lake storage`` (manifests only) still lists the lake, but
    ``lake storage --verify`` exits 1 naming the warm partition whose rows are damaged, and a read or
    ``lake sql`` over it fails naming it rather than returning partial rows."""
    settings, lake, xau = _lake(tmp_path, fixture_versions["new"]["frame"], tier="warm")
    _corrupt_a_eurusd_block(lake)
    assert _lake_cli(settings, "storage").returncode == 0
    proc = _lake_cli(settings, "storage", "--verify")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    damaged = [line for line in proc.stdout.splitlines() if line.startswith("DAMAGED")]
    assert len(damaged) == 1 and _names_eurusd(damaged[0], "warm", str(settings.warm_path)), proc.stdout
    client = LakeClient(settings)
    with pytest.raises(PartitionDamaged) as failed:
        client.read("ticks")
    assert _names_eurusd(str(failed.value), "warm")
    with pytest.raises(PartitionDamaged) as failed:
        client.sql("select * from ticks order by ts")  # every column: the damaged block is read
    assert _names_eurusd(str(failed.value), "warm")


@pytest.mark.data_loss
def test_rewriting_a_partition_repairs_a_corrupted_warm_block(tmp_path, fixture_versions):
    """A warm partition whose rows sit on a corrupted block (the time column's included, which the
    replacing delete must read) is repaired by writing it again: ``--verify`` passes afterwards, both
    partitions read back equal to what was written, and the other partition's rows were kept."""
    frame = fixture_versions["new"]["frame"]
    settings, lake, xau = _lake(tmp_path, frame, tier="warm")
    _corrupt_a_eurusd_block(lake)
    Lake(settings).write(TICKS, EUR, frame, tier="warm")
    assert verify_lake(Lake(settings)).damaged == []
    assert _lake_cli(settings, "storage", "--verify").returncode == 0
    client = LakeClient(settings)
    assert client.read("ticks", symbols="EURUSD").equals(frame)
    assert client.read("ticks", symbols="XAUUSD").equals(xau)


@pytest.mark.data_loss
def test_rematerializing_a_damaged_partition_repairs_it(tmp_path, dagster_defs, datafeed_dir):
    """Ticks materialized through Dagster, then their hot file truncated: re-materializing ``ticks`` for
    that partition (the IO manager's write) repairs it: ``lake storage --verify`` passes and the
    partition reads back with the SHA-256 of the first run."""
    home = tmp_path / "lake"
    resources = lake_resources_for(home, datafeed_dir)
    first = materialize(dagster_defs, ["raw_dukascopy", "ticks"], resources)
    assert first.success, failure_messages(first)
    settings = LakeSettings(home=home)
    lake = Lake(settings)
    clean = lake.manifest(TICKS, EUR, "hot")["sha256"]
    rows = LakeClient(settings).read("ticks").height
    _truncate(Path(lake.hot.uri(TICKS, EUR)))
    assert [d.partition for d in verify_lake(lake).damaged] == [EUR]
    again = materialize(dagster_defs, ["ticks"], resources)
    assert again.success, failure_messages(again)
    assert verify_lake(Lake(settings)).damaged == []
    assert _lake_cli(settings, "storage", "--verify").returncode == 0
    assert lake.manifest(TICKS, EUR, "hot")["sha256"] == clean
    assert LakeClient(settings).read("ticks").height == rows


def test_scheduled_check_fails_naming_the_damaged_partition(tmp_path, fixture_versions):
    """The lifecycle's ``partitions_match_checksums`` check (job ``storage_verify``, scheduled daily)
    fails on a truncated hot file with the partition named in its metadata, and passes on a sound lake."""
    import dagster as dg

    from lake_assets.lifecycle import partitions_match_checksums, storage_health, storage_verify_job
    from lake_resources.dagster_io import LakeResource

    settings, lake, _xau = _lake(tmp_path, fixture_versions["old"]["frame"])

    def run() -> dg.AssetCheckEvaluation:
        job = dg.Definitions(assets=[storage_health], asset_checks=[partitions_match_checksums], jobs=[storage_verify_job],
                             resources={"lake": LakeResource(home=str(settings.home))}).resolve_job_def("storage_verify")
        result = job.execute_in_process(raise_on_error=False)
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation

    assert run().passed
    path = lake.hot.uri(TICKS, EUR)
    _truncate(Path(path))
    evaluation = run()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    table = evaluation.metadata["damaged"].value
    assert path in table and "symbol=EURUSD" in table and "XAUUSD" not in table


@pytest.mark.data_loss
def test_truncated_cold_object_on_s3_is_found_named_and_repaired(tmp_path, own_bucket_env, fixture_versions):
    """A cold partition on a real S3 server whose object is replaced by half its bytes: ``verify_lake``
    names it (dataset, symbol, date, cold, s3:// key), a read over it fails naming it and a read of the
    other symbol does not; writing the partition again repairs it."""
    settings = LakeSettings.from_env({"LAKE_HOME": str(tmp_path / "lake"), **own_bucket_env})
    lake = Lake(settings)
    lake.ensure_bucket()
    frame = fixture_versions["old"]["frame"]
    lake.write(TICKS, EUR, frame, tier="cold")
    lake.write(TICKS, XAU, frame.head(500).with_columns(symbol=pl.lit("XAUUSD")), tier="cold")
    uri = lake.cold.uri(TICKS, EUR)
    data = lake.cold.fs.cat_file(uri)
    lake.cold.fs.pipe_file(uri, data[: len(data) // 2])
    (damage,) = verify_lake(Lake(settings)).damaged
    assert _names_eurusd(damage.describe(), "cold", uri)
    client = LakeClient(settings)
    with pytest.raises(PartitionDamaged) as failed:
        client.read("ticks")
    assert _names_eurusd(str(failed.value), "cold", uri)
    assert client.read("ticks", symbols="XAUUSD").height == 500
    Lake(settings).write(TICKS, EUR, frame, tier="cold")
    assert verify_lake(Lake(settings)).damaged == []
    assert LakeClient(settings).read("ticks", symbols="EURUSD").equals(frame)


@pytest.mark.data_loss
def test_a_downstream_run_over_a_damaged_input_fails_naming_it(tmp_path, dagster_defs, datafeed_dir):
    """``bars_1m`` materialized over a ``ticks`` partition whose hot file was truncated fails, and the
    run's failure names the damaged input: dataset, symbol, date, tier and path. No bars are written."""
    home = tmp_path / "lake"
    resources = lake_resources_for(home, datafeed_dir)
    assert materialize(dagster_defs, ["raw_dukascopy", "ticks"], resources).success
    lake = Lake(LakeSettings(home=home))
    path = lake.hot.uri(TICKS, EUR)
    _truncate(Path(path))
    result = materialize(dagster_defs, ["bars_1m"], resources)
    assert not result.success
    assert any(_names_eurusd(m, "hot", path) for m in failure_messages(result)), failure_messages(result)
    assert lake.find("bars_1m", dataset_spec("bars_1m").partition(symbol="EURUSD", date=DAY)) is None
