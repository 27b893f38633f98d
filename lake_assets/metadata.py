"""How assets describe themselves: the dataset they store, its tier and storage kinds."""

from __future__ import annotations

from lake_resources.datasets import Tier, dataset_spec
from lake_resources.resources import DATASET_KEY, TIER_KEY

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
