"""The Compose screen: a preset, then scenario and method (only the methods valid for the scenario), the main
training fields and the method's parameters, validated as the user types through the same `build_config` and
RunConfig as `cltui run`; `ctrl+s` starts the run detached and opens its live screen; F2 saves a preset TOML.

Every field is typed in the text `--set KEY=VALUE` takes (TOML: 3e-4, [400, 400], true); an empty field keeps
the preset's value, which is what the field shows when the form opens. What a field knows about its config
value lives without Textual in cltui.tui.state.form; the last choice is kept by cltui.tui.state.choices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import DescendantFocus
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, Select, Static

from cltui.tui.screens.base import ReachesCltui
from cltui.tui.state.choices import last_choice, remember_choice
from cltui.tui.state.form import (
    DEFAULT_PRESET,
    SCENARIO_HELP,
    FieldSpec,
    data_fields,
    main_fields,
    method_fields,
    method_for,
    methods_for,
)
from cltui.tui.state.formats import section
from cltui.tui.widgets.header import Header
from core.runs.paths import StoreError
from core.runs.record import read_run_json
from core.runs.store import RunStore
from core.schema.config import SCENARIOS, ConfigError, RunConfig, flat_config
from core.schema.params import METHOD_PARAMS
from core.schema.presets import (
    build_config,
    list_presets,
    load_preset,
    preset_save_path,
    save_preset,
    toml_text,
    user_presets_dir,
)

# --- widgets -----------------------------------------------------------------------------------------


def label_cells(label: str) -> ComposeResult:
    """What starts every row of the form: the focus marker (shown on the focused row) and the label."""
    yield Static("▸", classes="marker", markup=False)
    yield Label(label, classes="name", markup=False)


class FieldRow(Vertical):
    """Label, control and short help on one line; the field's error on the line below, when it has one. The
    row's look, focus included, is ComposeScreen's CSS (shared with the preset, scenario and method rows)."""

    DEFAULT_CSS = """
    FieldRow { height: auto; }
    FieldRow > Horizontal { height: 1; }
    FieldRow Static.error { color: $error; padding-left: 23; display: none; }
    FieldRow.-invalid Static.error { display: block; }
    FieldRow.-invalid Label.name { color: $error; }
    """

    def __init__(self, spec: FieldSpec, text: str | None = None):
        super().__init__(classes="field-row")
        self.spec = spec
        self.text = spec.default_text if text is None else text

    def compose(self) -> ComposeResult:
        spec = self.spec
        with Horizontal():
            yield from label_cells(spec.label)
            if spec.choices is not None:
                options = [(c, c) for c in spec.choices]
                value = self.text if self.text in spec.choices else Select.NULL
                yield Select(options, value=value, allow_blank=spec.optional or value is Select.NULL,
                             prompt="default (none)", compact=True, id=spec.widget_id)
            else:
                yield Input(self.text, placeholder=spec.placeholder or spec.default_text or "none", compact=True,
                            id=spec.widget_id, select_on_focus=False)
            yield Static(spec.help, classes="help", markup=False)
        yield Static("", classes="error", markup=False)

    @property
    def control(self) -> Input | Select[str]:
        return self.query_one(f"#{self.spec.widget_id}")  # type: ignore[return-value]

    def value_text(self) -> str:
        control = self.control
        if isinstance(control, Select):
            return "" if control.value is Select.NULL else str(control.value)
        return control.value.strip()

    def show_error(self, message: str | None) -> None:
        self.set_class(message is not None, "-invalid")
        self.query_one("Static.error", Static).update(f"✗ {message}" if message else "")


def row_of(widget: Widget) -> FieldRow | None:
    return next((a for a in widget.ancestors_with_self if isinstance(a, FieldRow)), None)


def merge_source(runs_dir: Path, merge: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """What the form clones for a merge run: the form trains runs and `cltui merge` makes merges, so it starts
    from the merge's first teacher, whose preset, model and data the merge took; without that run in the runs
    folder, from the merge's preset and its model and data. And the line that says so, with the command that
    reruns the merge."""
    info = merge["merge"]
    teachers = [str(t["id"]) for t in info.get("teachers") or [] if isinstance(t, dict) and t.get("id")]
    command = " ".join(["cltui merge", *teachers, f"--approach {info.get('approach')}", f"--data {info.get('data')}"])
    note = f"{merge.get('id')} is a merge (`{command}` reruns it): "
    if teachers:
        try:
            teacher = read_run_json(RunStore(runs_dir).run_dir(teachers[0]))
        except StoreError:
            teacher = None
        if teacher is not None and section(section(teacher, "config"), "method").get("name") in METHOD_PARAMS:
            return teacher, note + f"this form trains a run like its teacher {teachers[0]}"
    config = section(merge, "config")
    alike = {**merge, "config": {**config, "method": {},  # the preset's method
                                 "train": {"seed": section(config, "train").get("seed", 0)},  # not the merge's steps
                                 "benchmark": {**section(config, "benchmark"), "learn_contexts": None}}}
    return alike, note + "this form trains a run of its preset, model and data"


class SavePresetScreen(ModalScreen[str | None]):
    """Asks for the new preset's name (saved in the presets folder) or a path ending in .toml."""

    DEFAULT_CSS = """
    SavePresetScreen { align: center middle; }
    SavePresetScreen > Vertical { width: 72; max-width: 95%; height: auto; border: thick $primary;
                                  background: $surface; padding: 1 2; }
    SavePresetScreen Input { margin: 1 0; }
    SavePresetScreen #save-error { color: $error; height: auto; }
    SavePresetScreen Horizontal { height: auto; align-horizontal: right; }
    SavePresetScreen Button { margin-left: 2; }
    """
    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, suggestion: str):
        super().__init__()
        self.suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Save as preset[/b]")
            yield Static(f"A name saves it in {user_presets_dir()}; a path ending in .toml saves it there.",
                         markup=False)
            yield Input(self.suggestion, id="preset-name")
            yield Static("", id="save-error", markup=False)
            with Horizontal():
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def save(self) -> None:
        text = self.query_one(Input).value.strip()
        if not text:
            self.query_one("#save-error", Static).update("give a name or a path")
            return
        self.dismiss(text)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ComposeScreen(ReachesCltui, Screen[None]):
    """Compose a run and start it."""

    TITLE = "New run"
    BINDINGS: ClassVar = [
        Binding("ctrl+s", "start", "Start", priority=True),
        Binding("f2", "save_preset", "Save preset"),
        Binding("escape", "back", "Back"),
    ]
    # Every row: the focus marker (2 cells), the label (21: the longest, "generator iterations", and a gap),
    # the control (24), the help; so the values line up in one column 23 cells in, at 80 columns too. The
    # focused row is lit, shows its marker, its label in the accent colour and its control tinted with it (a
    # row's own :focus-within rule is what makes Textual restyle the marker and label when the focus moves).
    DEFAULT_CSS = """
    ComposeScreen #form { padding: 0 1; }
    ComposeScreen .section { color: $accent; text-style: bold; margin-top: 1; }
    ComposeScreen #preset-description { color: $text-muted; padding-left: 23; height: auto; }
    ComposeScreen #field-help { height: auto; max-height: 3; padding: 0 1; background: $boost;
                                color: $text-muted; }
    ComposeScreen #verdict { height: auto; padding: 0 1; }
    ComposeScreen #verdict.-ok { color: $success; }
    ComposeScreen #verdict.-error { color: $error; }
    ComposeScreen #actions { height: 1; padding: 0 1; }
    ComposeScreen #actions Button { margin-right: 2; }
    ComposeScreen #data-fields { height: auto; }
    ComposeScreen #method-fields { height: auto; }
    ComposeScreen .top-row { height: 1; }
    ComposeScreen .marker { width: 2; color: $accent; text-style: bold; visibility: hidden; }
    ComposeScreen Label.name { width: 21; padding-right: 1; color: $text-muted; text-wrap: nowrap;
                               text-overflow: ellipsis; }
    ComposeScreen .field-row Input, ComposeScreen .field-row Select, ComposeScreen .top-row Select { width: 24; }
    ComposeScreen .help { width: 1fr; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis;
                          padding-left: 1; }
    ComposeScreen .field-row:focus-within, ComposeScreen .top-row:focus-within { background: $boost; }
    ComposeScreen .field-row:focus-within .marker, ComposeScreen .top-row:focus-within .marker {
        visibility: visible;
    }
    ComposeScreen .field-row:focus-within Label.name, ComposeScreen .top-row:focus-within Label.name {
        color: $accent; text-style: bold;
    }
    ComposeScreen Input:focus, ComposeScreen Select:focus > SelectCurrent { background-tint: $accent 25%; }
    """

    def __init__(self, runs_dir: Path, preset: str | None = None, clone: dict[str, Any] | None = None):
        """`clone`: a run.json whose run the form starts from (the detail screen's `e`); without it and
        without `preset`, the form starts from the preset, scenario and method last started here."""
        super().__init__()
        self.runs_dir = runs_dir
        self.note = ""  # why the form holds another config than the cloned run's (a merge's)
        if clone is not None and isinstance(clone.get("merge"), dict):
            clone, self.note = merge_source(runs_dir, clone)
        presets = list_presets()
        self.presets = presets
        last = last_choice(runs_dir) if clone is None and preset is None else {}
        base = section(clone, "config") if clone is not None else {}
        wanted = (clone.get("preset") or base.get("preset")) if clone is not None else preset or last.get("preset")
        self.preset = wanted if wanted in presets else DEFAULT_PRESET if DEFAULT_PRESET in presets \
            else (presets[0] if presets else DEFAULT_PRESET)
        self.table = self._load(self.preset)
        if self.preset != wanted:
            last = {}
        self.scenario = str(base.get("scenario") or last.get("scenario") or self.table.get("scenario", "class"))
        if self.scenario not in SCENARIOS:
            self.scenario = str(self.table.get("scenario", "class"))
        given = section(base, "method").get("name") or last.get("method")
        if given not in METHOD_PARAMS:  # none given, or one the form cannot start: the preset's
            given = self.table.get("method", {}).get("name", "none")
        self.method = self._method_for(str(given))
        self.edited: dict[str, str] = {}  # method parameters the user typed, kept across scenario changes
        self.carried: list[str] = []  # a clone's settings the form has no field for, as --set items
        self.origin = str(clone.get("id", "")) if clone is not None else ""
        if clone is not None and self.preset == wanted:
            self._start_from(base)
        elif clone is not None:
            self.origin = self.note = ""
        self.config: RunConfig | None = None
        self.opened: tuple[Any, ...] = ()  # the form as it opened (on_mount)

    def _start_from(self, base: dict[str, Any]) -> None:
        """The form's fields take the cloned run's values; what the form has no field for is carried as --set
        items, so the new run has the old one's config whatever the preset says now."""
        self.table = {**self.table, "train": {**self.table.get("train", {}), **section(base, "train")},
                      "benchmark": {**self.table.get("benchmark", {}), **section(base, "benchmark")}}
        params = {k: v for k, v in section(base, "method").items() if k != "name"}
        for spec in method_fields(self.table, self.method, self.scenario):
            name = spec.key.removeprefix("method.")
            if name in params and toml_text(params[name]) != spec.default_text:
                self.edited[spec.key] = toml_text(params[name])
        try:
            given = build_config(self.preset, method=self.method, scenario=self.scenario).to_dict()
        except ConfigError:
            return
        on_form = {spec.key for spec in [*main_fields(self.table)]} | {"benchmark.data_dir", "benchmark.download"}
        preset_values = flat_config(given)
        for key, value in flat_config(base).items():
            if (key.split(".")[0] in ("train", "benchmark", "model") and key not in on_form
                    and key in preset_values and value != preset_values[key] and value is not None):
                self.carried.append(f"{key}={toml_text(value)}")

    @staticmethod
    def _load(preset: str) -> dict[str, Any]:
        try:
            return load_preset(preset)
        except ConfigError:
            return {}

    def _method_for(self, wanted: str) -> str:
        return method_for(self.scenario, wanted)

    # --- layout ------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="form"):
            with Horizontal(classes="top-row"):
                yield from label_cells("preset")
                yield Select([(p, p) for p in self.presets], compact=True, id="field-preset",
                             value=self.preset if self.preset in self.presets else Select.NULL,
                             allow_blank=self.preset not in self.presets, prompt="no presets found")
            yield Static(self.table.get("description", ""), id="preset-description", markup=False)
            with Horizontal(classes="top-row"):
                yield from label_cells("scenario")
                yield Select([(s, s) for s in SCENARIOS], value=self.scenario, allow_blank=False, compact=True,
                             id="field-scenario")
                yield Static(SCENARIO_HELP.get(self.scenario, ""), id="scenario-help", classes="help",
                             markup=False)
            with Horizontal(classes="top-row"):
                yield from label_cells("method")
                yield Select(self._method_options(), value=self.method, allow_blank=False, compact=True,
                             id="field-method")
                yield Static(METHOD_PARAMS[self.method].summary, id="method-summary", classes="help", markup=False)
            yield Label("Training", classes="section")
            for spec in main_fields(self.table):
                yield FieldRow(spec)
            yield Vertical(*self._data_rows(), id="data-fields")
            yield Label(self._method_title(), classes="section", id="method-title")
            yield Vertical(*self._method_rows(), id="method-fields")
        yield Static("", id="field-help", markup=False)
        if self.carried or self.origin or self.note:
            yield Static(self._carried_text(), id="carried", markup=False)
        yield Static("", id="verdict", markup=False)
        with Horizontal(id="actions"):
            yield Button("Start  ^s", variant="success", compact=True, id="start")
            yield Button("Save as preset  F2", compact=True, id="save-preset")
        yield Footer()

    def _carried_text(self) -> str:
        kept = f": also {' '.join(self.carried)}" if self.carried else ""
        start = self.note or (f"cloned from {self.origin}" if self.origin else "")
        return f"{start}{kept}" if start else ""

    def _method_options(self) -> list[tuple[str, str]]:
        return [(m, m) for m in methods_for(self.scenario)]

    def _method_title(self) -> str:
        return f"Method · {self.method}" + ("" if METHOD_PARAMS[self.method].model_fields.keys() - {"name"}
                                             else " (no parameters)")

    def _method_rows(self) -> list[FieldRow]:
        return [FieldRow(spec, self.edited.get(spec.key)) for spec in method_fields(self.table, self.method,
                                                                                     self.scenario)]

    def _data_rows(self) -> list[FieldRow]:
        return [FieldRow(spec) for spec in data_fields(self.table)]

    def on_mount(self) -> None:
        self.sub_title = str(self.runs_dir)
        self.validate_form()
        self.query_one("#field-preset").focus()
        self.opened = self.form_state()  # escape leaves at once while the form still holds this

    # --- reacting to the form ----------------------------------------------------------------------

    @on(Select.Changed, "#field-preset")
    async def preset_changed(self, event: Select.Changed) -> None:
        if event.value is Select.NULL or event.value == self.preset:
            return
        self.preset = str(event.value)
        self.table = self._load(self.preset)
        self.edited.clear()
        if self.carried or self.origin or self.note:  # another preset: the clone's settings no longer apply
            self.carried, self.origin, self.note = [], "", ""
            self.query_one("#carried", Static).update("")
        self.scenario = str(self.table.get("scenario", "class"))
        self.method = self._method_for(self.table.get("method", {}).get("name", "none"))
        self.query_one("#preset-description", Static).update(self.table.get("description", ""))
        self.query_one("#scenario-help", Static).update(SCENARIO_HELP.get(self.scenario, ""))
        with self.prevent(Select.Changed):
            self.query_one("#field-scenario", Select).value = self.scenario
            self._refresh_method_select()
        for spec in main_fields(self.table):
            self.query_one(f"#{spec.widget_id}", Input).value = spec.default_text
        data = self.query_one("#data-fields", Vertical)
        await data.remove_children()
        await data.mount_all(self._data_rows())
        await self._rebuild_method_rows()

    @on(Select.Changed, "#field-scenario")
    async def scenario_changed(self, event: Select.Changed) -> None:
        if event.value is Select.NULL or event.value == self.scenario:
            return
        self.scenario = str(event.value)
        self.query_one("#scenario-help", Static).update(SCENARIO_HELP.get(self.scenario, ""))
        method = self._method_for(self.method)
        if method != self.method:
            self.notify(f"{self.method} works in {'/'.join(METHOD_PARAMS[self.method].scenarios)}-IL only: "
                        f"method set to {method}", severity="warning")
            self.method = method
        with self.prevent(Select.Changed):
            self._refresh_method_select()
        await self._rebuild_method_rows()  # per-scenario defaults change with the scenario

    @on(Select.Changed, "#field-method")
    async def method_changed(self, event: Select.Changed) -> None:
        if event.value is Select.NULL or event.value == self.method:
            return
        self.method = str(event.value)
        await self._rebuild_method_rows()

    def _refresh_method_select(self) -> None:
        select = self.query_one("#field-method", Select)
        select.set_options(self._method_options())
        select.value = self.method
        self.query_one("#method-summary", Static).update(METHOD_PARAMS[self.method].summary)

    async def _rebuild_method_rows(self) -> None:
        self.query_one("#method-summary", Static).update(METHOD_PARAMS[self.method].summary)
        self.query_one("#method-title", Label).update(self._method_title())
        box = self.query_one("#method-fields", Vertical)
        await box.remove_children()
        await box.mount_all(self._method_rows())
        self.validate_form()
        self.show_help(self.focused)

    @on(Input.Changed)
    @on(Select.Changed)
    def field_changed(self, event: Input.Changed | Select.Changed) -> None:
        row = row_of(event.control)
        if row is not None and row.spec.key.startswith("method."):
            text = row.value_text()
            if text != row.spec.default_text:
                self.edited[row.spec.key] = text
            else:
                self.edited.pop(row.spec.key, None)
        self.validate_form()

    @on(Input.Submitted)
    def next_field(self) -> None:
        self.focus_next()  # enter moves down the form, as in any form; ctrl+s starts

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        self.show_help(event.widget)

    def show_help(self, widget: Widget | None) -> None:
        """The help line under the form: what the focused field is (again when the preset, scenario or method
        it describes changed)."""
        if widget is None:
            return
        row = row_of(widget)
        help_line = self.query_one("#field-help", Static)
        if row is None:
            select = next((a for a in widget.ancestors_with_self if isinstance(a, Select)), widget)
            help_line.update({
                "field-preset": (f"Presets: the built-in ones and yours in {user_presets_dir()}; "
                                 "F2 saves this form as a new one."),
                "field-scenario": SCENARIO_HELP.get(self.scenario, ""),
                "field-method": METHOD_PARAMS[self.method].__doc__ or "",
            }.get(select.id or "", ""))
            return
        spec = row.spec
        default = spec.default_text or "none"
        help_line.update(f"{spec.key}: {spec.help} (preset default: {default})")

    # --- validation ----------------------------------------------------------------------------------

    def rows(self) -> list[FieldRow]:
        return list(self.query(FieldRow))

    def validate_form(self) -> RunConfig | None:
        """Check every field, then the whole config through build_config; show the errors inline. The
        config when it is valid."""
        rows = self.rows()
        field_errors = {row.spec.key: row.spec.check(row.value_text()) for row in rows}
        overrides = [*self.carried, *(f"{row.spec.key}={row.value_text()}" for row in rows
                                      if row.value_text() and not field_errors[row.spec.key])]
        general: str | None = None
        config: RunConfig | None = None
        if not any(field_errors.values()):
            try:
                config = build_config(self.preset, method=self.method, scenario=self.scenario, overrides=overrides)
            except ConfigError as e:
                if e.field in field_errors:
                    field_errors[e.field] = e.detail
                else:
                    general = str(e)
            if config is not None:
                from core.engine.datafiles import data_problem, pretrained_problem

                problem = data_problem(config.benchmark, fix_missing="set download to true, or a data dir that "
                                       "holds it") or pretrained_problem(config)
                if problem is not None:
                    if problem.field in field_errors:
                        field_errors[problem.field] = problem.detail
                    else:
                        general = str(problem)
                    config = None
        for row in rows:
            row.show_error(field_errors[row.spec.key])
        verdict = self.query_one("#verdict", Static)
        bad = [key for key, message in field_errors.items() if message]
        if config is not None:
            b, t = config.benchmark, config.train
            verdict.update(f"✓ ready: {b.name} {b.protocol} · {b.contexts} contexts × {t.iterations} it · "
                           f"{config.scenario}-IL · {config.method.name} · seed {t.seed} · {t.device}")
        elif bad:
            verdict.update(f"✗ fix {', '.join(bad)} before starting")
        else:
            verdict.update(f"✗ {general}")
        verdict.set_class(config is not None, "-ok")
        verdict.set_class(config is None, "-error")
        self.config = config
        return config

    # --- actions -----------------------------------------------------------------------------------

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        config = self.validate_form()
        if config is None:
            bad = next((row for row in self.rows() if row.has_class("-invalid")), None)
            if bad is not None:
                bad.control.focus()
                bad.scroll_visible()
            self.notify("the run was not started: fix the marked fields first", severity="error")
            return
        from core.launch.worker import start_detached

        try:
            handle = start_detached(config, RunStore(self.runs_dir).new_run_dir_for(config))
        except (OSError, StoreError) as e:
            self.notify(f"could not start the run in {self.runs_dir}: {e}", severity="error")
            return
        self.cltui.launched[handle.run_id] = handle
        remember_choice(self.runs_dir, {"preset": self.preset, "scenario": self.scenario, "method": self.method})
        from cltui.tui.screens.live import LiveScreen

        self.app.switch_screen(LiveScreen(handle.run_dir))

    @on(Button.Pressed, "#save-preset")
    def action_save_preset(self) -> None:
        config = self.validate_form()
        if config is None:
            self.notify("fix the marked fields before saving a preset", severity="error")
            return
        suggestion = f"{self.preset}-{config.method.name}-{config.scenario}"
        self.app.push_screen(SavePresetScreen(suggestion), lambda text: self._save_to(config, text))

    def _save_to(self, config: RunConfig, text: str | None, overwrite: bool = False) -> None:
        if not text:
            return
        path = preset_save_path(text)
        if path.exists() and not overwrite:
            from cltui.tui.screens.confirm import ConfirmScreen

            def answered(yes: bool | None) -> None:
                if yes:
                    self._save_to(config, text, overwrite=True)

            self.app.push_screen(ConfirmScreen(f"{path} exists. Overwrite it?", confirm="Overwrite"), answered)
            return
        description = (f"Composed in cltui from {self.preset}: {config.method.name}, {config.scenario}-IL, "
                       f"{config.train.iterations} iterations per context.")
        try:
            save_preset(path, config, description, self.table.get("method_defaults", {}))
        except ConfigError as e:
            self.notify(str(e), severity="error")
            return
        except OSError as e:
            self.notify(f"could not save {path}: {e.strerror or e}", severity="error")
            return
        self.notify(f"saved preset {path.stem} in {path.parent}")
        if path.parent.resolve() == user_presets_dir().resolve():
            self._add_preset(path.stem)

    def _add_preset(self, name: str) -> None:
        self.presets = list_presets()
        with self.prevent(Select.Changed):
            select = self.query_one("#field-preset", Select)
            select.set_options([(p, p) for p in self.presets])
            select.value = self.preset

    def form_state(self) -> tuple[Any, ...]:
        """What the form holds now: the preset, scenario and method and every field's text."""
        return self.preset, self.scenario, self.method, tuple((row.spec.key, row.value_text()) for row in self.rows())

    def action_back(self) -> None:
        """Back to where the form was opened from; when its fields were changed, only after asking."""
        if self.form_state() == self.opened:
            self.app.pop_screen()
            return
        from cltui.tui.screens.confirm import ConfirmScreen

        def answered(discard: bool | None) -> None:
            if discard and self.app.screen is self:
                self.app.pop_screen()

        self.app.push_screen(ConfirmScreen("Discard the changes to this form?", "Leaving forgets what you changed "
                                           "here; nothing was started.", confirm="Discard",
                                           cancel="Keep editing", danger=True), answered)
