"""Half-block images (cltui.halfblock): two pixels per cell, the right colours, fitted to the space given,
and no Textual or torch behind them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.segment import Segment

from cltui.halfblock import UPPER_HALF, HalfBlockImage


def cells(renderable: HalfBlockImage, width: int = 80) -> list[list[tuple[str, tuple | None, tuple | None]]]:
    """The rendered lines as (character, foreground RGB, background RGB) per cell."""
    console = Console(width=width, color_system="truecolor", force_terminal=True, legacy_windows=False)
    lines: list[list[tuple[str, tuple | None, tuple | None]]] = [[]]
    for segment in console.render(renderable):
        if segment.text == "\n":
            lines.append([])
            continue
        style = segment.style
        fg = style.color.get_truecolor() if style and style.color else None
        bg = style.bgcolor.get_truecolor() if style and style.bgcolor else None
        lines[-1] += [(ch, tuple(fg) if fg else None, tuple(bg) if bg else None) for ch in segment.text]
    return [line for line in lines if line]


def test_each_cell_shows_the_top_pixel_over_the_bottom_one():
    image = Image.new("RGB", (2, 2))
    image.putdata([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)])
    assert cells(HalfBlockImage(image), width=2) == [
        [(UPPER_HALF, (255, 0, 0), (0, 0, 255)), (UPPER_HALF, (0, 255, 0), (255, 255, 255))]
    ]


def test_greyscale_images_and_odd_heights():
    image = Image.new("L", (1, 3))
    image.putdata([10, 20, 30])
    # The third pixel row has no partner: its cell's lower half is left to the terminal's background.
    assert cells(HalfBlockImage(image, max_width=1)) == [
        [(UPPER_HALF, (10, 10, 10), (20, 20, 20))],
        [(UPPER_HALF, (30, 30, 30), None)],
    ]


def test_small_images_grow_by_whole_factors_and_large_ones_shrink_to_fit(tmp_path: Path):
    digit = Image.new("L", (8, 8), 128)
    path = tmp_path / "digit.png"
    digit.save(path)
    # 8 px in 20 columns: enlarged 2x (not 2.5x: every pixel stays a square of whole cells).
    lines = cells(HalfBlockImage(path), width=20)
    assert [len(line) for line in lines] == [16] * 8
    # Limited to 3 rows: 6 pixel rows, so 6 columns keep the aspect ratio.
    lines = cells(HalfBlockImage(digit, max_height_rows=3), width=20)
    assert [len(line) for line in lines] == [6] * 3
    wide = Image.new("RGB", (300, 100), (0, 128, 255))
    lines = cells(HalfBlockImage(wide, max_width=60))
    assert [len(line) for line in lines] == [60] * 10
    assert {fg for line in lines for _, fg, _ in line} == {(0, 128, 255)}


def test_runs_of_equal_cells_are_one_segment_and_the_fit_is_cached():
    image = Image.new("RGB", (40, 4), (9, 9, 9))
    picture = HalfBlockImage(image)  # enlarged 2x to the console's 80 columns
    segments = [s for s in Console(width=80, force_terminal=True).render(picture) if s != Segment.line()]
    assert len(segments) == 4 and all(s.text == UPPER_HALF * 80 for s in segments)  # 8 pixel rows
    assert picture.fitted(80) is picture.fitted(80)


def test_transparent_pixels_show_black():
    image = Image.new("RGBA", (1, 2), (255, 0, 0, 0))
    assert cells(HalfBlockImage(image), width=1) == [[(UPPER_HALF, (0, 0, 0), (0, 0, 0))]]


def test_it_needs_neither_textual_nor_torch():
    code = ("import sys, cltui.halfblock\n"
            "print(sorted(m for m in ('textual', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"
