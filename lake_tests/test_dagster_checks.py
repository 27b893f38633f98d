"""Asset checks through Dagster, in-process, on a real lake: the real EURUSD day passes every check;
broken stored data fails the right checks with readable metadata, and a failing blocking check stops
what is downstream; single-run ranges are checked partition by partition."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from lake_assets.canonical.checks import (
    CHECK_KINDS,
    CHECKSUM,
    GAPS,
    SCHEMA,
    TIMESTAMPS,
    build_dataset_checks,
)
from lake_assets.definitions import defs
from lake_assets.metadata import dataset_metadata
from lake_assets.partitions import date_symbol_partitions
from lake_resources.catalog.datasets import Tier, dataset_spec
from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource
from lake_resources.generate import generate
from lake_resources.lifecycle import compact_month, parse_policy
from lake_resources.sources.dukascopy import bi5
from lake_resources.storage import DATA_FILE, Lake, ParquetTier, WarmTier, encode_parquet

KEY = "2019-02-04|EURUSD"
PART = (("symbol", "EURUSD"), ("date", "2019-02-04"))
ALL = [*defs.assets, *defs.asset_checks]


def resources(home: Path, datafeed: Path) -> dict:
    lake = LakeResource(home=str(home))
    return {"lake": lake, "io_manager": LakeIOManager(lake=lake),
            "dukascopy": DukascopyResource(feed="datafeed", url=datafeed.as_uri(), lake=lake)}


def run(selection, home: Path, datafeed: Path, partition_key: str | None = KEY, tags=None, instance=None):
    if partition_key and tags is None:
        # partition tags rather than partition_key=: a checks-only selection has no asset to take the
        # partitions definition from (as when a check is re-run alone from the UI)
        tags, partition_key = date_symbol_partitions.get_tags_for_partition_key(partition_key), None
    return dg.materialize(ALL, selection=selection, partition_key=partition_key, tags=tags,
                          resources=resources(home, datafeed), instance=instance or dg.DagsterInstance.ephemeral(),
                          raise_on_error=False)


def evaluations(result) -> dict[tuple[str, str, str | None], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name, e.partition): e for e in result.get_asset_check_evaluations()}


def checks_of(*assets: str) -> set[tuple[str, str]]:
    graph = defs.get_repository_def().asset_graph
    return {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys
            if k.asset_key.to_user_string() in assets}


def materialized(result, asset: str) -> list[str]:
    return [e.partition for e in result.get_asset_materialization_events()
            if e.asset_key.to_user_string() == asset]


@pytest.fixture(scope="module")
def fixture_lake(tmp_path_factory, datafeed_dir) -> tuple[Path, dg.ExecuteInProcessResult]:
    """The real EURUSD day materialized once (raw -> ticks -> minute bars), with every check."""
    home = tmp_path_factory.mktemp("checks") / "lake"
    result = run("*bars_1m", home, datafeed_dir)
    assert result.success
    return home, result


def copy_of(fixture_lake, tmp_path) -> Path:
    home = tmp_path / "lake"
    shutil.copytree(fixture_lake[0], home)
    return home


def test_real_day_passes_every_check_with_metadata(fixture_lake, datafeed_dir):
    home, result = fixture_lake
    found = evaluations(result)
    expected = checks_of("raw_dukascopy", "ticks", "raw_vendor", "bars_1m")
    assert {(a, c) for a, c, _ in found} == expected
    assert {p for _, _, p in found} == {KEY}
    failed = {k: e.description for k, e in found.items() if not e.passed}
    assert failed == {}
    ticks_count = bi5.decode_day_ticks(
        [(datafeed_dir / f"EURUSD/2019/01/04/{h:02d}h_ticks.bi5").read_bytes() for h in range(24)],
        date(2019, 2, 4), 100000).height
    schema = found[("ticks", "schema_valid", KEY)]
    assert schema.blocking
    assert schema.metadata["failure_count"].value == 0
    assert schema.metadata["rows"].value == ticks_count
    assert schema.metadata["partition"].value == "symbol=EURUSD, date=2019-02-04"
    checksum = found[("bars_1m", "checksum_matches_manifest", KEY)]
    assert checksum.metadata["tier"].value == "warm" and "rows 1440 (manifest 1440)" in checksum.description
    gaps = found[("ticks", "no_trading_hour_gaps", KEY)]
    assert gaps.metadata["missing_hours"].value == [] and len(gaps.metadata["expected_hours"].value) == 24
    # each result points at the materialization it checked
    assert found[("ticks", "prices_valid", KEY)].target_materialization_data.run_id == result.run_id
    # only the schema checks block
    assert {c for (_, c, _), e in found.items() if e.blocking} == {"schema_valid"}


def test_crossed_quote_fails_schema_and_prices_and_blocks_downstream(fixture_lake, tmp_path, datafeed_dir):
    home = copy_of(fixture_lake, tmp_path)
    lake = Lake(LakeResource(home=str(home)).settings())
    good = lake.read_partition("ticks", PART)
    bars_before = lake.read_partition("bars_1m", PART)
    row = 100
    bad = good.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.col("ask") + 0.0002).otherwise(pl.col("bid")).alias("bid")
    ).with_columns(((pl.col("bid") + pl.col("ask")) / 2).alias("mid"), (pl.col("ask") - pl.col("bid")).alias("spread"))
    lake.write("ticks", PART, bad)  # a consistent manifest: only the content is wrong

    sel = dg.AssetSelection.checks_for_assets("ticks") | dg.AssetSelection.assets("bars_1m", "bars_5m")
    result = run(sel, home, datafeed_dir)
    assert not result.success
    found = evaluations(result)
    schema = found[("ticks", "schema_valid", KEY)]
    assert not schema.passed
    # one row breaks two rules: bid <= ask and spread >= 0
    assert schema.metadata["failure_count"].value == 2
    assert "crossed quote: bid > ask x1" in schema.description and "spread greater_than_or_equal_to(0) x1" in schema.description
    cases = schema.metadata["failure_cases_sample"].value
    assert "| spread | greater_than_or_equal_to(0) |" in cases and f"| {row} |" in cases
    sample = schema.metadata["failing_rows_sample"].value
    assert sample.splitlines()[0].startswith("| row | ts |") and f"| {row} |" in sample
    prices = found[("ticks", "prices_valid", KEY)]
    assert not prices.passed and prices.severity == dg.AssetCheckSeverity.ERROR
    assert prices.metadata["failing_rows"].value == 1 and prices.metadata["first_failing_rows"].value == [row]
    assert "crossed: bid > ask" in prices.description
    assert found[("ticks", "checksum_matches_manifest", KEY)].passed
    # the blocking failure stopped bars_1m and everything after it
    assert materialized(result, "bars_1m") == [] and materialized(result, "bars_5m") == []
    assert {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"} == {"check_ticks"}
    assert not {"bars_1m", "bars_5m"} & {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert lake.read_partition("bars_1m", PART).equals(bars_before)


def test_tampered_files_fail_the_checksum_check(fixture_lake, tmp_path, datafeed_dir):
    home = copy_of(fixture_lake, tmp_path)
    lake = Lake(LakeResource(home=str(home)).settings())
    ticks_file = Path(lake.hot.uri(dataset_spec("ticks"), PART))
    assert ticks_file.name == DATA_FILE
    shorter = lake.read_partition("ticks", PART).head(-1)
    ticks_file.write_bytes(encode_parquet(shorter))  # valid Parquet, but not what the manifest recorded
    with duckdb.connect(str(lake.warm.path)) as con:  # a row removed behind the lake's back
        con.execute("DELETE FROM bars_1m WHERE ts = (SELECT max(ts) FROM bars_1m)")

    result = run(dg.AssetSelection.checks_for_assets("ticks", "bars_1m"), home, datafeed_dir)
    found = evaluations(result)
    ticks_sum = found[("ticks", "checksum_matches_manifest", KEY)]
    assert not ticks_sum.passed
    assert f"rows {shorter.height} (manifest {shorter.height + 1})" in ticks_sum.description
    assert ticks_sum.metadata["tier"].value == "hot"
    bars_sum = found[("bars_1m", "checksum_matches_manifest", KEY)]
    assert not bars_sum.passed and "rows 1439 (manifest 1440)" in bars_sum.description
    # the content itself is still valid: the schema checks pass, the checksum is what caught it
    assert found[("ticks", "schema_valid", KEY)].passed
    assert result.success  # checksum checks are not blocking


def test_unreadable_partition_still_reports(fixture_lake, tmp_path, datafeed_dir):
    home = copy_of(fixture_lake, tmp_path)
    lake = Lake(LakeResource(home=str(home)).settings())
    Path(lake.hot.uri(dataset_spec("ticks"), PART)).write_bytes(b"not parquet at all")
    result = run(dg.AssetSelection.checks_for_assets("ticks"), home, datafeed_dir)
    found = evaluations(result)
    assert {c for (_, c, _) in found} == {c for _, c in checks_of("ticks")}
    assert [c for (_, c, _), e in found.items() if e.passed] == []
    assert "cannot read ticks symbol=EURUSD, date=2019-02-04" in found[("ticks", "schema_valid", KEY)].description
    assert "rows -1" in found[("ticks", "checksum_matches_manifest", KEY)].description


def test_single_run_range_checks_every_partition(tmp_path):
    """A 4-day single-run backfill over generated EURUSD data: every partition gets every check; one
    broken partition and one short day are reported by partition, with the range's failing ones."""
    feed = generate(tmp_path / "gen", ["EURUSD"], "2019-02-04", "2019-02-07", seed=3, ticks_per_day=3000,
                    empty_hour_probability=0.0).dukascopy_dir
    home = tmp_path / "lake"
    keys = [f"2019-02-0{d}|EURUSD" for d in (4, 5, 6, 7)]
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    instance = dg.DagsterInstance.ephemeral()
    result = run(["raw_dukascopy", "ticks"], home, feed, partition_key=None, tags=tags, instance=instance)
    assert result.success
    found = evaluations(result)
    assert {(a, c, p) for a, c, p in found} == {(a, c, k) for a, c in checks_of("raw_dukascopy", "ticks") for k in keys}
    assert all(e.passed for e in found.values()), {k: e.description for k, e in found.items() if not e.passed}
    assert found[("ticks", "schema_valid", keys[1])].metadata["run_partitions"].value == 4

    lake = Lake(LakeResource(home=str(home)).settings())
    p5 = (("symbol", "EURUSD"), ("date", "2019-02-05"))
    p7 = (("symbol", "EURUSD"), ("date", "2019-02-07"))
    t5 = lake.read_partition("ticks", p5)
    lake.write("ticks", p5, t5.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(-1.0).otherwise(pl.col("bid")).alias("bid")))
    t7 = lake.read_partition("ticks", p7)
    lake.write("ticks", p7, t7.filter(pl.col("ts").dt.hour() >= 22))  # a day that is mostly missing
    for _ in range(2):  # the range's newest materializations are now not one per partition
        assert run(dg.AssetSelection.assets("ticks").without_checks(), home, feed, instance=instance).success
    result = run(dg.AssetSelection.checks_for_assets("ticks"), home, feed, partition_key=None, tags=tags, instance=instance)
    found = evaluations(result)
    latest = {k: instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("ticks"), asset_partitions=[k]),
                                                 limit=1).records[0].storage_id for k in keys}
    assert {k: found[("ticks", "schema_valid", k)].target_materialization_data.storage_id for k in keys} == latest
    assert not result.success  # the blocking schema check failed on 2019-02-05
    # what the UI shows per partition: the latest result, aimed at the partition's latest materialization
    infos = instance.event_log_storage.get_asset_check_partition_info([dg.AssetCheckKey(dg.AssetKey("ticks"), "schema_valid")])
    assert {i.partition_key: i.latest_execution_status.value for i in infos} == {
        k: "FAILED" if k == keys[1] else "SUCCEEDED" for k in keys}
    assert all(i.is_current for i in infos)
    schema = {k: found[("ticks", "schema_valid", k)] for k in keys}
    assert [k for k, e in schema.items() if not e.passed] == [keys[1]]
    assert schema[keys[0]].metadata["run_failing_partitions"].value == [keys[1]]
    assert "bid" in schema[keys[1]].metadata["failure_cases_sample"].value
    count = found[("ticks", "row_count_normal", keys[3])]
    assert not count.passed and count.severity == dg.AssetCheckSeverity.WARN
    assert count.metadata["trailing_counts"].value == [t.height for t in (
        lake.read_partition("ticks", (("symbol", "EURUSD"), ("date", f"2019-02-0{d}"))) for d in (4, 5, 6))]
    gaps = found[("ticks", "no_trading_hour_gaps", keys[3])]
    assert not gaps.passed and gaps.metadata["missing_hours"].value == list(range(22))
    assert "22 of 24 trading hours have no data: 00:00, 01:00" in gaps.description


def test_factory_builds_checks_for_other_datasets(tmp_path, datafeed_dir):
    """Research datasets reuse the factory: here a features-like asset with schema/timestamps/checksum."""

    @dg.asset(name="toy_features", partitions_def=date_symbol_partitions, metadata=dataset_metadata("features"))
    def toy_features() -> pl.DataFrame:
        ts = pl.datetime_range(pl.datetime(2019, 2, 4, time_zone="UTC"), pl.datetime(2019, 2, 4, 23, time_zone="UTC"),
                               "1h", eager=True).dt.cast_time_unit("ns")
        return pl.DataFrame({"ts": ts, "symbol": "EURUSD", "ret_1h": 0.001})

    checks = build_dataset_checks(toy_features, "features", [SCHEMA, TIMESTAMPS, CHECKSUM])
    result = dg.materialize([toy_features, checks], partition_key=KEY, resources=resources(tmp_path / "lake", datafeed_dir),
                            instance=dg.DagsterInstance.ephemeral())
    found = evaluations(result)
    assert {c for (_, c, _) in found} == {CHECK_KINDS[k].check_name for k in (SCHEMA, TIMESTAMPS, CHECKSUM)}
    assert all(e.passed for e in found.values())

    with pytest.raises(ValueError, match="unknown check kind"):
        build_dataset_checks(toy_features, "features", ["spelling"])
    with pytest.raises(ValueError, match="needs partition field"):
        build_dataset_checks("leaderboard", "leaderboard", [GAPS])
    with pytest.raises(ValueError, match="no pandera schema for leaderboard"):
        build_dataset_checks("leaderboard", "leaderboard", [SCHEMA])


# ---------------------------------------------------------------------------------------------
# Each partition is read once
# ---------------------------------------------------------------------------------------------
def test_checks_read_each_partition_once(tmp_path, monkeypatch):
    """The check step reads each stored file once (the checksum check uses the copy the other checks read)
    and opens the warm DuckDB file as often for a 4-day range as for one day, not once per partition."""
    feed = generate(tmp_path / "gen", ["EURUSD"], "2019-02-04", "2019-02-07", seed=5, ticks_per_day=2000,
                    empty_hour_probability=0.0).dukascopy_dir
    home = tmp_path / "lake"
    keys = [f"2019-02-0{d}|EURUSD" for d in (4, 5, 6, 7)]
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    assert run(dg.AssetSelection.assets("raw_dukascopy", "ticks", "bars_1m").without_checks(), home, feed,
               partition_key=None, tags=tags).success

    file_reads: Counter[str] = Counter()
    warm_opens: list[bool] = []
    real_get_file, real_connect = ParquetTier.get_file, WarmTier.connect

    def counting_get_file(self, relative):
        if relative.endswith("/" + DATA_FILE):
            file_reads[relative] += 1
        return real_get_file(self, relative)

    def counting_connect(self, read_only=False):
        warm_opens.append(read_only)
        return real_connect(self, read_only)

    monkeypatch.setattr(ParquetTier, "get_file", counting_get_file)
    monkeypatch.setattr(WarmTier, "connect", counting_connect)
    checks = dg.AssetSelection.checks_for_assets("ticks", "bars_1m")

    def check(partition_key, tags=None):
        file_reads.clear()
        warm_opens.clear()
        result = run(checks, home, feed, partition_key=partition_key, tags=tags)
        found = evaluations(result)
        assert found and all(e.passed for e in found.values()), {k: e.description for k, e in found.items() if not e.passed}
        return dict(file_reads), list(warm_opens), found

    one_reads, one_opens, _ = check(keys[0])
    range_reads, range_opens, found = check(None, tags)
    lake = Lake(LakeResource(home=str(home)).settings())
    ticks_spec = dataset_spec("ticks")
    tick_files = [lake.hot.uri(ticks_spec, (("symbol", "EURUSD"), ("date", k[:10])))[len(lake.hot.root) + 1:] for k in keys]
    assert one_reads == {tick_files[0]: 1}
    assert range_reads == dict.fromkeys(tick_files, 1)
    assert range_opens == one_opens and set(range_opens) == {True}  # read-only, however many partitions
    assert {p for (a, c, p) in found if c == "checksum_matches_manifest"} == set(keys)


def _ticks_of(day: str, n: int, extra: bool = False) -> pl.DataFrame:
    start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    ts = pl.Series([start + timedelta(minutes=7 * i) for i in range(n)]).dt.cast_time_unit("ns")
    bid = pl.Series([1.1 + i * 1e-5 for i in range(n)])
    frame = pl.DataFrame({"ts": ts, "symbol": "EURUSD", "bid": bid, "ask": bid + 2e-5, "bid_volume": 1.0,
                          "ask_volume": 1.5})
    return frame.with_columns(venue=pl.lit("x")) if extra else frame


@pytest.mark.parametrize("cold", ["local", "s3"])
def test_verifying_the_copy_read_answers_as_verify_in_every_tier(cold, lake_settings, request):
    """``verify_read`` on what ``read_stored``/``read_partitions`` returned gives ``verify``'s answer and
    detail, for a hot file, warm rows, a cold daily file and a day of a cold month file; also when the
    stored data no longer matches its manifest."""
    settings = request.getfixturevalue("s3_lake_settings") if cold == "s3" else lake_settings
    lake = Lake(settings)
    lake.ensure_bucket()
    spec = dataset_spec("ticks")
    part = {d: spec.partition(symbol="EURUSD", date=d) for d in ("2019-02-04", "2019-02-05", "2019-02-06", "2019-02-07")}
    lake.write(spec, part["2019-02-04"], _ticks_of("2019-02-04", 50), tier="hot")
    lake.write(spec, part["2019-02-05"], _ticks_of("2019-02-05", 60), tier="warm")
    lake.write(spec, part["2019-02-06"], _ticks_of("2019-02-06", 70, extra=True), tier="warm")  # a column added later
    lake.write(spec, part["2019-02-07"], _ticks_of("2019-02-07", 80), tier="cold")
    cold_day = spec.partition(symbol="EURUSD", date="2019-01-10")
    lake.write(spec, cold_day, _ticks_of("2019-01-10", 40), tier="cold")
    compact_month(lake, "ticks", "EURUSD", "2019-01", parse_policy({"compaction": {"zstd_level": 3}}))
    assert lake.month_holding(spec, cold_day) is not None
    where = {part["2019-02-04"]: Tier.HOT, part["2019-02-05"]: Tier.WARM, part["2019-02-06"]: Tier.WARM,
             part["2019-02-07"]: Tier.COLD, cold_day: Tier.COLD}
    assert {p: lake.find(spec, p) for p in where} == where

    warm = [part["2019-02-05"], part["2019-02-06"]]
    batch = lake.warm.read_partitions(spec, warm)
    for p, frame in zip(warm, batch):
        assert frame.equals(lake.warm.read(spec, p))  # same rows, columns and types as one by one
    assert "venue" not in batch[0].columns and "venue" in batch[1].columns

    def answers(p):
        frame, file_sha256 = lake.read_stored(spec, p, where[p])
        assert frame.equals(lake.read_from(spec, p, where[p]))
        return lake.verify_read(spec, p, where[p], frame, file_sha256), lake.verify(spec, p, where[p])

    for p in where:
        read_answer, verify_answer = answers(p)
        assert read_answer == verify_answer and read_answer[0], (p, read_answer)
    assert "month file 2019-01" in answers(cold_day)[0][1]
    assert answers(part["2019-02-04"])[0][1].startswith("ticks symbol=EURUSD, date=2019-02-04 in hot: rows 50 (manifest 50)")

    # stored data that no longer matches its manifest: the same "no" and the same detail
    shorter = encode_parquet(_ticks_of("2019-02-04", 49))
    Path(lake.hot.uri(spec, part["2019-02-04"])).write_bytes(shorter)
    with duckdb.connect(str(lake.warm.path)) as con:
        con.execute("DELETE FROM ticks WHERE ts = (SELECT max(ts) FROM ticks WHERE ts < '2019-02-06')")
    for p in (part["2019-02-04"], part["2019-02-05"]):
        read_answer, verify_answer = answers(p)
        assert read_answer == verify_answer and not read_answer[0], read_answer
        assert f"rows {49 if p == part['2019-02-04'] else 59} (manifest" in read_answer[1]
