"""Equity-curve plots for the Dagster UI: a PNG embedded in markdown metadata as a data URI.

The UI's markdown renderer (``MarkdownWithPlugins`` in dagster-webserver 1.13) sanitizes with
``rehype-sanitize`` extended to allow the ``data`` protocol for ``src``, and react-markdown 8 leaves
image URIs untransformed, so ``![equity](data:image/png;base64,...)`` renders inline.
"""


import base64
import io

import polars as pl

#: Points drawn per symbol; longer curves are thinned evenly (the last point is always kept).
MAX_POINTS = 1500


def thin(frame: pl.DataFrame, max_points: int = MAX_POINTS) -> pl.DataFrame:
    if frame.height <= max_points:
        return frame
    step = -(-frame.height // max_points)
    return pl.concat([frame.gather_every(step), frame.tail(1)]).unique("ts", keep="first", maintain_order=True)


def equity_png(curves: dict[str, pl.DataFrame], title: str) -> bytes:
    """One line per symbol: return on initial capital (%) over time. ``curves``: symbol -> ts, return_pct."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in daemon and run worker processes
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 3.2), dpi=80)
    axes = figure.subplots()
    for symbol, curve in sorted(curves.items()):
        curve = thin(curve)
        axes.plot(curve["ts"].dt.replace_time_zone(None).to_list(), curve["return_pct"].to_list(), linewidth=1.0, label=symbol)
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.set_ylabel("return on capital (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(True, linewidth=0.3)
    if curves:
        axes.legend(fontsize=8, loc="best")
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


#: The UI renders a markdown metadata value inline only when it is shorter than this (dagster-webserver
#: 1.13 ``MetadataEntry``: ``mdStr.length < 1000``); longer ones hide behind "[Show Markdown]".
INLINE_MARKDOWN_LIMIT = 1000
_COLORS = ("blue", "orange", "green", "red", "purple", "brown", "magenta")  # named: short, and said in the legend


def equity_sparkline_markdown(curves: dict[str, pl.DataFrame], width: int = 240, height: int = 60,
                              limit: int = INLINE_MARKDOWN_LIMIT) -> str:
    """The equity curves as a small inline SVG image (one line per symbol, a zero line), in fewer than
    ``limit`` characters so the UI shows it inline; points are thinned until it fits."""
    series = {s: c.sort("ts")["return_pct"].cast(pl.Float64).fill_nan(None).drop_nulls().to_list()
              for s, c in sorted(curves.items())}
    series = {s: v for s, v in series.items() if v}
    if not series:
        return "_no equity curve_"
    low = min(0.0, *(min(v) for v in series.values()))
    high = max(0.0, *(max(v) for v in series.values()))
    span = (high - low) or 1.0
    legend = ", ".join(f"{s} ({_COLORS[i % len(_COLORS)]}) {v[-1]:+.2f}%" for i, (s, v) in enumerate(series.items()))

    def y(value: float) -> int:
        return round((high - value) / span * (height - 2)) + 1

    def render(points: int) -> str:
        paths = []
        for i, values in enumerate(series.values()):
            step = max(1, -(-len(values) // points))
            picked = values[::step] + ([values[-1]] if (len(values) - 1) % step else [])
            dx = (width - 1) / max(1, len(picked) - 1)
            d = "L".join(f"{round(j * dx)},{y(v)}" for j, v in enumerate(picked))
            paths.append(f"%3Cpath d='M{d}' stroke='{_COLORS[i % len(_COLORS)]}' fill='none'/%3E")
        zero = f"%3Cpath d='M0,{y(0.0)}H{width}' stroke='grey' stroke-dasharray='2'/%3E"
        svg = (f"%3Csvg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'%3E{zero}"
               + "".join(paths) + "%3C/svg%3E")
        return f"![equity curve](data:image/svg+xml,{svg.replace(' ', '%20')})\n\nreturn on capital: {legend}"

    points = 60
    text = render(points)
    while len(text) >= limit and points > 2:
        points = max(2, int(points * 0.8))
        text = render(points)
    return text
