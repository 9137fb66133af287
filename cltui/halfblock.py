"""Images in a terminal without an image protocol: each character cell shows two pixels, the upper half
block '▀' in the top pixel's colour over a background in the bottom pixel's colour.

A Rich renderable, so both faces use it: `cltui dreams` prints it, the TUI's dreams screen puts it in a
widget. Needs only PIL and Rich (no Textual, no torch).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

UPPER_HALF = "▀"


class HalfBlockImage:
    """`HalfBlockImage(path_or_image, max_width=None, max_height_rows=None)`: the image scaled to fit
    `max_width` columns (or the console's width) and `max_height_rows` rows, keeping its aspect ratio.

    Small images (a 28x28 digit) are enlarged by a whole factor with nearest-neighbour sampling so their
    pixels stay crisp; large ones are reduced with a box filter, which averages instead of dropping pixels.
    """

    def __init__(self, image: str | Path | Image.Image, max_width: int | None = None,
                 max_height_rows: int | None = None) -> None:
        if isinstance(image, Image.Image):
            source = image
        else:
            with Image.open(image) as opened:
                source = opened.copy()
        # Greyscale, palette and alpha images all become RGB; transparent pixels show as black.
        if source.mode in ("RGBA", "LA") or (source.mode == "P" and "transparency" in source.info):
            background = Image.new("RGB", source.size)
            background.paste(source.convert("RGBA"), mask=source.convert("RGBA").getchannel("A"))
            source = background
        self.image = source.convert("RGB")
        self.max_width = max_width
        self.max_height_rows = max_height_rows
        self._fitted: tuple[tuple[int, int], Image.Image] | None = None

    def size_for(self, max_width: int, max_height_rows: int | None) -> tuple[int, int]:
        """(columns, pixel rows) the image takes within `max_width` columns and `max_height_rows` rows."""
        width, height = self.image.size
        if self.max_width is not None:
            max_width = min(max_width, self.max_width)
        rows = self.max_height_rows if max_height_rows is None else (
            max_height_rows if self.max_height_rows is None else min(max_height_rows, self.max_height_rows))
        scale = max_width / width
        if rows is not None:
            scale = min(scale, 2 * rows / height)
        if scale >= 1:
            scale = int(scale)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def fitted(self, max_width: int, max_height_rows: int | None = None) -> Image.Image:
        size = self.size_for(max_width, max_height_rows)
        if self._fitted is None or self._fitted[0] != size:
            enlarging = size[0] >= self.image.width
            resample = Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX
            self._fitted = (size, self.image if size == self.image.size else self.image.resize(size, resample))
        return self._fitted[1]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width, _ = self.size_for(options.max_width, options.height)
        return Measurement(width, width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        newline = Segment.line()
        for line in self.lines(options.max_width, options.height):
            yield from line
            yield newline

    def lines(self, max_width: int, max_height_rows: int | None = None) -> list[list[Segment]]:
        """The image fitted to `max_width` columns and `max_height_rows` rows, as one list of segments per row."""
        image = self.fitted(max_width, max_height_rows)
        width, height = image.size
        pixels = image.load()
        styles: dict[tuple, Style] = {}
        rows: list[list[Segment]] = []
        for y in range(0, height, 2):
            line: list[Segment] = []
            run_style, run = None, 0  # runs of equal cells become one segment: fewer to draw
            for x in range(width):
                top = pixels[x, y]
                bottom = pixels[x, y + 1] if y + 1 < height else None  # odd height: terminal background
                style = styles.get((top, bottom))
                if style is None:
                    style = styles[(top, bottom)] = Style(
                        color=Color.from_rgb(*top), bgcolor=None if bottom is None else Color.from_rgb(*bottom))
                if style is not run_style and run:
                    line.append(Segment(UPPER_HALF * run, run_style))
                    run = 0
                run_style, run = style, run + 1
            if run:
                line.append(Segment(UPPER_HALF * run, run_style))
            rows.append(line)
        return rows


def label_rows(labels: list[str], pixel_height: int) -> dict[int, str]:
    """Where each of `labels` (one per band of equal height, top to bottom: a grid's rows) goes in an image
    `pixel_height` pixels tall drawn with half blocks: {row of cells: label}, at the middle of its band; when two
    bands share a row of cells, the first keeps it."""
    rows: dict[int, str] = {}
    n = len(labels)
    if not n or pixel_height <= 0:
        return rows
    for i, label in enumerate(labels):
        middle = (i + 0.5) * pixel_height / n  # in pixels
        rows.setdefault(min((pixel_height - 1) // 2, int(middle // 2)), label)
    return rows


class LabelledImage:
    """A HalfBlockImage with a column of text labels at its left, one per band of rows (a dreams grid's class
    numbers beside its rows), readable where the grid's own pixel labels are a smudge."""

    def __init__(self, image: HalfBlockImage, labels: list[str], width: int, style: str = "bold") -> None:
        self.image, self.labels, self.width, self.style = image, labels, width, style

    @property
    def label_width(self) -> int:
        return max((len(label) for label in self.labels), default=0) + 1 if self.labels else 0

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        pad = self.label_width
        lines = self.image.lines(max(1, self.width - pad), None)
        pixel_height = self.image.fitted(max(1, self.width - pad), None).height
        where = label_rows(self.labels, pixel_height)
        style = console.get_style(self.style)
        newline = Segment.line()
        for r, line in enumerate(lines):
            if pad:
                yield Segment(where.get(r, "").rjust(pad - 1) + " ", style)
            yield from line
            yield newline
