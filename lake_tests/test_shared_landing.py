"""LAKE_SHARED_LANDING: the second landing area the vendor sensor watches (an s3:// URL or a local path;
by default s3://{bucket}/{prefix}/landing when the cold tier is on S3), with clear errors for malformed
values; watched and ingested from a custom location on the real S3 server and on local disk."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from lake_assets.definitions import defs
from lake_assets.ingest.sensors import vendor_landing_sensor
from lake_assets.ingest.vendor import landing_locations
from lake_assets.partitions import date_symbol_partitions
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource
from lake_resources.settings import LakeSettings
from lake_resources.sources.vendor import make_pull, write_pull
from lake_resources.storage import Lake
from lake_resources.storage.s3 import s3fs_kwargs

DAY = "2019-02-04"
KEY = f"{DAY}|AAPL"
PART = (("symbol", "AAPL"), ("date", DAY))
S3 = {"LAKE_S3_ENDPOINT": "http://127.0.0.1:9", "LAKE_S3_BUCKET": "team-bucket", "LAKE_S3_PREFIX": "lake"}


def _pull(vendor: str, minute: int = 0) -> bytes:
    records = [{"ts": f"2019-02-04T15:{m:02d}:00Z", "open": 100.0 + m, "high": 101.0 + m, "low": 99.5 + m,
                "close": 100.5 + m, "volume": 1000 + m} for m in range(minute, minute + 5)]
    return make_pull(vendor, "bars", "AAPL", DAY, datetime(2019, 2, 4, 21, 0, tzinfo=timezone.utc), records)


def _resource(settings: LakeSettings) -> LakeResource:
    return LakeResource(home=str(settings.home), s3_endpoint=settings.s3_endpoint, s3_bucket=settings.s3_bucket,
                        s3_prefix=settings.s3_prefix, aws_access_key_id=settings.aws_access_key_id,
                        aws_secret_access_key=settings.aws_secret_access_key, s3_verify="false",
                        shared_landing=settings.shared_landing)


def _tick(lake: LakeResource, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    return vendor_landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": lake}))


def _run(lake: LakeResource, instance: dg.DagsterInstance, request: dg.RunRequest):
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake),
                 "dukascopy": DukascopyResource(feed="datafeed", url="file:///nonexistent-datafeed", lake=lake)}
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=request.asset_selection,
                          tags={**request.tags, **date_symbol_partitions.get_tags_for_partition_key(request.partition_key)},
                          resources=resources, instance=instance, raise_on_error=False)


def test_default_and_configured_locations(tmp_path: Path, monkeypatch):
    home = {"LAKE_HOME": str(tmp_path / "lake")}
    # today's behaviour: none for an embedded lake, beside the cold tier when it is on S3
    assert LakeSettings.from_env(home).shared_landing_location is None
    assert LakeSettings.from_env(home | S3).shared_landing_location == "s3://team-bucket/lake/landing"
    no_prefix = LakeSettings.from_env(home | S3).with_(s3_prefix="")
    assert no_prefix.shared_landing_location == "s3://team-bucket/landing" and no_prefix.cold_root == "s3://team-bucket/cold"
    assert LakeSettings.from_env(home | S3 | {"LAKE_SHARED_LANDING": ""}).shared_landing_location == "s3://team-bucket/lake/landing"

    def location(value: str, env: dict = home) -> str | None:
        return LakeSettings.from_env(env | {"LAKE_SHARED_LANDING": value}).shared_landing_location

    assert location("s3://vendor-drop/in/box/", home | S3) == "s3://vendor-drop/in/box"
    assert location("s3://vendor-drop", home | S3) == "s3://vendor-drop"
    assert location("none", home | S3) is None and location("NONE") is None
    assert location(str(tmp_path / "share")) == str(tmp_path / "share")
    assert location(f"file://{tmp_path}/share") == str(tmp_path / "share")
    monkeypatch.chdir(tmp_path)
    assert location("share") == str(tmp_path / "share")  # relative: to the working directory, like LAKE_LANDING

    settings = LakeSettings.from_env(home | {"LAKE_SHARED_LANDING": str(tmp_path / "share")})
    assert settings.describe()["shared landing"] == str(tmp_path / "share")
    assert landing_locations(settings) == [(str(settings.landing_root), None), (str(tmp_path / "share"), None)]
    assert landing_locations(LakeSettings.from_env(home)) == [(str(LakeSettings.from_env(home).landing_root), None)]
    on_s3 = LakeSettings.from_env(home | S3)
    assert [url for url, _ in landing_locations(on_s3)] == [str(on_s3.landing_root), "s3://team-bucket/lake/landing"]
    assert landing_locations(on_s3)[1][1]["endpoint_url"] == S3["LAKE_S3_ENDPOINT"]
    # the resource carries the setting (configured from the environment with EnvVar)
    assert LakeResource(home=str(tmp_path / "lake"), shared_landing="none").settings().shared_landing_location is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("s3://Team_Bucket/x", "'Team_Bucket' is not a valid bucket name"),
        ("s3://", "'' is not a valid bucket name"),
        ("s3://team-bucket/in//box", "key prefix 'in//box' has an empty, '.' or '..' segment"),
        ("s3://team-bucket/in/../raw", "has an empty, '.' or '..' segment"),
        ("gs://team-bucket/landing", "unsupported scheme 'gs'"),
        ("https://example.com/landing", "unsupported scheme 'https'"),
        ("file://relative/dir", "a file:// URL needs an absolute path"),
    ],
)
def test_malformed_value_is_refused_naming_the_variable(tmp_path: Path, value: str, message: str):
    env = {"LAKE_HOME": str(tmp_path / "lake"), **S3, "LAKE_SHARED_LANDING": value}
    with pytest.raises(LakeValidationError, match="^LAKE_SHARED_LANDING=") as caught:
        LakeSettings.from_env(env)
    assert message in str(caught.value) and repr(value) in str(caught.value)
    with pytest.raises(LakeValidationError, match="LAKE_SHARED_LANDING="):  # same check through the resource
        LakeResource(home=str(tmp_path / "lake"), s3_endpoint=S3["LAKE_S3_ENDPOINT"], shared_landing=value).settings()


def test_s3_landing_without_endpoint_or_the_local_landing_twice_is_refused(tmp_path: Path):
    home = tmp_path / "lake"
    with pytest.raises(LakeValidationError, match="read through LAKE_S3_ENDPOINT, which is not set"):
        LakeSettings.from_env({"LAKE_HOME": str(home), "LAKE_SHARED_LANDING": "s3://team-bucket/landing"})
    with pytest.raises(LakeValidationError, match="is the LAKE_LANDING area .*read twice"):
        LakeSettings.from_env({"LAKE_HOME": str(home), "LAKE_SHARED_LANDING": str(home / "landing")})
    with pytest.raises(LakeValidationError, match="is the LAKE_LANDING area"):
        LakeSettings.from_env({"LAKE_HOME": str(home), "LAKE_LANDING": str(tmp_path / "in"),
                               "LAKE_SHARED_LANDING": f"file://{tmp_path}/in/"})


def test_local_shared_landing_is_watched_and_ingested(tmp_path: Path):
    share = tmp_path / "share"
    lake = LakeResource(home=str(tmp_path / "lake"), shared_landing=str(share))
    location = write_pull(share, _pull("nfsvendor"), vendor="nfsvendor", feed="bars", symbol="AAPL", day=DAY,
                          pull_id="p1")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = _tick(lake, instance)
        assert [r.partition_key for r in first.run_requests] == [KEY]
        assert _run(lake, instance, first.run_requests[0]).success
        assert _tick(lake, instance).run_requests == []  # captured as it is: nothing to run
    index = Lake(lake.settings()).read_partition("raw_vendor", PART)
    assert index["location"].to_list() == [location] and location.startswith(str(share))


@pytest.mark.s3
def test_custom_s3_landing_is_watched_and_ingested(tmp_path: Path, s3_lake_settings: LakeSettings):
    custom = f"s3://{s3_lake_settings.s3_bucket}/vendors/inbox"
    settings = s3_lake_settings.with_(shared_landing=custom)
    lake = _resource(settings)
    lake.lake()  # creates the bucket
    options = s3fs_kwargs(settings)
    location = write_pull(custom, _pull("s3vendor"), vendor="s3vendor", feed="bars", symbol="AAPL", day=DAY,
                          pull_id="p1", storage_options=options)
    assert location == f"{custom}/vendor/s3vendor/bars/{DAY}/AAPL/p1.json"
    # the default location is no longer watched once another is configured
    default = s3_lake_settings.shared_landing_location
    assert default == f"s3://{s3_lake_settings.s3_bucket}/{s3_lake_settings.s3_prefix}/landing"
    write_pull(default, _pull("s3vendor", 20), vendor="s3vendor", feed="bars", symbol="AAPL", day="2019-02-05",
               pull_id="p1", storage_options=options)

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = _tick(lake, instance)
        assert [r.partition_key for r in first.run_requests] == [KEY]
        assert _run(lake, instance, first.run_requests[0]).success
        fresh = _tick(lake, instance)  # no cursor: compared with what raw_vendor holds, nothing to run
        assert fresh.run_requests == [] and fresh.cursor == first.cursor

        write_pull(custom, _pull("s3vendor", 30), vendor="s3vendor", feed="bars", symbol="AAPL", day=DAY,
                   pull_id="p1", storage_options=options)  # the vendor re-sends p1 with other bars
        changed = _tick(lake, instance, fresh.cursor)
        assert [r.partition_key for r in changed.run_requests] == [KEY]
        assert _run(lake, instance, changed.run_requests[0]).success
        assert _tick(lake, instance).run_requests == []

    store = Lake(lake.settings())
    index = store.read_partition("raw_vendor", PART)
    assert index["location"].to_list() == [location]
    assert store.read_partition("bars_1m", PART)["open"].to_list() == [130.0, 131.0, 132.0, 133.0, 134.0]
    assert store.find("raw_vendor", (("symbol", "AAPL"), ("date", "2019-02-05"))) is None
