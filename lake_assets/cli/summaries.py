"""Summaries printed after a run: the latest check results per asset and partition, and frames."""

from __future__ import annotations

from dataclasses import dataclass

from lake_assets.cli.common import Say


# ------------------------------------------------------------------------------------------
# Summaries
# ------------------------------------------------------------------------------------------
@dataclass
class CheckSummary:
    check: str  # asset:check
    passed: int = 0
    warned: int = 0
    failed: int = 0
    not_run: int = 0
    example: str | None = None  # first failing partition and what the check said


def check_summaries(instance, asset_graph, partitions: set[str | None] | None = None) -> list[CheckSummary]:
    """Latest result of every asset check per partition (optionally only ``partitions``)."""
    import dagster as dg
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as S

    out = []
    for ck in sorted(asset_graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        summary = CheckSummary(f"{ck.asset_key.to_user_string()}:{ck.name}")
        latest = {}
        for record in instance.event_log_storage.get_asset_check_execution_history(ck, limit=100_000):
            latest.setdefault(record.partition, record)  # newest first
        for partition, record in sorted(latest.items(), key=lambda kv: kv[0] or ""):
            if partitions is not None and partition not in partitions:
                continue
            evaluation = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
            if record.status == S.SUCCEEDED:
                summary.passed += 1
            elif record.status == S.FAILED:
                warn = getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.WARN
                if warn:
                    summary.warned += 1
                else:
                    summary.failed += 1
                if summary.example is None:
                    what = getattr(evaluation, "description", None) or ""
                    summary.example = f"{partition or '-'}: {what}".strip().rstrip(":")
            else:
                summary.not_run += 1
        if summary.passed or summary.warned or summary.failed or summary.not_run:
            out.append(summary)
    return out


def format_check_summaries(summaries: list[CheckSummary], say: Say) -> None:
    """One line per asset (checks and results), then one line per check that warned or failed."""
    if not summaries:
        say("  (no asset check results)")
        return
    by_asset: dict[str, list[CheckSummary]] = {}
    for s in summaries:
        by_asset.setdefault(s.check.split(":", 1)[0], []).append(s)
    width = max(len(a) for a in by_asset)
    totals = CheckSummary("all")
    for asset, checks in by_asset.items():
        passed, warned, failed, not_run = (sum(getattr(c, f) for c in checks) for f in ("passed", "warned", "failed", "not_run"))
        totals.passed, totals.warned, totals.failed, totals.not_run = (
            totals.passed + passed, totals.warned + warned, totals.failed + failed, totals.not_run + not_run)
        parts = [f"{passed} passed"] + [f"{n} {label}" for n, label in ((warned, "warned"), (failed, "FAILED"), (not_run, "not run")) if n]
        say(f"  {asset:<{width}}  {len(checks)} checks: {', '.join(parts)}")
        for c in checks:
            if c.warned or c.failed:
                what = f"{c.failed} FAILED" if c.failed else f"{c.warned} warned"
                say(f"  {'':<{width}}    {c.check.split(':', 1)[1]}: {what}, e.g. {(c.example or '')[:150]}")
    say(f"  {'total':<{width}}  {totals.passed} passed, {totals.warned} warned, {totals.failed} failed"
        + (f", {totals.not_run} not run" if totals.not_run else ""))


def _print_frame(df, say: Say, rows: int = 12) -> None:
    import polars as pl

    with pl.Config(tbl_rows=rows, tbl_cols=12, fmt_str_lengths=40, tbl_width_chars=160,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        for line in str(df.head(rows)).splitlines():
            say("  " + line)
