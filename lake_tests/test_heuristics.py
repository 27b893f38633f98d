"""Strategy specs (loading, validation, ids, grids) and the detectors against plain-loop references."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lake_resources.catalog.validation import validate_partition_value
from lake_resources.research import heuristics as H
from lake_tests.test_features import minute_bars, real_eurusd_ticks, shifted_day

STRATEGIES = Path(__file__).resolve().parents[1] / "strategies"
UTC = timezone.utc


@pytest.fixture(scope="module")
def bars(datafeed_dir: Path) -> pl.DataFrame:
    return minute_bars(real_eurusd_ticks(datafeed_dir))


def write(directory: Path, name: str, content: dict | str) -> Path:
    path = directory / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def make_run(kind: str, **params) -> H.RunSpec:
    spec = H.parse_spec({"name": f"t_{kind}", "version": 1, "kind": kind, "params": params})
    (run,) = H.expand_grid(spec)
    return run


# --- the shipped specs ---------------------------------------------------------------------------


def test_shipped_specs_cover_every_kind_and_expand_to_valid_unique_runs() -> None:
    specs = H.load_specs(STRATEGIES)
    assert sorted(s.kind for s in specs) == sorted(H.KINDS)
    runs = [r for s in specs for r in H.expand_grid(s)]
    ids = [r.spec_id for r in runs]
    assert len(set(ids)) == len(ids)
    for run_id in ids:
        assert validate_partition_value(run_id) == run_id
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", run_id)
    swept = [s for s in specs if s.grid]
    assert swept, "at least one shipped spec is a sweep"
    for spec in swept:
        combos = {tuple(sorted((k, r.params[k]) for k in spec.grid)) for r in H.expand_grid(spec)}
        assert len(combos) == np.prod([len(v) for v in spec.grid.values()])
    saw = next(s for s in specs if s.name == "saw_tooth_v1")  # the example from the seed design, verbatim
    assert saw.params == {"window": 5, "amp_factor": 1.2, "min_count": 3}


def test_spec_ids_are_stable_and_track_what_matters(tmp_path: Path) -> None:
    yaml_file = write(tmp_path, "a.yaml", "name: st\nversion: 1\nkind: saw_tooth\nparams:\n  window: 5\n  amp_factor: 1.2\n  min_count: 3\n")
    base = H.load_spec(yaml_file)
    same_in_json = H.parse_spec({"kind": "saw_tooth", "name": "st", "version": 1, "params": {"min_count": 3, "amp_factor": 1.2, "window": 5}})
    default_stated = H.parse_spec({"name": "st", "version": 1, "kind": "saw_tooth", "params": {"window": 5, "amp_factor": 1.2, "min_count": 3, "baseline_window": 20}})
    assert H.spec_id(base) == H.spec_id(same_in_json) == H.spec_id(default_stated) == H.expand_grid(base)[0].spec_id
    assert H.spec_id(base).startswith("st.v1.")
    changed = [
        {"name": "st", "version": 2, "kind": "saw_tooth", "params": {"window": 5, "amp_factor": 1.2, "min_count": 3}},
        {"name": "st", "version": 1, "kind": "saw_tooth", "params": {"window": 5, "amp_factor": 1.3, "min_count": 3}},
        {"name": "st", "version": 1, "kind": "saw_tooth", "params": {"window": 5, "amp_factor": 1.2, "min_count": 3}, "bar_interval": "5m"},
    ]
    assert len({H.spec_id(base), *(H.spec_id(H.parse_spec(c)) for c in changed)}) == 4
    # the same id in a fresh interpreter (no dependence on Python's per-process hash seed)
    code = f"from lake_resources.research import heuristics as H; print(H.spec_id(H.load_spec(__import__('pathlib').Path({str(yaml_file)!r}))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == H.spec_id(base)


def test_grid_expands_to_the_product_in_a_stable_order() -> None:
    spec = H.parse_spec({"name": "g", "version": 3, "kind": "bollinger_mean_reversion", "params": {"window": 30}, "grid": {"num_std": [2, 2.5, 3], "exit_z": [0.0, 0.5]}})
    runs = H.expand_grid(spec)
    assert [(r.params["exit_z"], r.params["num_std"]) for r in runs] == [(e, n) for e in (0.0, 0.5) for n in (2.0, 2.5, 3.0)]
    assert all(r.params["window"] == 30 and r.name == "g" and r.version == 3 for r in runs)
    assert len({r.spec_id for r in runs}) == 6
    assert H.spec_id(spec) not in {r.spec_id for r in runs}  # the sweep as a whole has its own id
    assert [r.spec_id for r in H.expand_grid(spec)] == [r.spec_id for r in runs]


GOOD = {"name": "ok", "version": 1, "kind": "ma_crossover", "params": {"fast": 5, "slow": 20}}


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"name": None}, "name", "missing"),
        ({"name": "bad name"}, "name", "letters, digits"),
        ({"version": 0}, "version", "integer >= 1"),
        ({"version": True}, "version", "integer >= 1"),
        ({"kind": "martingale"}, "kind", "expected one of"),
        ({"params": {"fast": "abc", "slow": 20}}, "params.fast", "expected an integer >= 1, got 'abc'"),
        ({"params": {"fast": 5.5, "slow": 20}}, "params.fast", "expected an integer"),
        ({"params": {"fast": 5}}, "params.slow", "required for kind ma_crossover"),
        ({"params": {"fast": 5, "slow": 20, "speed": 1}}, "params.speed", "unknown parameter"),
        ({"params": {"fast": 30, "slow": 20}}, "params", "fast (30) must be < slow (20)"),
        ({"params": {"slow": 20}, "grid": {"fast": [5, 25]}}, "grid combination {'fast': 25}", "must be < slow"),
        ({"params": {"slow": 20}, "grid": {"fast": 5}}, "grid.fast", "non-empty list"),
        ({"params": {"slow": 20}, "grid": {"fast": [5, "x"]}}, "grid.fast[1]", "expected an integer"),
        ({"grid": {"fast": [5]}}, "grid.fast", "also set in params"),
        ({"symbols": ["EURUSD", "../etc"]}, "symbols", "invalid symbol"),
        ({"bar_interval": "7m"}, "bar_interval", "expected one of"),
        ({"paramz": {}}, "paramz", "unknown field"),
    ],
)
def test_invalid_specs_name_the_file_and_the_field(tmp_path: Path, change: dict, field: str, problem: str) -> None:
    raw = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = write(tmp_path, "broken.json", raw)
    with pytest.raises(H.SpecError) as caught:
        H.load_specs(tmp_path)
    assert caught.value.source == str(path) and caught.value.field == field
    assert problem in str(caught.value) and str(path) in str(caught.value)


def test_file_level_problems(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "not a spec: ignored")
    write(tmp_path, "a.yaml", "name: dup\nversion: 1\nkind: breakout\n")
    assert [s.name for s in H.load_specs(tmp_path)] == ["dup"]
    write(tmp_path, "b.json", {"name": "dup", "version": 1, "kind": "breakout", "params": {"window": 5}})
    with pytest.raises(H.SpecError, match=r"b\.json: name: dup version 1 is also defined in .*a\.yaml"):
        H.load_specs(tmp_path)
    (tmp_path / "b.json").unlink()
    write(tmp_path, "c.yaml", "name: [unclosed\n")
    with pytest.raises(H.SpecError, match=r"c\.yaml: \(file\): not valid YAML"):
        H.load_specs(tmp_path)
    (tmp_path / "c.yaml").write_text("- just\n- a list\n")
    with pytest.raises(H.SpecError, match=r"c\.yaml: \(top level\): expected a mapping"):
        H.load_specs(tmp_path)
    with pytest.raises(H.SpecError, match="not a directory"):
        H.load_specs(tmp_path / "missing")


def test_heuristic_defs_rows_store_the_canonical_run() -> None:
    runs = H.expand_grid(H.load_specs(STRATEGIES)[0])
    added = datetime(2026, 11, 1, 12, tzinfo=UTC)
    rows = H.heuristic_defs_rows(runs, added)
    assert rows.schema == pl.Schema(H.HEURISTIC_DEFS_SCHEMA)
    for run, row in zip(runs, rows.iter_rows(named=True)):
        stored = json.loads(row["json_spec"])
        assert row["id"] == stored["id"] == run.spec_id
        assert stored["params"] == run.params and stored["kind"] == run.kind
        assert row["added_at"] == added
    with pytest.raises(ValueError, match="timezone-aware"):
        H.heuristic_defs_rows(runs, datetime(2026, 11, 1))


# --- detectors against plain loops ---------------------------------------------------------------


def loop_hold(long_entry, short_entry, long_exit, short_exit) -> list[int]:
    """The state machine the vectorised detectors must equal, one bar at a time."""
    position, out = 0, []
    for le, se, lx, sx in zip(long_entry, short_entry, long_exit, short_exit):
        if le:
            position = 1
        elif se:
            position = -1
        elif (position > 0 and lx) or (position < 0 and sx):
            position = 0
        out.append(position)
    return out


def test_ma_crossover_detector_matches_a_loop(bars: pl.DataFrame) -> None:
    run = make_run("ma_crossover", fast=7, slow=45)
    got = H.detect(run, bars)
    close = bars["close"].to_list()
    expected = []
    for t in range(len(close)):
        if t < 44:
            expected.append(0)
            continue
        fast, slow = sum(close[t - 6 : t + 1]) / 7, sum(close[t - 44 : t + 1]) / 45
        expected.append(1 if fast - slow > 1e-12 else -1 if fast - slow < -1e-12 else 99)  # 99: a near-tie
    assert 99 not in expected
    assert got.positions["position"].to_list() == expected
    changes = [t for t in range(len(expected)) if expected[t] != 0 and expected[t] != (expected[t - 1] if t else 0)]
    assert got.matches["ts"].to_list() == bars["ts"].gather(changes).to_list()
    assert (np.sign(got.matches["score"].to_numpy()) == np.array(expected)[changes]).all()


def test_bollinger_detector_matches_a_loop(bars: pl.DataFrame) -> None:
    run = make_run("bollinger_mean_reversion", window=30, num_std=1.8, exit_z=0.2)
    got = H.detect(run, bars)
    close = np.asarray(bars["close"].to_list())
    z = [np.nan] * 29 + [(close[t] - close[t - 29 : t + 1].mean()) / close[t - 29 : t + 1].std() for t in range(29, len(close))]
    expected = loop_hold([v < -1.8 for v in z], [v > 1.8 for v in z], [v >= -0.2 for v in z], [v <= 0.2 for v in z])
    assert got.positions["position"].to_list() == expected
    assert {-1, 0, 1} == set(expected)
    longs = got.matches.join(got.positions, on=["ts", "symbol"]).filter(pl.col("position") == 1)
    assert (longs["score"] < -1.8).all() and longs.height > 0


def test_breakout_detector_matches_a_loop(bars: pl.DataFrame) -> None:
    run = make_run("breakout", window=40, exit_window=15)
    got = H.detect(run, bars)
    close, high, low = (bars[c].to_list() for c in ("close", "high", "low"))
    n = len(close)
    upper = [max(high[t - 40 : t]) if t >= 40 else None for t in range(n)]
    lower = [min(low[t - 40 : t]) if t >= 40 else None for t in range(n)]
    exit_low = [min(low[t - 15 : t]) if t >= 15 else None for t in range(n)]
    exit_high = [max(high[t - 15 : t]) if t >= 15 else None for t in range(n)]
    expected = loop_hold(
        [u is not None and c > u for c, u in zip(close, upper)],
        [lo is not None and c < lo for c, lo in zip(close, lower)],
        [e is not None and c < e for c, e in zip(close, exit_low)],
        [e is not None and c > e for c, e in zip(close, exit_high)],
    )
    assert got.positions["position"].to_list() == expected
    assert {-1, 0, 1} == set(expected)


def loop_saw_tooth(close: list[float], window: int, amp: float, min_count: int, baseline_window: int) -> list[bool]:
    moves = [None] + [close[t] - close[t - 1] for t in range(1, len(close))]
    swing = [False] * len(close)
    for t in range(baseline_window + 1, len(close)):
        baseline = sum(abs(m) for m in moves[t - baseline_window : t]) / baseline_window
        swing[t] = moves[t] != 0 and abs(moves[t]) >= amp * baseline
    alternation = [t > 0 and swing[t] and swing[t - 1] and (moves[t] > 0) != (moves[t - 1] > 0) for t in range(len(close))]
    return [t >= window - 1 and sum(alternation[t - window + 2 : t + 1]) >= min_count for t in range(len(close))]


def test_saw_tooth_definition_matches_a_loop() -> None:
    # Continuous random moves (no exact ties at the amplitude threshold) with planted bursts.
    rng = np.random.default_rng(8)
    moves = rng.normal(0, 1e-4, 3000)
    for start in range(100, 3000, 150):
        moves[start : start + 8] = np.resize([5e-4, -5e-4], 8) * rng.uniform(0.8, 1.2, 8)
    close = (1.1 + np.cumsum(moves)).tolist()
    ts = pl.Series("ts", np.datetime64("2019-02-04T00:00", "ns") + np.arange(3000).astype("timedelta64[m]")).dt.replace_time_zone("UTC")
    frame = pl.DataFrame({"ts": ts, "symbol": "SYN", "close": close})
    for window, amp, min_count in [(5, 1.2, 3), (8, 2.0, 4), (3, 1.5, 2)]:
        run = make_run("saw_tooth", window=window, amp_factor=amp, min_count=min_count)
        active = loop_saw_tooth(close, window, amp, min_count, 4 * window)
        got = H.detect(run, frame)
        assert (got.positions["position"] != 0).to_list() == [a and close[t] != close[t - 1] for t, a in enumerate(active)]
        onsets = [t for t, a in enumerate(active) if a and not (t and active[t - 1])]
        assert got.matches["ts"].to_list() == ts.gather(onsets).to_list() and len(onsets) >= 15


def test_saw_tooth_finds_planted_patterns_in_real_bars(bars: pl.DataFrame) -> None:
    close = bars["close"].to_numpy().copy()
    typical = np.median(np.abs(np.diff(close)))
    starts = list(range(120, 1440 - 20, 130))  # 11 planted saw-teeth, far apart
    for s in starts:
        close[s : s + 6] = close[s - 1] + np.array([1, -1, 1, -1, 1, -1]) * 3 * typical
    planted = bars.with_columns(pl.Series("close", close))
    labels = planted.select("ts", "symbol").gather(starts)
    run = make_run("saw_tooth", window=5, amp_factor=1.2, min_count=3)
    matches = H.detect(run, planted).matches
    scores = H.precision_recall_f1(matches, labels, timedelta(minutes=5))
    assert scores["recall"] == 1.0
    assert scores["precision"] >= 0.6  # the real day holds a few natural saw-teeth of its own
    assert scores["f1"] == pytest.approx(2 * scores["precision"] / (scores["precision"] + 1))


def test_detectors_do_not_look_ahead(bars: pl.DataFrame) -> None:
    runs = [r for s in H.load_specs(STRATEGIES) for r in H.expand_grid(s)]
    rng = np.random.default_rng(4)
    for _ in range(3):
        cut = bars["ts"][int(rng.integers(300, bars.height - 10))]
        later = pl.col("ts") > cut
        noise = pl.Series(rng.uniform(0.999, 1.001, bars.height))
        perturbed = bars.with_columns(pl.when(later).then(pl.col(c) * noise).otherwise(pl.col(c)).alias(c) for c in ("close", "high", "low"))
        for run in runs:
            before, after = H.detect(run, bars), H.detect(run, perturbed)
            for a, b in ((before.positions, after.positions), (before.matches, after.matches)):
                assert a.filter(pl.col("ts") <= cut).equals(b.filter(pl.col("ts") <= cut)), run.spec_id


def test_detect_runs_each_symbol_alone_and_honours_spec_symbols(bars: pl.DataFrame) -> None:
    other = shifted_day(bars, 0, 1.3, symbol="EURUSD.B").with_columns(pl.col("close").reverse())
    both = pl.concat([other, bars]).sample(fraction=1.0, shuffle=True, seed=1)
    run = make_run("bollinger_mean_reversion")
    together = H.detect(run, both)
    for symbol, frame in (("EURUSD", bars), ("EURUSD.B", other)):
        alone = H.detect(run, frame)
        assert together.positions.filter(pl.col("symbol") == symbol).equals(alone.positions)
        assert together.matches.filter(pl.col("symbol") == symbol).equals(alone.matches)
    restricted = H.expand_grid(H.parse_spec({"name": "r", "version": 1, "kind": "bollinger_mean_reversion", "params": {}, "symbols": ["eurusd"]}))[0]
    assert H.detect(restricted, both).positions["symbol"].unique().to_list() == ["EURUSD"]
    assert H.detect(run, both.head(0)).matches.schema == pl.Schema(H.SIGNAL_MATCHES_SCHEMA)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['high', 'low'\]"):
        H.detect(make_run("breakout"), bars.drop("high", "low"))


def test_precision_recall_f1_by_hand() -> None:
    def events(rows):
        return pl.DataFrame(
            {"ts": [datetime(2019, 2, 4, h, m, tzinfo=UTC) for h, m, _ in rows], "symbol": [s for *_, s in rows]}
        ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))

    matches = events([(10, 0, "A"), (10, 5, "A"), (11, 0, "A")])
    labels = events([(10, 1, "A"), (12, 0, "A"), (10, 0, "B")])
    # 10:00 A is 1 min from the 10:01 label; 10:05 is 4 min away; 11:00 has none within 2 min.
    # Labels: 10:01 A is found; 12:00 A is not; 10:00 B is not (the A match at 10:00 is another symbol).
    scores = H.precision_recall_f1(matches, labels, timedelta(minutes=2))
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert H.precision_recall_f1(matches, labels, timedelta(minutes=4))["precision"] == pytest.approx(2 / 3)
    assert H.precision_recall_f1(matches.head(0), labels, timedelta(minutes=4))["f1"] == 0.0
