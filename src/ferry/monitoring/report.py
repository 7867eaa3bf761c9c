"""A drift report as one self-contained HTML page: a summary table and, per feature, bars of
the reference and live shares drawn as inline SVG (no scripts, fonts or files to fetch)."""

from __future__ import annotations

from html import escape

from ferry.monitoring.drift import DriftReport, FeatureDrift

BAR_AREA_WIDTH = 560
BAR_AREA_HEIGHT = 150
LEFT = 60  # room for the first rotated label and the scale
REFERENCE_COLOR = "#4c78a8"
LIVE_COLOR = "#f58518"

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 6px}
.meta{color:#555;margin-bottom:16px}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f4f4f4}
.drift{color:#b30000;font-weight:600}.ok{color:#1a7f37}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px}
.feature{display:inline-block;vertical-align:top;margin:0 24px 16px 0}
"""


def render_html(report: DriftReport) -> str:
    title = f"Drift report: {report.model or 'model'}" + (
        f" version {report.version}" if report.version is not None else ""
    )
    verdict = (
        f'<span class="drift">drift in {len(report.drifted_features)} of '
        f"{len(report.features)} features: {escape(', '.join(report.drifted_features))}</span>"
        if report.drifted
        else f'<span class="ok">no drift in {len(report.features)} features</span>'
    )
    window = ""
    if report.window_start is not None and report.window_end is not None:
        window = (
            f" · window {report.window_start.isoformat(timespec='seconds')} to "
            f"{report.window_end.isoformat(timespec='seconds')}"
        )
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="meta">{report.created_at.isoformat(timespec="seconds")} · '
        f"{report.live_rows} live rows against {report.reference_rows} reference rows"
        f"{escape(window)}</div>",
        f"<p>{verdict}</p>",
    ]
    if report.note:
        parts.append(f"<p>{escape(report.note)}</p>")
    parts.append(_summary_table(report))
    parts.append(
        '<p class="legend">shares of rows per bin:'
        f'<span style="background:{REFERENCE_COLOR}"></span>reference'
        f'<span style="background:{LIVE_COLOR}"></span>live</p>'
    )
    for feature in report.features:
        parts.append(_feature_section(feature))
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary_table(report: DriftReport) -> str:
    rows = [
        "<table><tr><th>feature</th><th>kind</th><th>live rows</th><th>missing ref → live</th>"
        "<th>tests (statistic / threshold)</th><th>drift</th></tr>"
    ]
    for f in report.features:
        tests = "; ".join(
            f"{'<b>' if t.drifted else ''}{name} {t.statistic:.3g}"
            + (f" (p={t.pvalue:.2g})" if t.pvalue is not None else "")
            + f" / {t.threshold:.3g}{'</b>' if t.drifted else ''}"
            for name, t in f.tests.items()
        )
        flag = '<span class="drift">yes</span>' if f.drifted else '<span class="ok">no</span>'
        rows.append(
            f"<tr><td>{escape(f.name)}</td><td>{f.kind}</td><td>{f.live_rows}</td>"
            f"<td>{f.missing_rate_reference:.1%} → {f.missing_rate_live:.1%}</td>"
            f"<td>{tests}</td><td>{flag}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _feature_section(feature: FeatureDrift) -> str:
    flag = ' <span class="drift">drift</span>' if feature.drifted else ""
    parts = [f'<div class="feature"><h2>{escape(feature.name)}{flag}</h2>']
    if feature.labels:
        parts.append(bars_svg(feature.labels, feature.reference_shares, feature.live_shares))
    if feature.unseen:
        parts.append(f"<p>unseen values: {escape(', '.join(feature.unseen))}</p>")
    if feature.note:
        parts.append(f"<p>{escape(feature.note)}</p>")
    parts.append("</div>")
    return "".join(parts)


def bars_svg(labels: list[str], reference: list[float], live: list[float]) -> str:
    """Paired bars per label, heights as shares of the tallest, labels under each pair."""
    count = max(len(labels), 1)
    top = max([*reference, *live, 1e-9])
    slot = BAR_AREA_WIDTH / count
    bar = max(slot * 0.38, 1.0)
    label_space = 46
    height = BAR_AREA_HEIGHT + label_space
    shapes = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_AREA_WIDTH + LEFT + 10}" '
        f'height="{height}" viewBox="0 0 {BAR_AREA_WIDTH + LEFT + 10} {height}" role="img">',
        f'<line x1="{LEFT}" y1="{BAR_AREA_HEIGHT}" x2="{BAR_AREA_WIDTH + LEFT}" '
        f'y2="{BAR_AREA_HEIGHT}" stroke="#888"/>',
        f'<text x="{LEFT - 4}" y="12" font-size="10" fill="#555" text-anchor="end">'
        f"{top:.0%}</text>",
    ]
    for i, label in enumerate(labels):
        x = LEFT + i * slot + slot * 0.1
        for offset, values, color in ((0.0, reference, REFERENCE_COLOR), (bar, live, LIVE_COLOR)):
            value = values[i] if i < len(values) else 0.0
            h = BAR_AREA_HEIGHT * value / top
            shapes.append(
                f'<rect x="{x + offset:.1f}" y="{BAR_AREA_HEIGHT - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{escape(label)}: {value:.1%}</title>'
                "</rect>"
            )
        cx = x + bar
        shapes.append(
            f'<text x="{cx:.1f}" y="{BAR_AREA_HEIGHT + 12}" font-size="9" fill="#333" '
            f'text-anchor="end" transform="rotate(-35 {cx:.1f} {BAR_AREA_HEIGHT + 12})">'
            f"{escape(label[:18])}</text>"
        )
    shapes.append("</svg>")
    return "".join(shapes)
