"""What every command of this package shares: the demo's groups and dates, run configs, day and symbol
lists, contiguous partition ranges, and the resources of the lake for a run (``lake_resources_for``)."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path

#: Groups the demo materializes, in this order (lifecycle moves data between tiers by its own policy).
DEMO_GROUPS = ("ingest", "canonical", "research")
#: Last day of the demo window: fixed, so the demo is reproducible.
DEMO_LAST_DAY = date(2019, 2, 15)
DEMO_SEED = 7
#: The console logger of every run we start: Dagster's DEBUG lines would bury our progress lines.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
#: Backfill runs print nothing (a failed step's traceback would bury the progress lines): ``lake
#: backfill`` prints one line per failed run instead, and the UI has the full logs.
SILENT_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
#: Leaderboard columns worth a terminal line (whichever exist), in this order.
LEADERBOARD_COLUMNS = ("rank", "spec_id", "symbol", "sharpe", "sortino", "total_return", "max_drawdown", "hit_rate",
                       "trade_count", "f1", "f1_basis")
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

Say = Callable[[str], None]

REPO_ROOT = Path(__file__).resolve().parents[2]


def prepare_dagster_home(settings) -> Path:
    """DAGSTER_HOME (default LAKE_HOME/dagster) with the project's dagster.yaml in it."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    src = REPO_ROOT / "dagster.yaml"
    dst = home / "dagster.yaml"
    if src.exists() and (not dst.exists() or dst.read_bytes() != src.read_bytes()):
        shutil.copyfile(src, dst)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("LAKE_HOME", str(settings.home_abs))
    return home



def _print(msg: str) -> None:
    print(msg, flush=True)


def quiet_dagster() -> None:
    """No beta/preview warnings or DEBUG lines from Dagster on our console."""
    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)
    logging.getLogger("dagster").setLevel(logging.WARNING)


def trading_days(end: date, count: int) -> list[date]:
    """The last ``count`` weekdays up to ``end``."""
    if count < 1:
        raise ValueError(f"need at least one trading day, got {count}")
    days: list[date] = []
    d = end
    while len(days) < count:
        if d.weekday() < 5:
            days.append(d)
        d -= timedelta(days=1)
    return sorted(days)


def calendar_days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def parse_symbols(symbols: str | Iterable[str], settings=None) -> list[str]:
    """Validated symbols of this lake's universe (``LAKE_SYMBOLS``), in the given order.

    An unknown instrument and a known one the lake does not ingest get different errors; the
    second names the exact command that adds it."""
    from lake_resources.catalog.validation import LakeValidationError, validate_symbol
    from lake_resources.settings import LakeSettings

    items = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    chosen = list(dict.fromkeys(validate_symbol(s.strip().upper()) for s in items if s.strip()))
    if not chosen:
        raise LakeValidationError("no symbols given")
    return (settings or LakeSettings.from_env()).require_symbols(chosen)


def contiguous_ranges(ordered: Sequence[str], wanted: Iterable[str]) -> list[tuple[str, str]]:
    """Maximal runs of consecutive ``ordered`` keys that are all ``wanted``, as (first, last)."""
    want = set(wanted)
    ranges: list[tuple[str, str]] = []
    first = last = None
    for key in ordered:
        if key in want:
            first = first or key
            last = key
        elif first is not None:
            ranges.append((first, last))
            first = last = None
    if first is not None:
        ranges.append((first, last))
    return ranges


def lake_resources_for(settings, *, dukascopy_url: str | None = None, dukascopy_feed: str | None = None,
                       dukascopy_api: str | None = None) -> dict:
    """Dagster resources pointing at ``settings``' lake; secrets stay ``EnvVar`` references. The
    Dukascopy feed and bases default to the settings' (``LAKE_DUKASCOPY_FEED``/``_API``/``_URL``)."""
    import dagster as dg

    from lake_resources.dagster_io import DukascopyResource, LakeIOManager, LakeResource

    def secret(name: str):
        return dg.EnvVar(name) if os.environ.get(name) else None

    verify = settings.s3_verify
    lake = LakeResource(
        home=str(settings.home_abs),
        s3_endpoint=settings.s3_endpoint,
        s3_bucket=settings.s3_bucket,
        s3_prefix=settings.s3_prefix,
        s3_region=settings.s3_region,
        s3_verify=verify if isinstance(verify, str) else ("true" if verify else "false"),
        aws_access_key_id=secret("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=secret("AWS_SECRET_ACCESS_KEY"),
        dukascopy_url=dukascopy_url or settings.dukascopy_url,
        landing=str(settings.landing_root),
        shared_landing=settings.shared_landing,
    )
    return {
        "lake": lake,
        "io_manager": LakeIOManager(lake=lake),
        "dukascopy": DukascopyResource(
            url=dukascopy_url or settings.dukascopy_url, feed=dukascopy_feed or settings.dukascopy_feed,
            api_url=dukascopy_api or settings.dukascopy_api, api_batch_pause_seconds=settings.dukascopy_api_pause,
            lake=lake),
    }
