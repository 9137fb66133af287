"""Every registered method reaches every face: the method parameters registered in
`core.schema.params.METHOD_PARAMS` are the one list that `cltui run --help`, `cltui presets list / show`
and the TUI's compose form offer, in the registry's order, and each has an engine class
(`core.methods.method_class`) that takes exactly those parameters.

A method added to the registry but missing from a face (or left in a face after it was removed) is what
this file catches; the faces are read as the user sees them (CLI output, the real Textual app driven by
its Pilot), not through the helpers that build them.
"""

from __future__ import annotations

import json
import re
import typing

import pytest
from textual.widgets import Select, Static
from typer.testing import CliRunner

import core.methods
from cltui.cli.main import app
from cltui.tui.screens.compose import ComposeScreen
from cltui.tui.state.form import methods_for
from core.schema.config import SCENARIOS
from core.schema.params import METHOD_PARAMS, MethodParams

REGISTERED = list(METHOD_PARAMS)
WIDE = {"COLUMNS": "1000"}  # nothing is wrapped: one option's help, one footer, on one line


def cli(*args: str):
    result = CliRunner().invoke(app, list(args), env=WIDE)
    assert result.exit_code == 0, result.output
    return result.stdout


def offered_in(scenario: str) -> list[str]:
    """The registry's answer, independent of the faces: the methods whose params list `scenario`."""
    return [name for name, params in METHOD_PARAMS.items() if scenario in params.scenarios]


def test_the_registry_is_not_empty_and_every_method_works_somewhere():
    assert {"none", "ewc", "er", "abd"} <= set(REGISTERED)
    for name, params in METHOD_PARAMS.items():
        assert params.scenarios and set(params.scenarios) <= set(SCENARIOS), name
    assert set().union(*(offered_in(s) for s in SCENARIOS)) == set(REGISTERED)


# --- the CLI ----------------------------------------------------------------------------------------------


def test_run_help_lists_every_method_in_registry_order():
    lines = [line for line in cli("run", "--help").splitlines() if "--method" in line]
    assert len(lines) == 1, lines
    listed = re.search(r"Method: (.*?)\.\s", lines[0])
    assert listed, lines[0]
    assert listed.group(1).split(", ") == REGISTERED


def test_presets_list_names_every_method():
    footer = cli("presets", "list").rsplit("methods: ", 1)[1]
    assert " ".join(footer.split()).split(", ") == REGISTERED


def test_presets_show_lists_every_method_and_says_where_the_others_work():
    """split-digits is class-IL: its methods are listed with their defaults and summary; a method for other
    scenarios is listed too, as 'NAME: task-IL only' (its scenarios)."""
    out = cli("presets", "show", "split-digits")
    config = json.loads(out[out.index("\n{") + 1:])
    scenario = config["scenario"]
    head = out[: out.index("\n{")].splitlines()
    start = next(i for i, line in enumerate(head) if line.startswith("methods ("))
    assert f"{scenario}-IL" in head[start]
    rows = [line.strip() for line in head[start + 1:] if line.startswith("  ")]
    names = [re.match(r"[\w-]+", row).group(0) for row in rows]
    assert names == REGISTERED
    for name, row in zip(names, rows, strict=False):
        params = METHOD_PARAMS[name]
        if scenario in params.scenarios:
            assert "IL only" not in row and params.summary in row, row
        else:
            assert row == f"{name}: {'/'.join(params.scenarios)}-IL only", row
    assert any(scenario not in METHOD_PARAMS[n].scenarios for n in names)  # the case above is exercised


# --- the TUI's compose form -------------------------------------------------------------------------------


async def open_compose(app_, pilot) -> ComposeScreen:
    await pilot.press("n")
    for _ in range(100):
        if isinstance(app_.screen, ComposeScreen):
            break
        await pilot.pause(0.05)
    assert isinstance(app_.screen, ComposeScreen), "n did not open the compose screen"
    await pilot.pause()
    return app_.screen


async def choose(pilot, screen: ComposeScreen, field: str, value: str) -> Select:
    select = screen.query_one(f"#field-{field}", Select)
    select.value = value
    await pilot.pause(0.02)
    await pilot.pause()
    return select


@pytest.mark.anyio
async def test_the_compose_form_offers_exactly_the_methods_of_each_scenario(runs_dir, tui):
    """Per scenario, the method Select offers the methods whose params list that scenario, in registry
    order; over the three scenarios that is every registered method."""
    seen: dict[str, list[str]] = {}

    pilot = await tui.start(runs_dir, size=(100, 30))
    app_ = pilot.app
    screen = await open_compose(app_, pilot)
    for scenario in SCENARIOS:
        await choose(pilot, screen, "scenario", scenario)
        method = screen.query_one("#field-method", Select)
        seen[scenario] = [value for _, value in method._options]  # allow_blank=False: no blank entry
        assert method.value in seen[scenario], (scenario, method.value)

    for scenario in SCENARIOS:
        assert seen[scenario] == offered_in(scenario), scenario
        assert methods_for(scenario) == offered_in(scenario), scenario
    assert set().union(*seen.values()) == set(REGISTERED)


@pytest.mark.anyio
async def test_every_method_opens_its_form_in_the_compose_screen(runs_dir, tui):
    """Choosing each method (in the first scenario that offers it) shows its title, summary and fields
    without breaking the screen: a registered method whose parameters the form cannot show would make it
    unreachable from the TUI."""
    opened: list[str] = []

    pilot = await tui.start(runs_dir, size=(100, 30))
    app_ = pilot.app
    screen = await open_compose(app_, pilot)
    for scenario in SCENARIOS:
        await choose(pilot, screen, "scenario", scenario)
        for name in offered_in(scenario):
            if name in opened:
                continue
            await choose(pilot, screen, "method", name)
            assert app_.is_running and screen.query("#method-title"), (
                f"choosing {name} ({scenario}-IL) broke the compose screen; the app's error follows")
            title = str(screen.query_one("#method-title").render())
            summary = str(screen.query_one("#method-summary", Static).render())
            assert screen.method == name and title.startswith(f"Method · {name}"), (scenario, name, title)
            assert summary == METHOD_PARAMS[name].summary, (name, summary)
            fields = {w.id for w in screen.query("#method-fields Input, #method-fields Select")}
            expected = {"field-method-" + (info.alias or key).replace(".", "-")
                        for key, info in METHOD_PARAMS[name].model_fields.items() if key != "name"}
            assert fields == expected, (name, fields, expected)
            opened.append(name)

    assert sorted(opened) == sorted(REGISTERED)


# --- the engine -------------------------------------------------------------------------------------------


def params_type(cls: type) -> type | None:
    """The parameters a method class takes: T of the nearest `Method[T]`-style base in its MRO
    (`class EWC(Method[EWCParams])`, `class ABD(DreamingMethod[ABDParams])`)."""
    for klass in cls.__mro__:
        for base in vars(klass).get("__orig_bases__", ()):
            for arg in typing.get_args(base):
                if isinstance(arg, type) and issubclass(arg, MethodParams):
                    return arg
    return None


def test_the_engine_registers_every_method():
    assert sorted(core.methods.registered_methods()) == sorted(REGISTERED)


@pytest.mark.parametrize("name", REGISTERED)
def test_every_method_has_an_engine_class_taking_its_params(name):
    from core.methods.parts.base import (
        Method,  # torch: only here, so the faces' tests run even if the engine breaks
    )

    cls = core.methods.method_class(name)
    assert isinstance(cls, type) and issubclass(cls, Method), cls
    assert getattr(cls, "name", name) == name, f"{cls.__qualname__}.name is {cls.name!r}"
    assert params_type(cls) is METHOD_PARAMS[name], (
        f"{cls.__module__}.{cls.__qualname__} takes {params_type(cls)}, the registry says {METHOD_PARAMS[name]}")
