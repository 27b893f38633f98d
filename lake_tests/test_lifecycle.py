"""Tier lifecycle on real parts: policies, migration (copy -> verify -> delete), cold compaction,
storage health, and processes SIGKILLed between steps. The cold tier is a real S3 server."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
from datetime import date

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest

from lake_resources.catalog.datasets import Tier, dataset_spec
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.client import LakeClient
from lake_resources.lifecycle import (
    REPO_POLICY_FILE,
    compact,
    copies_of,
    load_policy,
    migrate,
    parse_policy,
    plan_compaction,
    storage_report,
)
from lake_resources.sources.dukascopy import bi5
from lake_resources.storage import Lake, encode_parquet, sha256
from lake_resources.transforms.bars import minute_bars
from lake_resources.transforms.ticks import normalize_ticks
from lake_tests.conftest import REPO_ROOT

TICKS = dataset_spec("ticks")
BARS = dataset_spec("bars_1m")
DAYS = ["2019-02-04", "2019-02-05", "2019-02-06", "2019-02-07"]


@pytest.fixture(scope="module")
def day_ticks(datafeed_dir) -> dict[str, pl.DataFrame]:
    """The real EURUSD day 2019-02-04, normalized, and the same ticks shifted onto the following days."""
    base = datafeed_dir / "EURUSD/2019/01/04"
    hours = [(base / f"{h:02d}h_ticks.bi5").read_bytes() for h in range(24)]
    real = normalize_ticks(bi5.decode_day_ticks(hours, date(2019, 2, 4), 100000), "EURUSD")
    return {d: real.with_columns(pl.col("ts") + pl.duration(days=i, time_unit="ns")) for i, d in enumerate(DAYS)}


@pytest.fixture(scope="module")
def day_bars(day_ticks) -> dict[str, pl.DataFrame]:
    return {d: minute_bars(t) for d, t in day_ticks.items()}


def _tp(day: str):
    return TICKS.partition(symbol="EURUSD", date=day)


def _bp(day: str):
    return BARS.partition(symbol="EURUSD", date=day)


def _tiers(lake: Lake, spec=TICKS) -> dict[str, str]:
    return {dict(l.partition)["date"]: l.tier.value + (f"/month {l.month}" if l.month else "")
            for l in lake.locate(spec)}


def _content_sha(lake: Lake, spec, partition) -> str:
    """SHA-256 of the canonical encoding of what the read surface returns for one partition."""
    return sha256(encode_parquet(lake.read_partition(spec, partition)))


def _all_ticks(days, day_ticks) -> pl.DataFrame:
    return pl.concat([day_ticks[d] for d in days])


def _write_policy(tmp_path, monkeypatch, text: str):
    path = tmp_path / "lifecycle.yaml"
    path.write_text(text)
    monkeypatch.setenv("LAKE_LIFECYCLE", str(path))
    return path


# ------------------------------------------------------------------------------------------
# Policies
# ------------------------------------------------------------------------------------------
def test_policy_file_states_the_defaults_and_ages_follow_stages(monkeypatch):
    monkeypatch.delenv("LAKE_LIFECYCLE", raising=False)
    from_file = load_policy()
    assert from_file.source == str(REPO_POLICY_FILE) and REPO_POLICY_FILE == REPO_ROOT / "lifecycle.yaml"
    # The repo's file documents the built-in defaults: the same policy either way.
    assert dataclasses.replace(from_file, source="x") == dataclasses.replace(parse_policy({}), source="x")
    ticks, bars = from_file.for_dataset("ticks"), from_file.for_dataset("bars_1m")
    assert [ticks.tier_at_age(a) for a in (0, 6, 7, 400)] == [Tier.HOT, Tier.HOT, Tier.COLD, Tier.COLD]
    assert [bars.tier_at_age(a) for a in (0, 179, 180)] == [Tier.WARM, Tier.WARM, Tier.COLD]
    assert from_file.for_dataset("bars_1h").tier_at_age(10_000) is Tier.WARM  # roll-ups stay warm
    assert ticks.requires == ("bars_1m",) and ticks.compact
    # A dataset without a policy stays in its home tier.
    assert from_file.for_dataset("features").stages[0].tier is Tier.WARM


def test_policy_file_from_env_merges_defaults_and_names_bad_keys(tmp_path, monkeypatch):
    _write_policy(tmp_path, monkeypatch, "datasets:\n  ticks:\n    stages: [{tier: hot, days: 2}, {tier: warm, days: 3}, {tier: cold}]\n"
                                         "hot:\n  max_bytes: 1.5 MiB\n")
    policy = load_policy()
    assert policy.source == str(tmp_path / "lifecycle.yaml")
    assert policy.hot_max_bytes == int(1.5 * 2**20)
    assert [policy.for_dataset("ticks").tier_at_age(a).value for a in (1, 2, 4, 5)] == ["hot", "warm", "warm", "cold"]
    assert policy.for_dataset("bars_1m").stages[0].days == 180  # untouched datasets keep their defaults
    bad = {
        "datasets:\n  tickz: {stages: [{tier: hot}]}\n": "datasets: unknown key\\(s\\) tickz",
        "datasets:\n  ticks: {stages: [{tier: cold, days: 3}, {tier: hot}]}\n": "datasets.ticks.stages: tiers must get colder",
        "datasets:\n  ticks: {stages: [{tier: tepid}]}\n": "datasets.ticks.stages\\[0\\].tier: unknown tier 'tepid'",
        "hot:\n  max_bytes: lots\n": "hot.max_bytes: expected a size",
        "compaction:\n  zstd_level: 40\n": "compaction.zstd_level",
        "datasets: [\n": "not valid YAML",
    }
    for text, message in bad.items():
        path = _write_policy(tmp_path, monkeypatch, text)
        with pytest.raises(LakeValidationError, match=message) as err:
            load_policy()
        assert str(path) in str(err.value)


# ------------------------------------------------------------------------------------------
# Migration
# ------------------------------------------------------------------------------------------
def test_policy_migration_moves_verified_copies_to_s3_and_keeps_reads_exact(s3_lake_settings, day_ticks, day_bars, monkeypatch):
    monkeypatch.delenv("LAKE_LIFECYCLE", raising=False)
    lake = Lake(s3_lake_settings)
    lake.ensure_bucket()
    original = {d: lake.write("ticks", _tp(d), day_ticks[d]).sha256 for d in DAYS}
    for d in DAYS:
        if d != "2019-02-05":  # no bars for this day yet: its ticks must not leave hot
            lake.write("bars_1m", _bp(d), day_bars[d])
    client = LakeClient(lake=lake)
    everything = _all_ticks(DAYS, day_ticks)

    # As of 2019-02-13 ticks of 02-04..02-06 are 7+ days old (policy: hot 7 d -> cold); 02-07 is 6 days old.
    dry = migrate(lake, datasets=["ticks"], as_of="2019-02-13", dry_run=True)
    assert [dict(m.partition)["date"] for m in dry.planned] == ["2019-02-04", "2019-02-06"]
    assert [(dict(s.partition)["date"], s.target) for s in dry.skipped] == [("2019-02-05", Tier.COLD)]
    assert "bars_1m symbol=EURUSD, date=2019-02-05 is not in warm or cold" in dry.skipped[0].reason
    assert set(_tiers(lake).values()) == {"hot"}  # a dry run changes nothing

    report = migrate(lake, datasets=["ticks"], as_of="2019-02-13")
    assert not report.failed
    assert [(dict(m.partition)["date"], m.source, m.target, m.copied) for m in report.moved] == [
        ("2019-02-04", Tier.HOT, Tier.COLD, True), ("2019-02-06", Tier.HOT, Tier.COLD, True)]
    assert _tiers(lake) == {"2019-02-04": "cold", "2019-02-05": "hot", "2019-02-06": "cold", "2019-02-07": "hot"}
    for d in DAYS:  # one copy each, same checksum as written, verified where it now lives
        copies = copies_of(lake, TICKS, _tp(d))
        assert len(copies) == 1 and copies[0].sha256 == original[d]
        assert lake.verify("ticks", _tp(d))[0]
        assert _content_sha(lake, TICKS, _tp(d)) == original[d]
    assert lake.cold.fs.exists(lake.cold.uri(TICKS, _tp("2019-02-04")))
    assert not (s3_lake_settings.hot_root / "ticks/symbol=EURUSD/date=2019-02-04").exists()

    # The default read spans tiers, in partition order; the tier hint reads one tier.
    assert client.read("ticks", symbols="EURUSD").equals(everything)
    assert client.read("ticks", tier="hot")["ts"].dt.date().unique().sort().cast(pl.String).to_list() == ["2019-02-05", "2019-02-07"]
    assert client.read("ticks", tier="cold").equals(_all_ticks(["2019-02-04", "2019-02-06"], day_ticks))
    assert client.sql("select count(*) n from ticks")["n"][0] == everything.height
    assert set(_tiers(lake, BARS).values()) == {"warm"}  # bars stay warm for 180 days

    # Once the bars exist, the held-back day moves too; --to moves either way.
    lake.write("bars_1m", _bp("2019-02-05"), day_bars["2019-02-05"])
    assert [dict(m.partition)["date"] for m in migrate(lake, datasets=["ticks"], as_of="2019-02-13").moved] == ["2019-02-05"]
    back = migrate(lake, datasets=["ticks"], to="hot", start="2019-02-06", end="2019-02-06")
    assert [(m.source, m.target) for m in back.moved] == [(Tier.COLD, Tier.HOT)]
    assert _tiers(lake)["2019-02-06"] == "hot" and _content_sha(lake, TICKS, _tp("2019-02-06")) == original["2019-02-06"]
    assert client.read("ticks", symbols="EURUSD").equals(everything)
    # bars_1m to cold by hand (warm -> cold), checksums kept.
    bars_sha = lake.manifest("bars_1m", _bp("2019-02-04"), "warm")["sha256"]
    migrate(lake, datasets=["bars_1m"], to="cold", end="2019-02-04")
    assert _tiers(lake, BARS)["2019-02-04"] == "cold"
    assert lake.manifest("bars_1m", _bp("2019-02-04"), "cold")["sha256"] == bars_sha


def test_hot_capacity_moves_the_oldest_partitions_first(lake_settings, day_ticks, day_bars, tmp_path, monkeypatch):
    lake = Lake(lake_settings)
    infos = {d: lake.write("ticks", _tp(d), day_ticks[d]) for d in DAYS}
    for d in DAYS:
        lake.write("bars_1m", _bp(d), day_bars[d])
    total = sum(i.bytes for i in infos.values())
    limit = total - infos["2019-02-04"].bytes - infos["2019-02-05"].bytes + 1  # two oldest must leave
    _write_policy(tmp_path, monkeypatch, f"hot:\n  max_bytes: {limit}\n")
    # As of 02-08 every partition is younger than the 7-day hot stage: only capacity moves data.
    report = migrate(lake, as_of="2019-02-08")
    assert [(m.dataset, dict(m.partition)["date"], m.target) for m in report.moved] == [
        ("ticks", "2019-02-04", Tier.COLD), ("ticks", "2019-02-05", Tier.COLD)]
    assert all("limit" in m.reason for m in report.planned)
    assert _tiers(lake) == {"2019-02-04": "cold", "2019-02-05": "cold", "2019-02-06": "hot", "2019-02-07": "hot"}
    assert not migrate(lake, as_of="2019-02-08").planned  # under the limit now


def _subprocess_env(settings, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "AWS_"))}
    env.update({"LAKE_HOME": str(settings.home_abs), "LAKE_S3_ENDPOINT": settings.s3_endpoint,
                "LAKE_S3_BUCKET": settings.s3_bucket, "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
                "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key, "PYTHONPATH": str(REPO_ROOT)})
    env.update(extra)
    return env


def test_migration_killed_between_copy_and_delete_loses_nothing_and_rerun_converges(s3_lake_settings, day_ticks, day_bars):
    lake = Lake(s3_lake_settings)
    lake.ensure_bucket()
    days = DAYS[:3]
    original = {d: lake.write("ticks", _tp(d), day_ticks[d]).sha256 for d in days}
    for d in days:
        lake.write("bars_1m", _bp(d), day_bars[d])
    everything = _all_ticks(days, day_ticks)

    # `lake migrate` in its own process, SIGKILLed right after copying the 2nd partition to cold.
    env = _subprocess_env(s3_lake_settings, LAKE_AS_OF="2019-02-20", LAKE_LIFECYCLE_KILL_AT="move:after_copy:2")
    proc = subprocess.run([sys.executable, "-m", "lake_assets.cli", "migrate", "--dataset", "ticks"],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    assert [c.tier for c in copies_of(lake, TICKS, _tp(days[0]))] == [Tier.COLD]  # finished before the kill
    assert [c.tier for c in copies_of(lake, TICKS, _tp(days[1]))] == [Tier.HOT, Tier.COLD]  # copied, not deleted
    assert [c.tier for c in copies_of(lake, TICKS, _tp(days[2]))] == [Tier.HOT]  # not reached
    client = LakeClient(lake=lake)
    assert len(client.partitions("ticks")) == 3
    for d in days:  # every partition readable once, with its checksum
        assert _content_sha(lake, TICKS, _tp(d)) == original[d]
    assert client.read("ticks", symbols="EURUSD").equals(everything)
    assert client.sql("select count(*) n from ticks")["n"][0] == everything.height
    assert storage_report(lake, datasets=["ticks"]).interrupted == [
        {"dataset": "ticks", "partition": "symbol=EURUSD, date=2019-02-05", "tiers": ["hot", "cold"]}]

    # Re-run (no kill): the interrupted move is finished from its verified copy, the rest move.
    rerun = migrate(lake, datasets=["ticks"], as_of="2019-02-20")
    assert [(dict(m.partition)["date"], m.copied, m.removed) for m in rerun.moved] == [
        (days[1], False, (Tier.HOT,)), (days[2], True, (Tier.HOT,))]
    for d in days:
        assert [(c.tier, c.sha256) for c in copies_of(lake, TICKS, _tp(d))] == [(Tier.COLD, original[d])]
    assert client.read("ticks", symbols="EURUSD").equals(everything)
    assert not migrate(lake, datasets=["ticks"], as_of="2019-02-20").planned  # converged


# ------------------------------------------------------------------------------------------
# Cold compaction
# ------------------------------------------------------------------------------------------
def test_compaction_writes_one_verified_month_file_and_every_date_reads_once(s3_lake_settings, day_ticks, monkeypatch):
    monkeypatch.delenv("LAKE_LIFECYCLE", raising=False)
    lake = Lake(s3_lake_settings)
    lake.ensure_bucket()
    dup_day = "2019-02-06"
    row = day_ticks[dup_day].slice(5000, 1)
    same_ms = row.with_columns(pl.col("bid") + 0.00001)  # another tick in the same millisecond: kept
    for d in DAYS:
        df = pl.concat([day_ticks[d], row, same_ms]) if d == dup_day else day_ticks[d]  # + one exact duplicate
        lake.write("ticks", _tp(d), df, tier="cold")
    clean = dict(day_ticks)
    clean[dup_day] = pl.concat([day_ticks[dup_day], same_ms]).sort("ts", maintain_order=True)
    client = LakeClient(lake=lake)

    assert plan_compaction(lake, load_policy(), as_of="2019-02-20")[0].reason == "month not closed as of 2019-02-20"
    lake.write("ticks", _tp("2019-02-28"), day_ticks[DAYS[0]].with_columns(pl.col("ts") + pl.duration(days=24, time_unit="ns")))
    waiting = plan_compaction(lake, load_policy(), as_of="2019-03-02")
    assert waiting[0].status == "skipped" and "1 day(s) of EURUSD 2019-02 still in hot" in waiting[0].reason
    lake.delete("ticks", _tp("2019-02-28"), "hot")

    [result] = compact(lake, as_of="2019-03-02")
    assert result.status == "compacted", result.reason
    assert (result.days, result.duplicates_dropped, result.daily_files_removed) == (DAYS, 1, 4)
    assert result.rows == sum(clean[d].height for d in DAYS)
    uri = f"{s3_lake_settings.cold_root}/ticks/symbol=EURUSD/month=2019-02/part-0.parquet"
    assert result.uri == uri and lake.cold.fs.exists(uri)
    assert lake.cold.list(TICKS) == []  # daily files removed
    assert _tiers(lake) == {d: "cold/month 2019-02" for d in DAYS}

    for d in DAYS:  # each date as before (the exact duplicate dropped), with the checksum of that content
        assert lake.read_partition("ticks", _tp(d)).equals(clean[d])
        assert lake.manifest("ticks", _tp(d), "cold")["sha256"] == sha256(encode_parquet(clean[d]))
        assert lake.verify("ticks", _tp(d))[0]
    assert lake.manifest("ticks", _tp("2019-02-04"), "cold")["sha256"] == sha256(encode_parquet(day_ticks["2019-02-04"]))
    everything = _all_ticks(DAYS, clean)
    assert client.read("ticks", symbols="EURUSD").equals(everything)
    assert client.read("ticks", tier="cold", start="2019-02-05T10:00Z", end="2019-02-05T11:00Z").equals(
        day_ticks["2019-02-05"].filter(pl.col("ts").dt.hour() == 10))
    counts = client.sql("select cast(ts as date)::varchar d, count(*) n from ticks group by 1 order by 1")
    assert counts.rows() == [(d, clean[d].height) for d in DAYS]

    # The file: sorted, zstd, every row group inside one day, at most row_group_rows rows each.
    stored = pq.ParquetFile(io.BytesIO(lake.cold.fs.cat_file(uri)))
    assert stored.metadata.num_rows == result.rows
    assert pl.read_parquet(io.BytesIO(lake.cold.fs.cat_file(uri)))["ts"].is_sorted()
    ts_index = stored.schema_arrow.get_field_index("ts")
    for i in range(stored.metadata.num_row_groups):
        group = stored.metadata.row_group(i)
        stats = group.column(ts_index).statistics
        assert stats.min.date() == stats.max.date() and group.num_rows <= load_policy().row_group_rows
        assert group.column(ts_index).compression == "ZSTD"

    # Precedence: a daily copy anywhere shadows the month file's day; nothing is read twice.
    lake.write("ticks", _tp("2019-02-05"), day_ticks["2019-02-05"].head(1000))  # re-materialized into hot
    assert "2019-02-05" not in lake.cold.month_file(TICKS, "EURUSD", "2019-02").dates
    newer = day_ticks["2019-02-06"].head(2000)
    lake.cold.write(TICKS, _tp("2019-02-06"), newer)  # a daily cold file not yet compacted
    expected = pl.concat([day_ticks["2019-02-04"], day_ticks["2019-02-05"].head(1000), newer, day_ticks["2019-02-07"]])
    assert client.read("ticks", symbols="EURUSD").equals(expected)
    assert client.sql("select count(*) n from ticks")["n"][0] == expected.height
    assert lake.read_partition("ticks", _tp("2019-02-06")).equals(newer)
    # Re-compaction merges the daily file into the month file (its days stay as they read now).
    assert compact(lake, as_of="2019-03-02")[0].status == "skipped"  # 02-05 is hot now: wait for it...
    [again] = compact(lake, as_of="2019-03-02", force=True)  # ... unless forced
    assert again.status == "compacted" and again.days == ["2019-02-04", "2019-02-06", "2019-02-07"]
    assert client.read("ticks", symbols="EURUSD").equals(expected)
    assert lake.cold.list(TICKS) == []


def _compaction_subprocess(settings, kill_at: str) -> subprocess.CompletedProcess:
    code = ("from lake_resources.lifecycle import compact; from lake_resources.storage import Lake; "
            "from lake_resources.settings import LakeSettings; "
            "print(compact(Lake(LakeSettings.from_env()), as_of='2019-03-02'))")
    env = _subprocess_env(settings, LAKE_LIFECYCLE_KILL_AT=kill_at, LAKE_LIFECYCLE=os.environ["LAKE_LIFECYCLE"])
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_compaction_killed_midway_keeps_every_date_readable_and_rerun_converges(s3_lake_settings, day_ticks, tmp_path, monkeypatch):
    _write_policy(tmp_path, monkeypatch, "compaction:\n  zstd_level: 3\n")  # speed: the level is not under test here
    lake = Lake(s3_lake_settings)
    lake.ensure_bucket()
    days = DAYS[:3]
    original = {d: lake.write("ticks", _tp(d), day_ticks[d], tier="cold").sha256 for d in days}
    client = LakeClient(lake=lake)
    everything = _all_ticks(days, day_ticks)

    def assert_each_date_once():
        assert len(client.partitions("ticks")) == len(days)
        for d in days:
            assert _content_sha(lake, TICKS, _tp(d)) == original[d]
        assert client.read("ticks", symbols="EURUSD").equals(everything)
        assert client.sql("select count(*) n from ticks")["n"][0] == everything.height

    # Killed after the month data was stored, before its manifest: it serves nothing yet.
    assert _compaction_subprocess(s3_lake_settings, "compact:after_data").returncode == -signal.SIGKILL
    assert lake.cold.fs.exists(lake.cold.month_uri(TICKS, "EURUSD", "2019-02"))
    assert lake.cold.month_file(TICKS, "EURUSD", "2019-02") is None
    assert_each_date_once()
    # Killed after removing the first daily file: that date now reads from the month file.
    assert _compaction_subprocess(s3_lake_settings, "compact:after_daily_delete:1").returncode == -signal.SIGKILL
    assert _tiers(lake) == {days[0]: "cold/month 2019-02", days[1]: "cold", days[2]: "cold"}
    assert_each_date_once()
    # A re-run converges: one month file serving every date, no daily files.
    [result] = compact(lake, as_of="2019-03-02")
    assert result.status == "compacted" and result.days == days and result.daily_files_removed == 2
    assert _tiers(lake) == {d: "cold/month 2019-02" for d in days}
    assert_each_date_once()
    for d in days:
        assert lake.manifest("ticks", _tp(d), "cold")["sha256"] == original[d]


# ------------------------------------------------------------------------------------------
# Storage report, CLI and Dagster
# ------------------------------------------------------------------------------------------
def _cli(monkeypatch, settings, *argv) -> int:
    from lake_assets import cli

    monkeypatch.setenv("LAKE_HOME", str(settings.home_abs))
    for key in ("LAKE_S3_ENDPOINT", "LAKE_LIFECYCLE"):
        monkeypatch.delenv(key, raising=False)
    return cli.main(list(argv))


def test_lake_storage_and_migrate_commands(lake_settings, day_ticks, day_bars, monkeypatch, capsys):
    lake = Lake(lake_settings)
    ticks = {d: lake.write("ticks", _tp(d), day_ticks[d]) for d in DAYS[:3]}
    bars = {d: lake.write("bars_1m", _bp(d), day_bars[d]) for d in DAYS[:3]}
    cold = lake.write("ticks", _tp(DAYS[3]), day_ticks[DAYS[3]], tier="cold")

    assert _cli(monkeypatch, lake_settings, "storage", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    rows = {(u["dataset"], u["tier"]): u for u in report["datasets"]}
    assert set(rows) == {("ticks", "hot"), ("ticks", "cold"), ("bars_1m", "warm")}
    assert rows["ticks", "hot"] == {"dataset": "ticks", "tier": "hot", "partitions": 3,
                                         "rows": sum(i.rows for i in ticks.values()), "bytes": sum(i.bytes for i in ticks.values()),
                                         "oldest": DAYS[0], "newest": DAYS[2], "month_files": 0}
    assert (rows["ticks", "cold"]["rows"], rows["ticks", "cold"]["bytes"]) == (cold.rows, cold.bytes)
    assert rows["bars_1m", "warm"]["rows"] == sum(i.rows for i in bars.values())
    assert report["hot_disk"]["free_bytes"] > 0 and report["interrupted_moves"] == []
    assert _cli(monkeypatch, lake_settings, "storage") == 0
    text = capsys.readouterr().out
    assert "ticks" in text and "hot disk" in text and "bars_1m" in text

    assert _cli(monkeypatch, lake_settings, "migrate", "--dataset", "ticks", "--to", "warm", "--dry-run", "-v") == 0
    out = capsys.readouterr().out
    assert sum(l.startswith("would move") for l in out.splitlines()) == 4 and "4 partition(s) would move" in out
    assert set(_tiers(lake).values()) == {"hot", "cold"}  # unchanged
    # --older-than N: partitions at least N days old go to their policy's final tier (ticks: cold).
    monkeypatch.setenv("LAKE_AS_OF", "2019-02-08")
    assert _cli(monkeypatch, lake_settings, "migrate", "--dataset", "ticks", "--older-than", "3") == 0
    out = capsys.readouterr().out
    assert "moved 2 partition(s)" in out, out
    assert _tiers(lake) == {DAYS[0]: "cold", DAYS[1]: "cold", DAYS[2]: "hot", DAYS[3]: "cold"}
    with pytest.raises(SystemExit) as refused:
        _cli(monkeypatch, lake_settings, "migrate", "--to", "lukewarm")
    assert refused.value.code == 2 and "invalid choice: 'lukewarm'" in capsys.readouterr().err


def test_dagster_lifecycle_jobs_and_storage_health(lake_settings, day_ticks, day_bars, tmp_path, monkeypatch):
    from lake_assets.lifecycle import cold_compaction, defs, storage_health, tier_migration
    from lake_resources.dagster_io import LakeResource

    lake = Lake(lake_settings)
    for d in DAYS[:2]:
        lake.write("ticks", _tp(d), day_ticks[d])
        lake.write("bars_1m", _bp(d), day_bars[d])
    _write_policy(tmp_path, monkeypatch, "hot:\n  min_free_bytes: 1000000TiB\n")  # more than any disk: warns
    resources = {"lake": LakeResource(home=str(lake_settings.home_abs))}
    result = dg.materialize(
        [tier_migration, cold_compaction, storage_health], selection=["tier_migration", "storage_health"],
        resources=resources, instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"tier_migration": {"config": {"dataset": "ticks", "start": "2019-02-04", "end": "2019-02-04",
                                                          "as_of": "2019-02-20"}}}},
    )
    assert result.success
    moved = result.asset_materializations_for_node("tier_migration")[0].metadata
    assert moved["moved"].value == 1 and moved["failed"].value == 0
    assert _tiers(lake) == {DAYS[0]: "cold", DAYS[1]: "hot"}
    health = result.asset_materializations_for_node("storage_health")[0].metadata
    assert health["ticks/cold/partitions"].value == 1 and health["ticks/hot/partitions"].value == 1
    assert health["hot/bytes"].value == lake.manifest("ticks", _tp(DAYS[1]), "hot")["bytes"]
    assert health["cold/oldest"].value == DAYS[0] and health["hot/free_bytes"].value > 0
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["hot_disk_free_space"].passed and checks["hot_disk_free_space"].severity is dg.AssetCheckSeverity.WARN
    assert checks["no_unfinished_moves"].passed
    # The jobs and their schedules are part of the project's definitions.
    assert {s.name for s in defs.schedules} == {"lifecycle_migration_daily", "lifecycle_compaction_daily", "storage_health_hourly",
                                                "storage_verify_daily"}
    assert {j.name for j in defs.jobs} == {"lifecycle_migration", "lifecycle_compaction", "storage_health_job", "storage_verify"}


def test_migrate_dry_run_prints_a_summary_and_details_only_with_verbose(lake_settings, monkeypatch, capsys):
    """``lake migrate --dry-run`` over 40 partitions (bars_1h, warm to cold) prints a few summary lines (per dataset and move:
    partitions, rows, bytes, date span), not one line per partition; ``-v`` lists each partition."""
    from datetime import datetime, timedelta, timezone

    lake = Lake(lake_settings)
    hourly = dataset_spec("bars_1h")
    first = date(2019, 1, 1)
    days = [(first + timedelta(days=i)).isoformat() for i in range(40)]
    for day in days:
        ts = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
        lake.write("bars_1h", hourly.partition(symbol="EURUSD", date=day), pl.DataFrame({"symbol": ["EURUSD"] * 3, "ts": [ts] * 3, "close": [1.0, 1.1, 1.2]}))
    assert _cli(monkeypatch, lake_settings, "migrate", "--dataset", "bars_1h", "--to", "cold", "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) <= 5, out
    assert not any(line.startswith("would move ") for line in out), out
    summary = [line for line in out if "bars_1h" in line and "warm -> cold" in line]
    assert len(summary) == 1 and "40 partition(s), 120 rows" in summary[0] and f"{days[0]}..{days[-1]}" in summary[0]
    assert _cli(monkeypatch, lake_settings, "migrate", "--dataset", "bars_1h", "--to", "cold", "--dry-run", "-v") == 0
    verbose = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("would move bars_1h") for line in verbose) == 40
    assert {lake.find("bars_1h", hourly.partition(symbol="EURUSD", date=d)) for d in days} == {Tier.WARM}  # a dry run moves nothing
