"""Charts as inline SVG strings, drawn in Python so the site needs no plotting library in the browser.

Every label that comes from a user (model, hardware, scenario names) is HTML-escaped here. Points that
land on the same pixel are drawn once, which keeps the scatter of 10,000 runs a few hundred KB.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

import pandas as pd

WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 20, 50
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
OTHER = "#9e9e9e"
MAX_SERIES = len(PALETTE)


class Axis:
    """Maps data values to pixels on a linear or log scale and chooses readable ticks."""

    def __init__(self, low: float, high: float, start: float, end: float, log: bool) -> None:
        if log:
            low, high = math.log10(low), math.log10(high)
        if high <= low:
            pad = abs(low) * 0.1 or 1.0
            low, high = low - pad, high + pad
        self.low, self.high, self.start, self.end, self.log = low, high, start, end, log

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.start + (v - self.low) / (self.high - self.low) * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = math.floor(self.low), math.ceil(self.high)
            steps = (1, 2, 5) if last - first <= 3 else (1,)
            found = [m * 10**e for e in range(first, last + 1) for m in steps]
            return [t for t in found if self.low - 1e-9 <= math.log10(t) <= self.high + 1e-9]
        span = self.high - self.low
        raw = span / 5
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
        first = math.ceil(self.low / step) * step
        return [first + i * step for i in range(int((self.high - first) / step + 1e-9) + 1)]


def axis_for(values: Sequence[float], start: float, end: float, *, zero: bool = False) -> Axis:
    """A log axis when the positive values span more than a factor of 20, else linear (from 0 if asked)."""
    low, high = min(values), max(values)
    if low > 0 and high / low > 20 and not zero:
        return Axis(low / 1.3, high * 1.3, start, end, log=True)
    return Axis(0.0 if zero or low >= 0 else low, high * 1.08 if high > 0 else 1.0, start, end, log=False)


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.0e}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def _frame(title: str, body: str, caption: str) -> str:
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">{body}</svg><p class="chart-note">{escape(caption)}</p></figure>'
    )


def _empty(title: str, reason: str) -> str:
    return (
        f'<figure class="chart empty"><figcaption>{escape(title)}</figcaption>'
        f"<p>{escape(reason)}</p></figure>"
    )


def _axes(x: Axis, y: Axis, x_label: str, y_label: str, x_fmt: Callable[[float], str] = tick_label) -> str:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [
        f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>',
    ]
    for tick in x.ticks():
        px = x(tick)
        parts.append(f'<line class="grid" x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{bottom}"/>')
        parts.append(
            f'<text class="tick" x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{x_fmt(tick)}</text>'
        )
    for tick in y.ticks():
        py = y(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{tick_label(tick)}</text>'
        )
    parts.append(
        f'<text class="label" x="{(LEFT + right) / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    parts.append(
        f'<text class="label" transform="translate(16 {(TOP + bottom) / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    return "".join(parts)


def _legend(entries: Sequence[tuple[str, str]], dashed: Sequence[bool] = ()) -> str:
    parts = []
    x = WIDTH - RIGHT + 14
    for index, (label, color) in enumerate(entries):
        y = TOP + 8 + index * 18
        dash = ' stroke-dasharray="5 3"' if index < len(dashed) and dashed[index] else ""
        parts.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 16}" y2="{y}" stroke="{color}" stroke-width="3"{dash}/>'
            f'<text class="legend" x="{x + 22}" y="{y + 4}">{escape(_short(label, 24))}</text>'
        )
    return "".join(parts)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _series_colors(names: Sequence[str]) -> dict[str, str]:
    """The most frequent names get a palette colour; every other one is grey ("other")."""
    counts = pd.Series(list(names), dtype="object").value_counts(sort=True)
    return {name: PALETTE[index] for index, name in enumerate(counts.index[:MAX_SERIES])}


# --------------------------------------------------------------------------------------------------


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x and higher y), by x."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))
    front, best = [], -math.inf
    for index in order:
        if ys[index] > best:
            front.append(index)
            best = ys[index]
    return front


def pareto_chart(points: pd.DataFrame) -> str:
    """Output tok/s against TPOT p50 for every valid scenario, coloured by hardware class, with the front."""
    title = "Throughput vs latency: output tok/s against TPOT p50, Pareto front"
    if points.empty:
        return _empty(title, "no valid scenario with both TPOT and throughput is stored yet")
    xs = points["tpot_ms_p50"].astype(float).tolist()
    ys = points["output_throughput"].astype(float).tolist()
    x = axis_for(xs, LEFT, WIDTH - RIGHT)
    y = axis_for(ys, HEIGHT - BOTTOM, TOP)
    classes = points["hardware_class"].astype(str).tolist()
    colors = _series_colors(classes)
    drawn: set[tuple[int, int, str]] = set()
    dots = []
    labels = (points["model"].astype(str) + " · " + points["hardware_class"].astype(str)).tolist()
    scenario_names = points["scenario"].astype(str).tolist()
    for index in range(len(xs)):
        color = colors.get(classes[index], OTHER)
        px, py = x(xs[index]), y(ys[index])
        key = (round(px), round(py), color)
        if key in drawn:
            continue
        drawn.add(key)
        tip = f"{labels[index]} · {scenario_names[index]}: {ys[index]:,.1f} tok/s at {xs[index]:,.2f} ms"
        dots.append(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{color}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    front = pareto_front(xs, ys)
    path = " ".join(f"{x(xs[i]):.1f},{y(ys[i]):.1f}" for i in front)
    legend = [(name, color) for name, color in colors.items()]
    if len(set(classes)) > len(colors):
        legend.append(("other", OTHER))
    legend.append(("Pareto front", "#000000"))
    body = (
        _axes(x, y, "TPOT p50 (ms, lower is better)", "output tokens/s")
        + '<g class="points">'
        + "".join(dots)
        + "</g>"
        + f'<polyline class="front" points="{path}" fill="none" stroke="#000" stroke-width="1.5"/>'
        + "".join(
            f'<circle cx="{x(xs[i]):.1f}" cy="{y(ys[i]):.1f}" r="6" fill="none" stroke="#000" '
            'stroke-width="1.2"/>'
            for i in front
        )
        + _legend(legend)
    )
    caption = (
        f"{len(xs):,} scenarios ({len(dots):,} distinct positions drawn); the front joins the scenarios "
        f"that no other beats on both latency and throughput ({len(front)} of them)."
    )
    return _frame(title, body, caption)


def price_chart(class_prices: pd.DataFrame, limit: int = 20) -> str:
    """$ per 1M blended tokens per measured (hardware class, model), cheapest first."""
    title = "$ per 1M tokens (blended) by hardware class, measured runs"
    if class_prices.empty:
        return _empty(title, "no measured run could be priced (no hardware profile with a price)")
    shown = class_prices.head(limit)
    labels = [
        f"{row.hardware}{f' ×{row.gpu_count}' if row.gpu_count and row.gpu_count > 1 else ''} · {row.model}"
        for row in shown.itertuples(index=False)
    ]
    prices = shown["usd_per_1m_blended"].astype(float).tolist()
    height = TOP + BOTTOM + 22 * len(prices)
    label_width = 300
    right = WIDTH - 60
    axis = Axis(0.0, max(prices) * 1.1, label_width, right, log=False)
    parts = []
    for index, (label, price) in enumerate(zip(labels, prices, strict=True)):
        top = TOP + index * 22
        width = max(axis(price) - label_width, 1.0)
        parts.append(
            f'<text class="tick" x="{label_width - 8}" y="{top + 14}" text-anchor="end">'
            f"{escape(_short(label, 46))}"
            f"<title>{escape(label)}</title></text>"
            f'<rect x="{label_width}" y="{top + 3}" width="{width:.1f}" height="16" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: ${price:.4g} per 1M tokens</title></rect>"
            f'<text class="tick" x="{label_width + width + 4:.1f}" y="{top + 15}">${price:.3g}</text>'
        )
    bottom = TOP + 22 * len(prices)
    for tick in axis.ticks():
        px = axis(tick)
        parts.append(f'<line class="grid" x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{bottom}"/>')
        parts.append(
            f'<text class="tick" x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{tick_label(tick)}</text>"
        )
    parts.append(
        f'<text class="label" x="{(label_width + right) / 2}" y="{bottom + 36}" text-anchor="middle">'
        "$ per 1M tokens, input and output blended as pricing.toml weighs them</text>"
    )
    more = len(class_prices) - len(shown)
    caption = "Cheapest measured run per (model, hardware class, GPU count), from atomabench.economics." + (
        f" {more} more classes in leaderboard.json." if more > 0 else ""
    )
    svg = (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}">{"".join(parts)}</svg>'
        f'<p class="chart-note">{escape(caption)}</p></figure>'
    )
    return svg


def determinism_chart(frame: pd.DataFrame) -> str:
    """Share of exact matches against the batch-1 reference, per batch size, one line per backend."""
    title = "Determinism: exact-match share by batch size"
    if frame.empty:
        return _empty(title, "no determinism comparison is stored yet")
    sizes = sorted(int(size) for size in frame["batch_size"].unique())
    x = axis_for([float(s) for s in sizes], LEFT, WIDTH - RIGHT)
    if not x.log and len(sizes) > 1 and sizes[0] > 0 and sizes[-1] / sizes[0] > 4:
        x = Axis(sizes[0] / 1.3, sizes[-1] * 1.3, LEFT, WIDTH - RIGHT, log=True)
    y = Axis(0.0, 1.05, HEIGHT - BOTTOM, TOP, log=False)
    totals = frame.groupby("backend")["compared"].sum().sort_values(ascending=False)
    backends = list(totals.index[:MAX_SERIES])
    parts, legend = [], []
    for index, backend in enumerate(backends):
        color = PALETTE[index]
        group = frame[frame["backend"] == backend].sort_values("batch_size")
        coords = []
        for row in group.itertuples(index=False):
            share = row.exact / row.compared
            px, py = x(float(row.batch_size)), y(share)
            coords.append(f"{px:.1f},{py:.1f}")
            tip = f"{backend}, batch {row.batch_size}: {row.exact} of {row.compared} exact ({share:.1%})"
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{color}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        parts.insert(
            0, f'<polyline points="{" ".join(coords)}" fill="none" stroke="{color}" stroke-width="2"/>'
        )
        legend.append((str(backend), color))
    body = _axes(x, y, "batch size", "exact-match share") + "".join(parts) + _legend(legend)
    caption = (
        "Every stored comparison at that batch size (checks R, B, P and U) against the batch-1 reference "
        "of the same prompt; skipped comparisons left out."
    )
    return _frame(title, body, caption)


def forecast_chart(table: pd.DataFrame, threshold: float) -> str:
    """Block-space utilisation per chain and year (base scenario), log scale, with the saturation line."""
    title = "Block-space forecast: utilisation per chain per year (base scenario)"
    table = table[table["utilisation"] > 0]
    if table.empty:
        return _empty(title, "the forecast produced no utilisation")
    years = table["year"].astype(int).tolist()
    x = Axis(min(years), max(years), LEFT, WIDTH - RIGHT, log=False)
    values = [*table["utilisation"].astype(float).tolist(), threshold]
    y = Axis(min(values) / 2, max(values) * 2, HEIGHT - BOTTOM, TOP, log=True)
    parts, legend = [], []
    for index, (chain, group) in enumerate(table.groupby("chain", sort=False)):
        color = PALETTE[index % len(PALETTE)]
        coords = " ".join(
            f"{x(float(row.year)):.1f},{y(float(row.utilisation)):.1f}"
            for row in group.itertuples(index=False)
        )
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        for row in group.itertuples(index=False):
            tip = f"{chain} {row.year}: {row.utilisation:.3g} of capacity ({row.binding} binding)"
            parts.append(
                f'<circle cx="{x(float(row.year)):.1f}" cy="{y(float(row.utilisation)):.1f}" r="2.5" '
                f'fill="{color}"><title>{escape(tip)}</title></circle>'
            )
        legend.append((str(chain), color))
    py = y(threshold)
    parts.append(
        f'<line x1="{LEFT}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" stroke="#000" '
        'stroke-dasharray="5 3"/>'
    )
    legend.append((f"saturation ({threshold:g})", "#000000"))
    body = (
        _axes(x, y, "year", "share of block space used", x_fmt=lambda v: f"{v:.0f}")
        + "".join(parts)
        + _legend(legend, dashed=[False] * (len(legend) - 1) + [True])
    )
    caption = "A projection from the forecast parameters alone: no measured result enters it."
    return _frame(title, body, caption)
