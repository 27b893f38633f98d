"""Generated vendor records of one symbol-day: minute bars, option greeks and headlines."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import numpy as np

from lake_resources.catalog.instruments import instrument
from lake_resources.generate.profiles import (
    _EQUITIES,
    _HEADLINE_SOURCES,
    _HEADLINE_TEMPLATES,
    NEW_YORK,
    _daily_log_levels,
    _day_index,
    _EquityProfile,
    _rng,
)

# ----------------------------------------------------------------------------------------- vendor


def _equity_profile(symbol: str) -> _EquityProfile:
    return _EQUITIES.get(symbol, _EquityProfile(100.0, 0.02, 0.2, 5e6, 0.30))


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _session_open_utc(day: date) -> datetime:
    return datetime.combine(day, time(9, 30), NEW_YORK).astimezone(timezone.utc)


def _minute_bars(symbol: str, day: date, seed: int) -> list[dict[str, Any]]:
    """390 one-minute bars of the US session (ts = bar open), Brownian bridge to the next day's level."""
    profile = _equity_profile(symbol)
    rng = _rng(seed, symbol, day, 1)
    levels = _daily_log_levels(seed, symbol, profile.level, profile.daily_vol, profile.swing)
    x0, x1 = levels[_day_index(day)], levels[_day_index(day) + 1]
    n = 390
    step = profile.daily_vol / math.sqrt(n)
    t = np.arange(1, n + 1) / n
    walk = np.cumsum(rng.standard_normal(n)) * step
    close = np.exp(x0 + walk - t * (walk[-1] - (x1 - x0)))
    open_ = np.concatenate([[math.exp(x0) * (1 + rng.normal(0, step))], close[:-1]])
    open_, close = np.round(open_, 2), np.round(close, 2)
    high = np.maximum(np.round(np.maximum(open_, close) * (1 + np.abs(rng.normal(0, step / 2, n))), 2), np.maximum(open_, close))
    low = np.minimum(np.round(np.minimum(open_, close) * (1 - np.abs(rng.normal(0, step / 2, n))), 2), np.minimum(open_, close))
    shape = 1 + 2 * ((np.arange(n) - n / 2) / (n / 2)) ** 2  # U-shaped intraday volume
    volume = np.maximum(100, np.rint(profile.daily_volume * shape / shape.sum() * rng.lognormal(0, 0.4, n))).astype(np.int64)
    trades = np.maximum(1, volume // rng.integers(80, 200, n))
    vwap = np.round((high + low + close) / 3, 4)
    start = _session_open_utc(day)
    return [
        {
            "ts": _iso(start + timedelta(minutes=i)),
            "open": float(open_[i]),
            "high": float(high[i]),
            "low": float(low[i]),
            "close": float(close[i]),
            "volume": int(volume[i]),
            "vwap": float(vwap[i]),
            "trades": int(trades[i]),
        }
        for i in range(n)
    ]


_erf = np.vectorize(math.erf, otypes=[float])


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _option_greeks(symbol: str, day: date, seed: int, bars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Black-Scholes greeks (r = 4%, no dividends) every 30 minutes from 10:00 to 16:00 New York time,
    for 11 strikes around the open and the next 3 Friday expiries, calls and puts."""
    profile = _equity_profile(symbol)
    rng = _rng(seed, symbol, day, 2)
    rate = 0.04
    spot_open = bars[0]["open"]
    strike_step = 5.0 if spot_open > 200 else 2.5 if spot_open > 50 else 1.0
    strikes = np.round(spot_open / strike_step) * strike_step + strike_step * np.arange(-5, 6)
    strikes = strikes[strikes > 0]
    first_friday = day + timedelta(days=(4 - day.weekday()) % 7)
    expiries = [first_friday + timedelta(weeks=k) for k in range(3)]
    session_open = _session_open_utc(day)
    out: list[dict[str, Any]] = []
    for minute in range(30, 391, 30):
        ts = session_open + timedelta(minutes=minute)
        spot = bars[min(minute, 390) - 1]["close"]
        for expiry in expiries:
            expires_at = datetime.combine(expiry, time(16, 0), NEW_YORK)
            years = max((expires_at - ts).total_seconds() / (365 * 86_400), 1e-4)
            moneyness = np.log(strikes / spot)
            iv = profile.base_iv * (1 + 6 * moneyness**2) - 0.1 * moneyness + rng.normal(0, 0.002, len(strikes))
            sqrt_t = math.sqrt(years)
            d1 = (np.log(spot / strikes) + (rate + iv**2 / 2) * years) / (iv * sqrt_t)
            d2 = d1 - iv * sqrt_t
            disc = math.exp(-rate * years)
            pdf1 = _norm_pdf(d1)
            gamma = pdf1 / (spot * iv * sqrt_t)
            vega = spot * pdf1 * sqrt_t / 100  # per volatility point
            decay = -spot * pdf1 * iv / (2 * sqrt_t)
            open_interest = np.rint(rng.lognormal(7, 1.2, (2, len(strikes)))).astype(np.int64)
            for side, right in enumerate(("C", "P")):
                if right == "C":
                    delta = _norm_cdf(d1)
                    theta = (decay - rate * strikes * disc * _norm_cdf(d2)) / 365
                    rho = strikes * years * disc * _norm_cdf(d2) / 100
                    mark = spot * _norm_cdf(d1) - strikes * disc * _norm_cdf(d2)
                else:
                    delta = _norm_cdf(d1) - 1
                    theta = (decay + rate * strikes * disc * _norm_cdf(-d2)) / 365
                    rho = -strikes * years * disc * _norm_cdf(-d2) / 100
                    mark = strikes * disc * _norm_cdf(-d2) - spot * _norm_cdf(-d1)
                for j, strike in enumerate(strikes):
                    out.append(
                        {
                            "ts": _iso(ts),
                            "underlying": symbol,
                            "expiry": expiry.isoformat(),
                            "strike": float(strike),
                            "right": right,
                            "iv": round(float(iv[j]), 4),
                            "delta": round(float(delta[j]), 4),
                            "gamma": round(float(gamma[j]), 5),
                            "theta": round(float(theta[j]), 4),
                            "vega": round(float(vega[j]), 4),
                            "rho": round(float(rho[j]), 4),
                            "underlying_price": spot,
                            "mark": round(max(float(mark[j]), 0.01), 2),
                            "open_interest": int(open_interest[side, j]),
                            "option_symbol": f"{symbol}{expiry:%y%m%d}{right}{int(round(strike * 1000)):08d}",
                        }
                    )
    return out


def _headlines(symbol: str, day: date, seed: int, peers: list[str]) -> list[dict[str, Any]]:
    rng = _rng(seed, symbol, day, 3)
    count = int(rng.poisson(4 if day.weekday() < 5 else 1))
    seconds = np.sort(rng.integers(0, 86_400, count))
    day_start = datetime.combine(day, time(0), timezone.utc)
    name = instrument(symbol).description or symbol
    out = []
    for i, second in enumerate(seconds):
        template, tone = _HEADLINE_TEMPLATES[int(rng.integers(len(_HEADLINE_TEMPLATES)))]
        others = [p for p in peers if p != symbol]
        symbols = [symbol] + ([others[int(rng.integers(len(others)))]] if others and rng.random() < 0.25 else [])
        record: dict[str, Any] = {
            "ts": _iso(day_start + timedelta(seconds=int(second))),
            "symbols": symbols,
            "headline": template.format(name=name),
            "source": _HEADLINE_SOURCES[int(rng.integers(len(_HEADLINE_SOURCES)))],
            "id": f"{symbol}-{day:%Y%m%d}-{i:03d}",
            "url": f"https://news.example.com/{symbol.lower()}/{day:%Y%m%d}/{i:03d}",
        }
        if rng.random() < 0.8:  # vendors leave sentiment out when they have not scored a story
            record["sentiment"] = round(float(np.clip(tone + rng.normal(0, 0.2), -1, 1)), 2)
        out.append(record)
    return out
