"""The Dreams screen: for each context that dreamed, the grid of dreamed images drawn with half blocks
(cltui/halfblock.py: no image protocol needed), how good the dreams are (the quality figures `cltui dreams`
prints, a generation run's class coverage and reverse accuracy included), and the latent map of real versus
dreamed features per class.

The images and latent maps are read by a thread worker. The grid opens fitted to its pane (width and height:
a context with 8 classes shows all 8 rows), each row's class number written beside it; `+` / `-` zoom it one
step of ZOOM_LEVELS at a time (… 12.5%, 25%, 50%, 100%, 200% …: from the fit to the next level above it, and
back; scrolled when larger than the pane; `-` goes down to the fit and no further), `0` fits it again,
PageDown / PageUp scroll it whatever has the focus.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static, Tab, Tabs

from cltui.halfblock import HalfBlockImage, LabelledImage
from cltui.tui.state.formats import section
from cltui.tui.widgets.charts import LatentMapChart
from cltui.tui.widgets.header import Header
from cltui.tui.workers import ReportsWorkerErrors
from core.runs.paths import StoreError
from core.runs.record import read_run_json

# The zoom steps, as drawn pixels per image pixel (one pixel per half cell at 1): halving or doubling each
# step, so a large grid fitted at 6% goes to 12.5%, 25%, 50%, 100%, never straight from 6% to 100%.
ZOOM_LEVELS: tuple[float, ...] = tuple(2.0 ** k for k in range(-6, 4))  # 1.5625% … 800%
MAX_ZOOM = ZOOM_LEVELS[-1]


@dataclass
class Dream:
    """One context's dreams as read from disk; `problem` says what could not be read."""

    context: int
    entry: dict[str, Any]
    image: Image.Image | None = None
    latent: dict[str, Any] | None = None
    problem: str | None = None


def read_dreams(run_dir: Path) -> tuple[list[Dream], str | None]:
    try:
        record = read_run_json(run_dir)
    except StoreError as e:
        return [], str(e)
    entries = record.get("dreams") if isinstance(record.get("dreams"), list) else []
    dreams = []
    for n, entry in enumerate(e for e in entries if isinstance(e, dict)):
        context = entry.get("context") if isinstance(entry.get("context"), int) else n
        dream = Dream(context, entry)
        if entry.get("path"):
            try:
                with Image.open(run_dir / str(entry["path"])) as image:
                    dream.image = image.copy()
            except (OSError, ValueError) as e:
                dream.problem = f"{entry['path']}: cannot be read ({type(e).__name__})"
        else:
            dream.problem = "no grid image saved for this context"
        if entry.get("latent"):
            try:
                dream.latent = json.loads((run_dir / str(entry["latent"])).read_text())
            except (OSError, ValueError):
                dream.latent = None
        dreams.append(dream)
    return dreams, None


def row_labels(dream: Dream) -> list[str]:
    """The class number of each row of the grid (one row per class): the entry's classes."""
    classes = dream.entry.get("classes")
    if not isinstance(classes, list) or dream.image is None:
        return []
    return [str(c) for c in classes]


def pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "–"


def num(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "–"


def quality_table(entry: dict[str, Any]) -> Table:
    """The quality figures the run recorded (core/training/dreams.py computes them, core/training/generation.py
    adds a generation run's reverse accuracy; `cltui dreams` prints the same): agreement with the model that
    dreamed them, accuracy of a verifier trained on real data (on the dreams and on real images), distances
    between dreamed and real features, the share of classes the teacher sees among the dreams, and for a
    generation run the accuracy of a classifier trained on its samples alone. Seven rows at most: the pane's
    height at 80x24 (the number of images is in the grid's title)."""
    q = section(entry, "quality")
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(style="dim", ratio=1)
    table.add_column(justify="right", style="bold")
    table.add_row("teacher agreement", pct(q.get("teacher_agreement")))
    dreams, real = pct(q.get("verifier_accuracy")), pct(q.get("verifier_real_accuracy"))
    table.add_row("verifier, dreams/real", f"{dreams.removesuffix('%')}/{real}")
    table.add_row("feature distance", num(q.get("feature_distance")))
    table.add_row("Fréchet distance", num(q.get("frechet_distance")))
    per_class = section(q, "feature_distance_per_class")
    if per_class:
        worst = max(per_class, key=lambda c: per_class[c] if isinstance(per_class[c], (int, float)) else -1)
        table.add_row("farthest class", f"{worst} ({num(per_class[worst])})")
    table.add_row("class coverage", pct(q.get("class_coverage")))
    if "reverse_accuracy" in q:  # a generation run's: a classifier trained on its samples alone, on real images
        table.add_row("reverse accuracy", pct(q.get("reverse_accuracy")))
    return table


class DreamGrid(Widget):
    """grid.png in half blocks, the class number of each row at its left: fitted to the pane (zoom 0: as large
    as fits its width and height; enlarged by whole factors only, so pixels stay square and crisp) or `zoom`
    drawn pixels per image pixel (one of ZOOM_LEVELS); the pane scrolls what does not fit."""

    DEFAULT_CSS = """
    DreamGrid { width: auto; height: auto; }
    """
    zoom: reactive[float] = reactive(0.0, layout=True)  # 0: fitted; else one of ZOOM_LEVELS

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.picture: HalfBlockImage | None = None
        self.problem: str | None = None
        self.labels: list[str] = []

    def show(self, image: Image.Image | None, problem: str | None, labels: list[str] | None = None) -> None:
        self.picture = HalfBlockImage(image) if image is not None else None
        self.problem = problem
        self.labels = list(labels or [])
        self.refresh(layout=True)

    @property
    def label_width(self) -> int:
        return max((len(label) for label in self.labels), default=0) + 1 if self.labels else 0

    def room(self, fallback: Size | None = None) -> Size:
        """Columns and rows of the pane the grid is fitted to."""
        parent = self.parent
        if isinstance(parent, Widget) and parent.size.area:
            return parent.scrollable_content_region.size
        return fallback or self.size

    def fit_scale(self, room: Size | None = None) -> float:
        """Image pixels to drawn pixels when fitted: the largest that fits the pane's width and height, a whole
        factor when enlarging; a picture a little too large (75% or more) is drawn at 1x and scrolled rather
        than blurred."""
        assert self.picture is not None
        room = room or self.room()
        w, h = self.picture.image.size
        scale = min(max(1, room.width - self.label_width) / w, max(1, 2 * room.height) / h)
        if 0.75 <= scale < 1:
            return 1.0
        return float(math.floor(scale)) if scale >= 1 else scale

    def pixels(self, room: Size | None = None) -> tuple[int, int]:
        """(columns, pixel rows) of the picture at the current zoom (without the labels' column)."""
        assert self.picture is not None
        w, h = self.picture.image.size
        scale = self.zoom or self.fit_scale(room)
        return max(1, round(w * scale)), max(1, round(h * scale))

    def scale(self) -> float:
        return self.pixels()[0] / self.picture.image.width if self.picture else 0.0

    def get_content_width(self, container: Size, viewport: Size) -> int:
        if self.picture is None:
            return container.width
        return max(container.width, self.label_width + self.pixels(self.room(container))[0])

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if self.picture is None:
            return 1
        return (self.pixels(self.room(container))[1] + 1) // 2

    def render(self) -> RenderResult:
        if self.picture is None:
            return Text(self.problem or "no image", style="dim")
        columns, rows = self.pixels()
        self.picture.max_width, self.picture.max_height_rows = columns, (rows + 1) // 2
        return LabelledImage(self.picture, self.labels, self.label_width + columns)


class DreamsScreen(ReportsWorkerErrors, Screen[None]):
    BINDINGS: ClassVar = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("left_square_bracket", "context(-1)", "Prev context", key_display="["),
        Binding("right_square_bracket", "context(1)", "Next context", key_display="]"),
        Binding("plus,equals_sign", "zoom(1)", "Zoom in", key_display="+"),
        Binding("minus", "zoom(-1)", "Zoom out", key_display="-"),
        Binding("0", "fit", "Fit"),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
    ]

    @dataclass
    class Loaded(Message):
        dreams: list[Dream] = field(default_factory=list)
        error: str | None = None

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.dreams: dict[str, Dream] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Tabs(id="contexts")
        yield Static(id="empty")
        with Vertical(id="body"):
            with ScrollableContainer(id="grid-pane"):
                yield DreamGrid(id="grid")
            with Horizontal(id="figures"):
                yield Static(id="quality")
                yield LatentMapChart(id="latent")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"dreams of {self.run_dir.name}"
        self.query_one("#body").display = False
        self.query_one("#empty", Static).update(Text("reading the dreams…", style="dim"))
        self.query_one("#quality").border_title = "quality"
        self.query_one("#grid-pane").border_title = "dreamed images"
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="dreams-load")
    def load(self) -> None:
        dreams, error = read_dreams(self.run_dir)
        self.post_message(self.Loaded(dreams, error))

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        empty = self.query_one("#empty", Static)
        if message.error or not message.dreams:
            empty.update(Text(message.error or "this run has no dreams (only the dreaming methods save them)",
                              style="red" if message.error else "dim"))
            return
        empty.display = False
        self.query_one("#body").display = True
        self.dreams = {f"context-{d.context}": d for d in message.dreams}
        tabs = self.query_one("#contexts", Tabs)
        short = len(message.dreams) > 5
        for d in message.dreams:
            tabs.add_tab(Tab(f"c{d.context}" if short else f"context {d.context}", id=f"context-{d.context}"))
        tabs.focus()

    @on(Tabs.TabActivated, "#contexts")
    def context_chosen(self, event: Tabs.TabActivated) -> None:
        dream = self.dreams.get(event.tab.id or "")
        if dream is None:
            return
        grid = self.query_one("#grid", DreamGrid)
        classes = dream.entry.get("classes") if isinstance(dream.entry.get("classes"), list) else []
        grid.show(dream.image, dream.problem, row_labels(dream))
        count = dream.entry.get("count")
        self.query_one("#grid-pane").border_title = (
            f"{f'{count} ' if isinstance(count, int) else ''}dreamed images · context {dream.context}"
            f"{' · classes ' + ','.join(map(str, classes)) if classes else ''}"
        )
        self.query_one("#quality", Static).update(quality_table(dream.entry))
        self.query_one("#latent", LatentMapChart).set_latent(dream.latent)
        self.call_after_refresh(self.update_zoom_label)

    def update_zoom_label(self) -> None:
        grid = self.query_one("#grid", DreamGrid)
        pane = self.query_one("#grid-pane")
        if grid.picture is None:
            pane.border_subtitle = ""
            return
        width, height = grid.picture.image.size
        shown = f"fit {100 * grid.scale():.0f}%" if grid.zoom == 0 else f"zoom {100 * grid.zoom:g}%"
        pane.border_subtitle = f"{width}×{height} px · {shown} · +/- zoom, 0 fit"

    def action_context(self, step: int) -> None:
        tabs = self.query_one("#contexts", Tabs)
        (tabs.action_next_tab if step > 0 else tabs.action_previous_tab)()

    def action_zoom(self, step: int) -> None:
        """One step of ZOOM_LEVELS: from the fitted size to the next level above it (a level within a fifth of
        the fit would look the same: it is skipped), or back down; `-` ends at the fit (the smallest: all of the
        grid in view) and does nothing there, `+` does nothing above the last level."""
        grid = self.query_one("#grid", DreamGrid)
        if grid.picture is None or (step < 0 and grid.zoom == 0):
            return
        fit = grid.fit_scale()
        scale = grid.zoom or fit
        if step > 0:
            above = [z for z in ZOOM_LEVELS if z > scale * 1.2]
            if not above:
                return
            grid.zoom = above[0]
        else:
            below = [z for z in ZOOM_LEVELS if z < scale * 0.99]
            grid.zoom = below[-1] if below and below[-1] > fit * 1.2 else 0.0
        self.call_after_refresh(self.update_zoom_label)

    def action_page(self, step: int) -> None:
        pane = self.query_one("#grid-pane", ScrollableContainer)
        (pane.scroll_page_down if step > 0 else pane.scroll_page_up)(animate=False)

    def action_fit(self) -> None:
        self.query_one("#grid", DreamGrid).zoom = 0.0
        self.call_after_refresh(self.update_zoom_label)
