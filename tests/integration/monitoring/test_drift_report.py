"""The HTML drift report, opened in a real headless Chromium; the screenshot is kept."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from ferry.monitoring.drift import compute_drift
from ferry.monitoring.profile import profile_frame
from ferry.monitoring.report import render_html
from tests.registry_fixtures import unavailable
from tests.unit.monitoring.test_drift import SHIFTED, iris_population, shift

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / ".artifacts"  # git-ignored; CI keeps it as the run's artifacts
WIDTH, HEIGHT = 1280, 1700


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("no chromium on PATH (make test installs it: apt-get install chromium)")
    raise AssertionError  # unreachable: unavailable() fails or skips


def png_size_and_colors(path: Path) -> tuple[int, int, set[tuple[int, int, int]]]:
    """Width, height and a sample of pixel colors of an 8-bit RGB(A) PNG, by hand."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert depth == 8
    assert color in (2, 6)
    chunks, at = b"", 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            chunks += data[at + 8 : at + 8 + length]
        at += 12 + length
    raw = zlib.decompress(chunks)
    channels = 3 if color == 2 else 4
    stride = width * channels
    colors: set[tuple[int, int, int]] = set()
    previous = bytearray(stride)
    row_at = 0
    for _ in range(height):
        kind, line = raw[row_at], bytearray(raw[row_at + 1 : row_at + 1 + stride])
        row_at += 1 + stride
        for i in range(stride):  # undo the PNG row filters (spec section 9)
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        for x in range(0, width, 7):
            colors.add(tuple(line[x * channels : x * channels + 3]))  # type: ignore[arg-type]
        previous = line
    return width, height, colors


def test_html_report_renders_in_chromium(tmp_path: Path) -> None:
    browser = chromium()
    profile = profile_frame(iris_population(1000, seed=1), source="test")
    report = compute_drift(profile, shift(iris_population(1000, seed=2), SHIFTED))
    report.model, report.version = "iris", 1
    html = render_html(report)
    assert "<script" not in html
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")
    assert html.count("<svg") == 4
    page = tmp_path / "drift.html"
    page.write_text(html)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "drift-report.png"
    screenshot.unlink(missing_ok=True)
    subprocess.run(  # noqa: S603 - a fixed command line
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={screenshot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(f"drift report screenshot: {screenshot}")
    width, height, colors = png_size_and_colors(screenshot)
    assert (width, height) == (WIDTH, HEIGHT)
    # the plotted bars are there: both series' colors appear among the pixels
    assert (0x4C, 0x78, 0xA8) in colors
    assert (0xF5, 0x85, 0x18) in colors
