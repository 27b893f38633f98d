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
