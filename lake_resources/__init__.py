"""quant-lake storage, codecs, sources and transformations (no Dagster assets here)."""
