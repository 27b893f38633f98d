"""Research layer: features, backtests, strategy heuristics, leaderboards and replay.

Plain functions over polars frames and numpy arrays (no Dagster here); the asset graph wraps them.
"""
