"""Charts as inline SVG, drawn on the server: no script and nothing fetched from elsewhere
(the console's CSP allows neither). Colours come from classes in console.css; every bar
has a <title> with its figure, and each chart a name for screen readers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape


def _nice_top(largest: int) -> int:
    """An axis maximum at or above `largest`: four gridline steps of 1, 2 or 5 times a
    power of ten, so every gridline falls on a whole, round figure."""
    wanted = max(largest, 1) / 4
    power: int = 10 ** max(math.floor(math.log10(wanted)), 0)
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= wanted)
    return 4 * step


def _svg(width: int, height: int, name: str, body: list[str]) -> Markup:
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(name)}" xmlns="http://www.w3.org/2000/svg">'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every value is escaped


def stacked_columns(
    name: str,
    buckets: Sequence[str],
    series: Sequence[tuple[str, str]],
    values: Mapping[str, Mapping[str, int]],
    bucket_word: str = "",
) -> Markup:
    """One column per bucket, stacked by series. `series` is (key, label) in drawing
    order; `values[bucket][key]` the counts."""
    width, height = 960, 280
    left, right, top, bottom = 44, 8, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values.get(b, {}).get(k, 0) for k, _ in series) for b in buckets]
    ceiling = _nice_top(max(totals, default=0))
    body: list[str] = []
    for tick in range(5):
        figure = ceiling * tick // 4
        y = top + plot_h - plot_h * figure / ceiling
        body.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        body.append(
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{figure}</text>'
        )
    slot = plot_w / max(len(buckets), 1)
    bar = max(slot * 0.7, 1)
    label_every = 1 if len(buckets) <= 24 else math.ceil(len(buckets) / 16)
    for i, bucket in enumerate(buckets):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for key, label in series:
            count = values.get(bucket, {}).get(key, 0)
            if not count:
                continue
            h = plot_h * count / ceiling
            y -= h
            tip = escape(f"{bucket}{bucket_word} {label}：{count}")
            body.append(
                f'<rect class="s-{escape(key)}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}"><title>{tip}</title></rect>'
            )
        if i % label_every == 0:
            shown = bucket[5:] if len(bucket) == 10 else bucket  # 2026-11-27 -> 11-27
            body.append(
                f'<text class="axis" x="{x + bar / 2:.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{escape(shown)}</text>'
            )
    body.append(
        f'<line class="axis-line" x1="{left}" x2="{width - right}" '
        f'y1="{top + plot_h}" y2="{top + plot_h}"/>'
    )
    return _svg(width, height, name, body)


def bars(name: str, rows: Sequence[tuple[str, str, int]]) -> Markup:
    """Horizontal bars: (key for the colour class, label, count) per row."""
    row_h, label_w, width = 30, 200, 480
    height = max(len(rows), 1) * row_h + 8
    largest = max((count for _, _, count in rows), default=0) or 1
    body: list[str] = []
    if not rows:
        body.append(f'<text class="axis" x="0" y="{row_h - 12}">无</text>')
    for i, (key, label, count) in enumerate(rows):
        y = 4 + i * row_h
        w = (width - label_w - 60) * count / largest
        body.append(
            f'<text class="label" x="{label_w - 8}" y="{y + 21}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        body.append(
            f'<rect class="s-{escape(key)}" x="{label_w}" y="{y + 4}" width="{w:.1f}" '
            f'height="{row_h - 10}"><title>{escape(label)}：{count}</title></rect>'
        )
        body.append(f'<text class="figure" x="{label_w + w + 8:.1f}" y="{y + 21}">{count}</text>')
    return _svg(width, height, name, body)


def share_bar(name: str, parts: Sequence[tuple[str, str, int]]) -> Markup:
    """One bar split by share: (key, label, count) per part, with a legend below."""
    width, bar_h = 480, 32
    total = sum(count for _, _, count in parts)
    body: list[str] = []
    x = 0.0
    for key, label, count in parts:
        if not total or not count:
            continue
        w = width * count / total
        tip = escape(f"{label}：{count}（{count / total:.0%}）")
        body.append(
            f'<rect class="s-{escape(key)}" x="{x:.1f}" y="0" width="{w:.1f}" height="{bar_h}">'
            f"<title>{tip}</title></rect>"
        )
        x += w
    if not total:
        body.append(f'<rect class="empty" x="0" y="0" width="{width}" height="{bar_h}"/>')
    legend_y = bar_h + 24
    lx = 0
    for key, label, count in parts:
        # Room for the swatch, the label (16 px a character) and the figure.
        needed = 20 + 16 * len(label) + 10 * (len(str(count)) + 1) + 18
        if lx and lx + needed > width:
            lx, legend_y = 0, legend_y + 24
        body.append(
            f'<rect class="s-{escape(key)}" x="{lx}" y="{legend_y - 12}" width="14" height="14"/>'
        )
        text = escape(f"{label} {count}")
        body.append(f'<text class="label" x="{lx + 20}" y="{legend_y}">{text}</text>')
        lx += needed
    return _svg(width, legend_y + 10, name, body)
