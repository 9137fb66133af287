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
        image = self.fitted(options.max_width, options.height)
        width, height = image.size
        pixels = image.load()
        styles: dict[tuple, Style] = {}
        newline = Segment.line()
        for y in range(0, height, 2):
            run_style, run = None, 0  # runs of equal cells become one segment: fewer to draw
            for x in range(width):
                top = pixels[x, y]
                bottom = pixels[x, y + 1] if y + 1 < height else None  # odd height: terminal background
                style = styles.get((top, bottom))
                if style is None:
                    style = styles[(top, bottom)] = Style(
                        color=Color.from_rgb(*top), bgcolor=None if bottom is None else Color.from_rgb(*bottom))
                if style is not run_style and run:
                    yield Segment(UPPER_HALF * run, run_style)
                    run = 0
                run_style, run = style, run + 1
            if run:
                yield Segment(UPPER_HALF * run, run_style)
            yield newline
