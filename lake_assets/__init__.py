"""quant-lake's Dagster definitions: assets, checks, sensors and schedules, grouped by domain.

Kept free of imports so that ``lake`` commands which do not need Dagster start fast.
"""
