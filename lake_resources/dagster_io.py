"""Dagster resources for the lake: ``LakeResource`` (settings and tiers), ``DukascopyResource`` and ``LakeIOManager``.

The IO manager routes each asset to the tier its definition declares (metadata ``lake/tier``,
default: the dataset's home tier) and stores every partition of the run separately, so single-run
backfills over a partition range store each partition correctly. Bounded memory over ranges: an
asset may return a :class:`PartitionStream` (partitions produced one at a time) and take an input
as :class:`PartitionInputs` (partitions loaded one at a time); plain ``pl.DataFrame`` works too.
"""


from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any, Optional

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from lake_resources.catalog.datasets import DatasetSpec, Partition, Tier, dataset_spec, partition_label
from lake_resources.settings import (
    DEFAULT_DUKASCOPY_API,
    DEFAULT_DUKASCOPY_FEED,
    DEFAULT_DUKASCOPY_URL,
    LakeSettings,
    _flag,
    parse_feed,
)
from lake_resources.storage import Lake, PartitionInfo, PartitionNotFound

TIER_KEY = "lake/tier"
DATASET_KEY = "lake/dataset"
ALLOW_MISSING_KEY = "lake/allow_missing"


class LakeResource(dg.ConfigurableResource):
    """The lake's configuration; every field comes from an environment variable via ``EnvVar``."""

    home: str = ".lake"
    s3_endpoint: Optional[str] = None
    s3_bucket: str = "quant-lake"
    s3_prefix: str = "lake"
    s3_region: str = "us-east-1"
    s3_verify: str = "true"
    aws_access_key_id: Optional[str] = None
    aws_secret_access_key: Optional[str] = None
    dukascopy_url: str = DEFAULT_DUKASCOPY_URL
    landing: Optional[str] = None
    shared_landing: Optional[str] = None

    _lake: Lake | None = PrivateAttr(default=None)

    def settings(self) -> LakeSettings:
        base = LakeSettings.from_env()  # symbols and start date are partition-definition settings
        return base.with_(
            home=self.home,
            s3_endpoint=self.s3_endpoint or None,
            s3_bucket=self.s3_bucket,
            s3_prefix=self.s3_prefix.strip("/"),
            s3_region=self.s3_region,
            s3_verify=_flag(self.s3_verify, True),
            aws_access_key_id=self.aws_access_key_id or None,
            aws_secret_access_key=self.aws_secret_access_key or None,
            dukascopy_url=self.dukascopy_url,
            landing=self.landing or None,
            shared_landing=self.shared_landing or None,
        )

    def lake(self) -> Lake:
        if self._lake is None:
            self._lake = Lake(self.settings())
            self._lake.ensure_bucket()
        return self._lake


# ------------------------------------------------------------------------------------------
# Partition keys <-> lake partitions
# ------------------------------------------------------------------------------------------
def partition_from_key(spec: DatasetSpec, partitions_def: dg.PartitionsDefinition | None, key: str | None) -> Partition:
    """Map a Dagster partition key (``2019-02-04|EURUSD``, ``2019-02-04``, a run id) to a lake partition."""
    if not spec.partition_by:
        return ()
    if key is None:
        raise ValueError(f"dataset {spec.name} is partitioned by {spec.partition_by} but the asset has no partition key")
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = partitions_def.get_partition_key_from_str(key).keys_by_dimension
        return spec.partition(**{f: dims[f] for f in spec.partition_by})
    if len(spec.partition_by) != 1:
        raise ValueError(f"dataset {spec.name} needs a {spec.partition_by} key, got {key!r}")
    return spec.partition(**{spec.partition_by[0]: key})


class PartitionStream:
    """Output of an asset producing several partitions one at a time: ``(partition_key, frame)`` pairs."""

    def __init__(self, items: Iterable[tuple[str, pl.DataFrame]], summary: Callable[[], dict] | None = None):
        self.items = items
        self.summary = summary  # extra output metadata, computed after every partition was produced

    def __iter__(self) -> Iterator[tuple[str, pl.DataFrame]]:
        return iter(self.items)


class PartitionInputs:
    """Input loaded lazily, one partition at a time: iterate ``(partition_key, frame)``."""

    def __init__(self, keys: list[str], loader: Callable[[str], pl.DataFrame | None]):
        self.keys = keys
        self._loader = loader

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[tuple[str, pl.DataFrame]]:
        for key in self.keys:
            frame = self._loader(key)
            if frame is not None:
                yield key, frame

    def get(self, key: str) -> pl.DataFrame | None:
        return self._loader(key)


def _split_by_partition(spec: DatasetSpec, df: pl.DataFrame, parts: dict[str, Partition]) -> Iterator[tuple[str, pl.DataFrame]]:
    """Split one frame covering several partitions into each partition's rows."""
    fields = spec.partition_by
    key_cols = []
    frame = df
    for f in fields:
        if f == "date":
            frame = frame.with_columns(pl.col(spec.time_column).dt.date().cast(pl.String).alias("__date"))
            key_cols.append("__date")
        else:
            key_cols.append(f)
    groups = {tuple(k): g.drop([c for c in key_cols if c.startswith("__")])
              for k, g in frame.group_by(key_cols, maintain_order=True)}
    empty = df.clear()
    for key, partition in parts.items():
        yield key, groups.get(tuple(v for _, v in partition), empty)


def frame_preview_md(df: pl.DataFrame, rows: int = 8) -> str:
    head = df.head(rows)
    if head.width == 0:
        return "_empty_"
    cols = head.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in head.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v) for v in rec) + " |")
    return "\n".join(lines)


def partition_metadata(info: PartitionInfo) -> dict[str, Any]:
    """What one stored partition's materialization shows: rows (plotted across partitions), range, checksum."""
    meta: dict[str, Any] = {
        "dagster/row_count": info.rows,
        "rows": info.rows,
        "bytes": info.bytes,
        "tier": info.tier,
        "sha256": info.sha256,
        "uri": dg.MetadataValue.path(info.uri),
    }
    symbol = dict(info.partition).get("symbol")
    if symbol:  # one plot per symbol in the UI (a plain "rows" line mixes every symbol's partitions)
        meta[f"rows/{symbol}"] = dg.MetadataValue.int(info.rows)
    if info.min_ts:
        meta["time_range"] = f"{info.min_ts} → {info.max_ts}"
    return meta


def range_metadata(infos: list[PartitionInfo]) -> dict[str, Any]:
    """What a multi-partition run adds to every partition's event: the run's totals, not the partition's."""
    # Text, not numbers: the same run totals on every partition's event would be plotted as if they
    # were each partition's own values.
    return {
        "run/partitions_written": dg.MetadataValue.text(str(len(infos))),
        "run/rows": dg.MetadataValue.text(f"{sum(i.rows for i in infos):,}"),
        "run/bytes": dg.MetadataValue.text(f"{sum(i.bytes for i in infos):,}"),
        "run/partitions": dg.MetadataValue.md(
            "| partition | rows | sha256 |\n|---|---|---|\n"
            + "\n".join(f"| {partition_label(i.partition)} | {i.rows} | {i.sha256[:16]} |" for i in infos[:200])
        ),
    }


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores asset outputs in the lake's tiers and loads inputs from whichever tier holds them."""

    lake: dg.ResourceDependency[LakeResource]

    # which dataset and tier -------------------------------------------------------------
    @staticmethod
    def _spec(asset_key: dg.AssetKey, metadata: dict | None) -> DatasetSpec:
        name = (metadata or {}).get(DATASET_KEY) or asset_key.path[-1]
        return dataset_spec(name)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return  # the asset stored its data itself
        metadata = context.definition_metadata or {}
        spec = self._spec(context.asset_key, metadata)
        tier = Tier.parse(metadata.get(TIER_KEY, spec.tier.value))
        lake = self.lake.lake()
        pdef = context.asset_partitions_def if context.has_asset_partitions else None
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        parts = {k: partition_from_key(spec, pdef, k) for k in keys}

        if isinstance(obj, PartitionStream):
            items: Iterable[tuple[str | None, pl.DataFrame]] = obj
        elif isinstance(obj, (pl.DataFrame, pl.LazyFrame)):
            frame = obj.collect() if isinstance(obj, pl.LazyFrame) else obj
            items = [(keys[0], frame)] if len(keys) == 1 else _split_by_partition(spec, frame, parts)
        else:
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a polars frame or PartitionStream, got {type(obj).__name__}")

        infos: list[PartitionInfo] = []
        samples: dict[Partition, pl.DataFrame] = {}  # each partition's own first rows
        for key, frame in items:
            if key not in parts:
                raise ValueError(f"{context.asset_key.to_user_string()}: produced partition {key!r} outside this run's {len(parts)} partition(s)")
            info = lake.write(spec, parts[key], frame, tier)
            infos.append(info)
            if frame.height:
                samples[parts[key]] = frame.head(8)
            if len(parts) > 1:
                context.log.info(f"stored {spec.name} {partition_label(info.partition)}: {info.rows} rows in {info.tier} ({len(infos)}/{len(parts)})")
        written = {i.partition for i in infos}
        missing = [k for k, p in parts.items() if p not in written]
        if missing:
            raise ValueError(f"{context.asset_key.to_user_string()}: no output for partition(s) {missing[:10]}")
        if len(infos) == 1:
            metadata = partition_metadata(infos[0])
            if samples:
                metadata["preview"] = dg.MetadataValue.md(frame_preview_md(next(iter(samples.values()))))
        else:
            # Each partition's own rows, range, checksum and preview on its own materialization event
            # (run-level output metadata would show the first partition's rows on every partition).
            stored = {info.partition: info for info in infos}
            for key, partition in parts.items():
                own = partition_metadata(stored[partition])
                if partition in samples:
                    own["preview"] = dg.MetadataValue.md(frame_preview_md(samples[partition]))
                context.step_context.add_asset_metadata(own, asset_key=context.asset_key, partition_key=key)
            metadata = range_metadata(infos)
        if isinstance(obj, PartitionStream) and obj.summary is not None:
            metadata.update(obj.summary())
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        spec = self._spec(context.asset_key, upstream.definition_metadata if upstream else None)
        lake = self.lake.lake()
        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING_KEY))
        if context.has_asset_partitions:
            pdef = context.asset_partitions_def
            keys = list(context.asset_partition_keys)
        else:
            pdef, keys = None, [None]

        def load(key: str | None) -> pl.DataFrame | None:
            partition = partition_from_key(spec, pdef, key)
            try:
                return lake.read_partition(spec, partition)
            except PartitionNotFound:
                if allow_missing:
                    return None
                raise

        wanted = context.dagster_type.typing_type if context.dagster_type else None
        if wanted is PartitionInputs:
            return PartitionInputs(keys, load)
        frames = [f for f in (load(k) for k in keys) if f is not None]
        if not frames:
            return pl.DataFrame()
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
        return frame.lazy() if wanted is pl.LazyFrame else frame


def partition_date(partition: Partition) -> date:
    return date.fromisoformat(dict(partition)["date"])


class DukascopyResource(dg.ConfigurableResource):
    """Which Dukascopy feed ingestion reads (``feed``): the JSON data API at ``api_url`` (default) or BI5
    files at ``url``; either base an http(s) mirror, a local dir/``file://`` or ``s3://``."""

    url: str = DEFAULT_DUKASCOPY_URL
    lake: dg.ResourceDependency[LakeResource]
    feed: str = DEFAULT_DUKASCOPY_FEED
    api_url: str = DEFAULT_DUKASCOPY_API
    max_concurrency: int = 8
    timeout_seconds: float = 20.0
    retries: int = 4
    api_max_concurrency: int = 4
    api_batch_pause_seconds: float = 0.5
    api_empty_retries: int = 2
    api_empty_pause_seconds: float = 1.0

    def source(self):
        from lake_resources.sources.dukascopy.datafeed import DukascopySource
        from lake_resources.storage.s3 import s3fs_kwargs

        settings = self.lake.settings()
        if parse_feed(self.feed) == "api":
            from lake_resources.sources.dukascopy.api import DukascopyApiSource

            remote = self.api_url.startswith(("http://", "https://"))
            return DukascopyApiSource(
                self.api_url,
                cache_dir=settings.cache_root / "dukascopy-api" if remote else None,
                storage_options=s3fs_kwargs(settings) if self.api_url.startswith("s3://") else None,
                timeout=self.timeout_seconds,
                max_concurrency=self.api_max_concurrency,
                retries=self.retries,
                batch_pause=self.api_batch_pause_seconds,
                empty_retries=self.api_empty_retries,
                empty_pause=self.api_empty_pause_seconds,
            )
        remote = self.url.startswith(("http://", "https://"))
        return DukascopySource(
            self.url,
            cache_dir=settings.cache_root / "dukascopy" if remote else None,
            storage_options=s3fs_kwargs(settings) if self.url.startswith("s3://") else None,
            timeout=self.timeout_seconds,
            max_concurrency=self.max_concurrency,
            retries=self.retries,
        )
