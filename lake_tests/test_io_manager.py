"""The IO manager over partition ranges: a single-run backfill stores every partition separately."""

from __future__ import annotations

import dagster as dg

from lake_assets.definitions import defs
from lake_resources.client import LakeClient
from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource
from lake_resources.settings import LakeSettings

RANGE = {"dagster/asset_partition_range_start": "2019-02-03|EURUSD",
         "dagster/asset_partition_range_end": "2019-02-05|EURUSD"}


def test_single_run_range_stores_each_partition_with_its_own_metadata(tmp_path, datafeed_dir):
    lake = LakeResource(home=str(tmp_path / "lake"))
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake),
                 "dukascopy": DukascopyResource(feed="datafeed", url=datafeed_dir.as_uri(), lake=lake)}
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(list(defs.assets), selection=["raw_dukascopy", "ticks", "bars_1m"], tags=RANGE,
                                resources=resources, instance=instance)
        assert result.success
        assert len({r.run_id for r in instance.get_runs()}) == 1  # one run for the whole range
        rows = {}
        for key in ("2019-02-03|EURUSD", "2019-02-04|EURUSD", "2019-02-05|EURUSD"):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("ticks"), asset_partitions=[key]), limit=1).records
            assert records, key
            rows[key] = records[0].asset_materialization.metadata["rows"].value
    # The fixture holds 2019-02-04 only: the other days are stored as empty partitions, each with its own count.
    assert rows == {"2019-02-03|EURUSD": 0, "2019-02-04|EURUSD": 136741, "2019-02-05|EURUSD": 0}
    client = LakeClient(LakeSettings(home=tmp_path / "lake"))
    stored = {dict(l.partition)["date"] for l in client.partitions("ticks")}
    assert stored == {"2019-02-03", "2019-02-04", "2019-02-05"}
    assert client.sql("select count(*) n from bars_1m")["n"][0] == 1440
