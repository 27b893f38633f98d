"""Dukascopy JSON data API codec: URL paths, decoding and encoding of its columnar, delta-encoded bodies.

One JSON object per period (checked against dukascopy-node 1.49 and its fixtures, MIT):

- ticks of an hour: ``timestamp`` (ms, start of the period), ``multiplier``, base ``ask``/``bid``, and
  arrays ``times`` (ms deltas; the first is the offset from ``timestamp``), ``asks``/``bids`` (integer
  point deltas; the first from the base), ``askVolumes``/``bidVolumes`` (units);
- candles: base ``open/high/low/close``, ``shift`` (ms per step), arrays ``times`` (step deltas),
  ``opens/highs/lows/closes`` (point deltas) and ``volumes`` (already millions).

points = round(base / multiplier) + cumsum(deltas), on int64; price = points x multiplier rounded to the
multiplier's decimals. When the multiplier is 10^-k that is points / 10^k, computed as exactly that
division, so API prices are bit-identical to the BI5 codec's ``points / decimal_factor``. Tick volumes
are divided by 1e6 (millions, float32, as BI5). An empty period has ``"times": []`` and null bases.

Decoding is vectorised: ``json.loads`` builds the lists, numpy converts and sums them (no per-tick Python).
Anything malformed raises :class:`ApiDecodeError` naming the response and what is wrong.
"""

from __future__ import annotations

import array
import json
import math
import re
from collections.abc import Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from urllib.parse import quote

import numpy as np
import polars as pl

from lake_resources.sources.dukascopy.bi5 import MS_PER_HOUR, TS_DTYPE, HourProblem

_NS_PER_MS = 1_000_000
TICK_ARRAYS = ("times", "asks", "bids", "askVolumes", "bidVolumes")
CANDLE_ARRAYS = ("times", "opens", "highs", "lows", "closes", "volumes")
CANDLE_KINDS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
SIDES = ("BID", "ASK")


class ApiDecodeError(ValueError):
    """An API response could not be decoded; the message names the response and what is wrong."""


# ------------------------------------------------------------------------------------------ paths
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_code(code: str) -> str:
    """An instrument code as the API names them (``EUR-USD``, ``0005.HK-HKD``); anything else (a path
    separator, ``..``) is refused: codes become URL and file path segments."""
    if not isinstance(code, str) or not _CODE.match(code) or ".." in code:
        raise ValueError(f"invalid instrument code {code!r}: expected letters, digits, '.', '-' or '_'")
    return code


def _code(code: str) -> str:
    return quote(valid_code(code), safe="")


def ticks_path(code: str, hour: datetime) -> str:
    """``ticks/EUR-USD/2026/7/13/12``: month 1-based, nothing zero-padded."""
    return f"ticks/{_code(code)}/{hour.year}/{hour.month}/{hour.day}/{hour.hour}"


def candles_path(kind: str, code: str, side: str, start: date) -> str:
    """Candles of a completed period: a day of minutes, a month of hours, a year of days."""
    if kind not in CANDLE_KINDS or side not in SIDES:
        raise ValueError(f"candles: kind must be one of {list(CANDLE_KINDS)} and side BID or ASK, got {kind!r}, {side!r}")
    tail = {"minute": f"{start.year}/{start.month}/{start.day}", "hour": f"{start.year}/{start.month}",
            "day": f"{start.year}"}[kind]
    return f"candles/{kind}/{_code(code)}/{side}/{tail}"


def current_path(completed_path: str, from_ms: int) -> str:
    """The ``?from=`` form of the period containing now: ``ticks/EUR-USD?from=ms`` (drops the date parts)."""
    parts = completed_path.split("/")
    keep = 2 if parts[0] == "ticks" else 4  # ticks/CODE or candles/KIND/CODE/SIDE
    return "/".join(parts[:keep]) + f"?from={int(from_ms)}"


# ---------------------------------------------------------------------------------------- decoding
def parse(payload: bytes | str, *, name: str = "<response>") -> dict:
    """The JSON object of one response (ApiDecodeError for truncated or invalid JSON)."""
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiDecodeError(f"{name}: not valid JSON (truncated or corrupt): {exc}") from None
    if not isinstance(obj, dict):
        raise ApiDecodeError(f"{name}: expected a JSON object, got {type(obj).__name__}")
    return obj


def is_empty(obj: dict) -> bool:
    times = obj.get("times")
    return isinstance(times, list) and not times


def _number(obj: dict, key: str, name: str, what: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiDecodeError(f"{name}: missing {what} {key!r} (got {value!r})")
    if not math.isfinite(value):
        raise ApiDecodeError(f"{name}: non-finite {what} {key!r} ({value!r})")
    return float(value)


def _arrays(obj: dict, keys: Sequence[str], name: str) -> dict[str, list]:
    out = {}
    for key in keys:
        value = obj.get(key)
        if not isinstance(value, list):
            raise ApiDecodeError(f"{name}: column {key!r} is missing or not an array")
        out[key] = value
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise ApiDecodeError(f"{name}: column lengths differ: " + ", ".join(f"{k}={n}" for k, n in lengths.items()))
    return out


def _as_int64(values: list, key: str, name: str) -> np.ndarray:
    try:  # the common case, all ints: array.array converts ~1.5x faster than np.asarray
        return np.frombuffer(array.array("q", values), dtype=np.int64)
    except (TypeError, OverflowError):
        pass  # floats, nulls or huge numbers: the careful path says which
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        raise ApiDecodeError(f"{name}: column {key!r} holds non-numeric values") from None
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind != "f":
        raise ApiDecodeError(f"{name}: column {key!r} holds non-numeric values")
    if not np.isfinite(arr).all():
        raise ApiDecodeError(f"{name}: column {key!r} holds non-finite values")
    if (arr != np.rint(arr)).any():
        raise ApiDecodeError(f"{name}: column {key!r} holds non-integer deltas")
    return arr.astype(np.int64)


def _as_float(values: list, key: str, name: str) -> np.ndarray:
    try:
        arr = np.frombuffer(array.array("d", values), dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise ApiDecodeError(f"{name}: column {key!r} holds non-numeric values") from None
    if not np.isfinite(arr).all():
        raise ApiDecodeError(f"{name}: column {key!r} holds non-finite values")
    return arr


def price_scale(multiplier: float) -> tuple[int | None, float, int]:
    """``(divisor, multiplier, decimals)``: prices are points / divisor when the multiplier is 10^-k
    (divisor 10^k), else round(points x multiplier, decimals)."""
    if not (math.isfinite(multiplier) and multiplier > 0):
        raise ValueError(f"multiplier must be a positive finite number, got {multiplier!r}")
    inverse = 1.0 / multiplier
    k = round(math.log10(inverse)) if inverse >= 1 else None
    if k is not None and abs(inverse - 10**k) <= 1e-9 * 10**k:
        return 10**k, multiplier, k
    return None, multiplier, max(0, -Decimal(repr(multiplier)).normalize().as_tuple().exponent)


def _prices(points: np.ndarray, multiplier: float) -> np.ndarray:
    divisor, mult, decimals = price_scale(multiplier)
    if divisor is not None:
        return points / float(divisor)
    return np.round(points * mult, decimals)


def _points(obj: dict, base_key: str, deltas: np.ndarray, multiplier: float, name: str) -> np.ndarray:
    base = _number(obj, base_key, name, "base price")
    points = np.cumsum(deltas)
    points += round(base / multiplier)
    return points


def _multiplier(obj: dict, name: str) -> float:
    mult = _number(obj, "multiplier", name, "price multiplier")
    if mult <= 0:
        raise ApiDecodeError(f"{name}: price multiplier must be > 0, got {mult!r}")
    return mult


def tick_columns(obj: dict, *, name: str = "<response>") -> dict[str, np.ndarray]:
    """Decode a tick response into ``ts`` (epoch ns), ``bid``/``ask`` (float64) and volumes (float32,
    millions), plus ``ask_points``/``bid_points`` (int64). Raises ApiDecodeError on malformed input."""
    arrays = _arrays(obj, TICK_ARRAYS, name)
    start = _number(obj, "timestamp", name, "period start")
    if not arrays["times"]:
        empty_f, empty_i = np.empty(0, np.float64), np.empty(0, np.int64)
        return {"ts": empty_i, "bid": empty_f, "ask": empty_f, "bid_volume": np.empty(0, np.float32),
                "ask_volume": np.empty(0, np.float32), "ask_points": empty_i, "bid_points": empty_i}
    mult = _multiplier(obj, name)
    times = _as_int64(arrays["times"], "times", name)
    if (times < 0).any():
        raise ApiDecodeError(f"{name}: {int((times < 0).sum())} negative time delta(s)")
    ms = np.cumsum(times)
    ms += int(start)
    ask_points = _points(obj, "ask", _as_int64(arrays["asks"], "asks", name), mult, name)
    bid_points = _points(obj, "bid", _as_int64(arrays["bids"], "bids", name), mult, name)
    volumes = {side: _as_float(arrays[f"{side}Volumes"], f"{side}Volumes", name) for side in ("ask", "bid")}
    return {
        "ts": ms * _NS_PER_MS,
        "bid": _prices(bid_points, mult),
        "ask": _prices(ask_points, mult),
        "bid_volume": (volumes["bid"] / 1e6).astype(np.float32),
        "ask_volume": (volumes["ask"] / 1e6).astype(np.float32),
        "ask_points": ask_points,
        "bid_points": bid_points,
    }


_TICK_OUT = ("bid", "ask", "bid_volume", "ask_volume")


def _ticks_frame(columns: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.DataFrame({"ts": pl.Series("ts", columns["ts"], dtype=TS_DTYPE), **{c: columns[c] for c in _TICK_OUT}})


def decode_ticks(payload: bytes | str, *, name: str = "<response>") -> pl.DataFrame:
    """One tick response as ``ts, bid, ask, bid_volume, ask_volume`` (the BI5 codec's columns and units)."""
    return _ticks_frame(tick_columns(parse(payload, name=name), name=name))


def decode_day_ticks_checked(
    hours: Sequence[bytes | None], day: date, *, names: Sequence[str] | None = None
) -> tuple[pl.DataFrame, list[HourProblem]]:
    """Decode a day's hourly responses (None = no response) into one frame in time order.

    A malformed response is set aside whole (reported as a :class:`~lake_resources.sources.dukascopy.bi5.HourProblem`);
    ticks outside their hour are dropped and reported; every other hour proceeds.
    """
    if len(hours) != 24:
        raise ValueError(f"expected 24 hourly payloads, got {len(hours)}")
    names = list(names) if names is not None else [f"{day.isoformat()} {h:02d}h ticks.json" for h in range(24)]
    day_ms = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) * 1000
    parts: list[dict[str, np.ndarray]] = []
    problems = []
    for h, payload in enumerate(hours):
        if not payload:
            continue
        try:
            cols = tick_columns(parse(payload, name=names[h]), name=names[h])
        except ApiDecodeError as exc:
            problems.append(HourProblem(h, names[h], str(exc), None))
            continue
        lo, hi = (day_ms + h * MS_PER_HOUR) * _NS_PER_MS, (day_ms + (h + 1) * MS_PER_HOUR) * _NS_PER_MS
        ts = cols["ts"]  # non-decreasing (time deltas are >= 0): the ends settle the normal case
        if len(ts) and (ts[0] < lo or ts[-1] >= hi):
            outside = (ts < lo) | (ts >= hi)
            n = int(outside.sum())
            problems.append(HourProblem(h, names[h], f"{names[h]}: {n} tick(s) with a timestamp outside the hour", n))
            cols = {k: v[~outside] for k, v in cols.items()}
        parts.append(cols)
    if not parts:
        return _ticks_frame({"ts": np.empty(0, np.int64), "bid": np.empty(0), "ask": np.empty(0),
                             "bid_volume": np.empty(0, np.float32), "ask_volume": np.empty(0, np.float32)}), problems
    # one frame for the day (a polars frame per hour costs more than the hour's numpy work)
    return _ticks_frame({k: np.concatenate([p[k] for p in parts]) for k in ("ts", *_TICK_OUT)}), problems


def decode_candles(payload: bytes | str, *, name: str = "<response>") -> pl.DataFrame:
    """A candle response as ``ts, open, high, low, close, volume, multiplier`` (ts = candle open, UTC;
    volume in millions as served). ``multiplier`` is the price step (points = price / multiplier)."""
    obj = parse(payload, name=name)
    arrays = _arrays(obj, CANDLE_ARRAYS, name)
    start = _number(obj, "timestamp", name, "period start")
    if not arrays["times"]:
        return pl.DataFrame(schema={"ts": TS_DTYPE, **{c: pl.Float64 for c in ("open", "high", "low", "close", "volume",
                                                                              "multiplier")}})
    shift = _number(obj, "shift", name, "candle step")
    mult = _multiplier(obj, name)
    steps = _as_int64(arrays["times"], "times", name)
    if (steps < 0).any():
        raise ApiDecodeError(f"{name}: {int((steps < 0).sum())} negative time delta(s)")
    ts = (np.cumsum(steps) * int(shift) + int(start)) * _NS_PER_MS
    out = {"ts": pl.Series("ts", ts, dtype=TS_DTYPE)}
    for field, key in (("open", "opens"), ("high", "highs"), ("low", "lows"), ("close", "closes")):
        out[field] = _prices(_points(obj, field, _as_int64(arrays[key], key, name), mult, name), mult)
    out["volume"] = _as_float(arrays["volumes"], "volumes", name)
    out["multiplier"] = np.full(len(ts), mult)
    return pl.DataFrame(out)


# ---------------------------------------------------------------------------------------- encoding
def _delta(values: np.ndarray) -> list[int]:
    values = np.asarray(values, dtype=np.int64)
    return np.diff(values, prepend=values[:1]).tolist() if len(values) else []


def _dump(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_ticks(period_start_ms: int, multiplier: float, ms: np.ndarray, ask: np.ndarray, bid: np.ndarray,
                 ask_volume_units: np.ndarray, bid_volume_units: np.ndarray) -> bytes:
    """Encode ticks (offsets in ms from the period start, integer points, volumes in units) as the API
    serves them; no ticks gives the empty form (null bases)."""
    n = len(ms)
    ms = np.asarray(ms, dtype=np.int64)

    def base(points) -> float | None:
        return float(np.round(int(points[0]) * multiplier, 12)) if n else None

    return _dump({
        "timestamp": int(period_start_ms), "multiplier": multiplier, "ask": base(ask), "bid": base(bid),
        "times": np.diff(ms, prepend=0).tolist() if n else [], "asks": _delta(ask), "bids": _delta(bid),
        "askVolumes": np.asarray(ask_volume_units, dtype=np.float64).tolist(),
        "bidVolumes": np.asarray(bid_volume_units, dtype=np.float64).tolist(),
    })


def encode_candles(period_start_ms: int, shift_ms: int, multiplier: float, steps: np.ndarray, open_: np.ndarray,
                   high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> bytes:
    """Encode candles (offsets in steps of ``shift_ms``, integer points, volumes in millions)."""
    n = len(steps)

    def base(points) -> float | None:
        return float(np.round(int(points[0]) * multiplier, 12)) if n else None

    steps = np.asarray(steps, dtype=np.int64)
    return _dump({
        "timestamp": int(period_start_ms), "multiplier": multiplier, "open": base(open_), "high": base(high),
        "low": base(low), "close": base(close), "shift": int(shift_ms),
        "times": np.diff(steps, prepend=0).tolist() if n else [],
        "opens": _delta(open_), "highs": _delta(high), "lows": _delta(low), "closes": _delta(close),
        "volumes": np.asarray(volume, dtype=np.float64).tolist(),
    })


def multiplier_for(decimal_factor: int) -> float:
    """The API multiplier of a catalogue decimal factor (100000 -> 1e-05)."""
    return float(Decimal(1) / Decimal(int(decimal_factor)))
