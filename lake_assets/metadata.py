"""How assets describe themselves: the dataset they store, its tier and storage kinds."""

from __future__ import annotations

from lake_resources.catalog.datasets import Tier, dataset_spec
from lake_resources.dagster_io import DATASET_KEY, TIER_KEY

OWNERS = ["team:quant-data"]
_KINDS = {Tier.HOT: {"parquet", "polars"}, Tier.WARM: {"duckdb", "polars"}, Tier.COLD: {"parquet", "s3"}}


def dataset_metadata(name: str, **extra) -> dict:
    spec = dataset_spec(name)
    return {DATASET_KEY: spec.name, TIER_KEY: spec.tier.value, "lake/partitioned_by": ", ".join(spec.partition_by) or "-", **extra}


def dataset_kinds(name: str) -> set[str]:
    return set(_KINDS[dataset_spec(name).tier])


def dataset_description(name: str) -> str:
    spec = dataset_spec(name)
    return f"{spec.description}\n\nStored in the {spec.tier.value} tier; partitioned by {', '.join(spec.partition_by) or 'nothing'}."


def daily_dataset_asset(
    name: str,
    group: str,
    *,
    code_version: str = "1",
    extra_kinds: set[str] = frozenset(),
    ins: dict | None = None,
    pool: str | None = None,
    description_extra: str = "",
    metadata_extra: dict | None = None,
    **kwargs,
):
    """``@dg.asset`` for a date × symbol dataset: partitions, single-run backfills, the dataset's
    metadata, kinds, owners and description, all in one place."""
    import dagster as dg

    from lake_assets.partitions import date_symbol_partitions

    return dg.asset(
        name=name,
        partitions_def=date_symbol_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=group,
        metadata=dataset_metadata(name, **(metadata_extra or {})),
        kinds=dataset_kinds(name) | set(extra_kinds),
        owners=OWNERS,
        code_version=code_version,
        description=dataset_description(name) + description_extra,
        ins=ins,
        pool=pool,
        **kwargs,
    )
