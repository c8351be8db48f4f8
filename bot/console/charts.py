"""Charts for the supervisor page, drawn on the server as inline SVG (no script, nothing fetched from elsewhere).

Every chart has a ``<title>`` and an ``aria-label`` and prints its numbers next to the bars, so that it reads
without colours and survives a screen reader.
"""

from __future__ import annotations

from markupsafe import Markup, escape

BAR = 22  # height of one horizontal bar, px
GAP = 8


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}".replace(".", ",")


def columns(items: list[tuple[str, float]], title: str, width: int = 640, height: int = 220,
            unit: str = "") -> Markup:
    """Vertical bars, one per item (days, rating values, time buckets), value above each bar."""
    top, bottom, left = 20, 36, 8
    inner_w, inner_h = width - 2 * left, height - top - bottom
    peak = max((v for _, v in items), default=0) or 1
    step = inner_w / max(len(items), 1)
    bar_w = max(step * 0.7, 2)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<line class="chart__axis" x1="{left}" y1="{top + inner_h}" x2="{width - left}" y2="{top + inner_h}"/>']
    label_every = max(1, round(len(items) / 16))  # at most about 16 labels under the axis
    for i, (label, value) in enumerate(items):
        h = inner_h * value / peak
        x = left + i * step + (step - bar_w) / 2
        y = top + inner_h - h
        parts.append(f'<rect class="chart__bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                     f"<title>{escape(label)}: {_fmt(value)}{escape(unit)}</title></rect>")
        if value:
            parts.append(f'<text class="chart__value" x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" '
                         f'text-anchor="middle">{_fmt(value)}</text>')
        if i % label_every == 0:
            parts.append(f'<text class="chart__label" x="{x + bar_w / 2:.1f}" y="{top + inner_h + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def rows(items: list[tuple[str, float]], title: str, width: int = 640, label_width: int = 260,
         unit: str = "") -> Markup:
    """Horizontal bars with their labels on the left (top subjects)."""
    height = max(len(items), 1) * (BAR + GAP) + GAP
    peak = max((v for _, v in items), default=0) or 1
    inner = width - label_width - 60
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(items):
        y = GAP + i * (BAR + GAP)
        w = inner * value / peak
        short = label if len(label) <= 38 else label[:37] + "…"
        parts.append(f'<text class="chart__label" x="{label_width - 8}" y="{y + BAR * 0.7:.1f}" '
                     f'text-anchor="end">{escape(short)}<title>{escape(label)}</title></text>')
        parts.append(f'<rect class="chart__bar" x="{label_width}" y="{y}" width="{w:.1f}" height="{BAR}"/>')
        parts.append(f'<text class="chart__value" x="{label_width + w + 6:.1f}" y="{y + BAR * 0.7:.1f}">'
                     f"{_fmt(value)}{escape(unit)}</text>")
    if not items:
        parts.append(f'<text class="chart__label" x="{width / 2}" y="{height / 2 + 4}" text-anchor="middle">'
                     "Chưa có dữ liệu</text>")
    parts.append("</svg>")
    return Markup("".join(parts))
