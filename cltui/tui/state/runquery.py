"""What the runs table shows of each run, and how it is filtered, sorted and grouped. Plain Python (no
Textual), so it is tested on its own and reusable by the CLI.

- `row_of(entry, status)` -> a `Row`: the short id, preset, method, scenario, seed, iterations, the
  overrides (the config fields that differ from what the run's preset gives that method / scenario / seed),
  status, accuracy and duration of one run. Odd or missing fields are None, shown "–".
- Accuracy (`acc %`): the run's headline from core.runs.metrics (`run_figures`): the final average over every
  context for a run that trained them all; for a run still going, cancelled or failed, the average over the
  contexts it saw, shown with a "seen" suffix (`62.1 seen`) and its status with what it trained
  (`cancelled 3/5`), so the figure never averages contexts that were not trained. Sorting and `acc>` filters
  use the same figure.
- Duration is run.json's `timing.total_s`, the one figure the header and the detail show too.
- `parse_filter(text)` -> (a `Filter`, errors): `field:value` is an exact match (`method:er` never matches
  deepinversion; `method:er,ewc` matches either), `field>x`, `<`, `>=`, `<=` compare numbers (acc as a
  fraction or a percentage: `acc>0.9` and `acc>90` alike; duration in seconds, or with s/m/h),
  a leading `-` or `!` negates, and any other word is a substring of the id, preset, method, scenario or
  status. A token that cannot be read is left out and named in the errors.
- `sort_rows`, `group_rows`: sort by any column; one `Group` per value of method / preset / scenario /
  iterations with n, mean ± SEM of the accuracy (finished runs only) and the mean duration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cltui.tui.state.formats import fmt_status, fmt_value
from core.runs.metrics import mean_sem, run_figures

# The sortable columns, in the order `o` cycles through them: key -> header.
SORT_COLUMNS: dict[str, str] = {"run": "run", "preset": "preset", "method": "method", "scenario": "scenario",
                                "seed": "seed", "iterations": "iters", "overrides": "overrides",
                                "status": "status", "acc": "acc %", "duration": "time"}
GROUP_BY = ("method", "preset", "scenario", "iterations")  # `g` cycles through these, then off
FIELDS = {  # filter field -> (kind, row attribute); aliases share the attribute
    "id": ("text", "id"), "run": ("text", "id"), "preset": ("exact", "preset"), "method": ("exact", "method"),
    "scenario": ("exact", "scenario"), "status": ("exact", "status"), "seed": ("number", "seed"),
    "iterations": ("number", "iterations"), "iters": ("number", "iterations"), "it": ("number", "iterations"),
    "acc": ("number", "acc"), "duration": ("number", "duration"), "time": ("number", "duration"),
    "overrides": ("text", "overrides"), "set": ("text", "overrides"),
}
FIELD_NAMES = "method preset scenario status seed iterations acc duration overrides id"
STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})(?:-(.*))?$")
SKIPPED = {"preset", "scenario", "method.name", "train.seed", "benchmark.data_dir", "benchmark.download",
           "train.progress_interval", "train.device"}  # own columns, or where the data is, not the experiment


@dataclass
class Row:
    """One run as the table shows it. `acc` is a fraction; `acc_seen` says it averages the contexts seen so
    far (a run still going) rather than all of them."""

    id: str
    short: str
    preset: str | None = None
    method: str | None = None
    scenario: str | None = None
    seed: int | None = None
    iterations: int | None = None
    overrides: str | None = None  # None: not known (no preset); "": none
    override_items: tuple[tuple[str, str], ...] = ()  # (dotted key, "name=value") of each
    status: str = "unreadable"
    status_label: str = "unreadable"
    acc: float | None = None
    acc_seen: bool = False
    score: str = "accuracy"  # or "R²": what `acc` holds (core.runs.metrics.RunFigures.score)
    duration: float | None = None


@dataclass
class Group:
    """The runs sharing one value of the grouped column, with their aggregate figures."""

    by: str
    value: Any
    rows: list[Row]
    acc: float | None = None
    acc_sem: float | None = None
    acc_n: int = 0  # how many runs the mean is over (finished, with a final accuracy)
    duration: float | None = None

    @property
    def key(self) -> str:
        return f"\0group:{self.by}:{self.value}"


# --- one run ------------------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def short_id(run_id: str, preset: str | None, scenario: str | None, method: str | None, seed: int | None) -> str:
    """`20260103-085800-split-digits-class-er-s1` -> `01-03 08:58`: the parts with their own columns go; a
    suffix the store added (`-2`) or a name of the user's stays. An id without a time stamp is kept whole."""
    match = STAMP.match(run_id)
    if not match:
        return run_id
    _, mo, day, hh, mm, _, rest = match.groups()
    short = f"{mo}-{day} {hh}:{mm}"
    if not rest:
        return short
    if preset is None and method is None:  # unreadable: its own run.json cannot say what the id holds
        standard = re.match(r"^.+-(?:task|domain|class)-[\w.-]+-s\d+(-\d+)?$", rest)
        if standard:
            return short + (standard.group(1) or "")
    expected = f"{preset or 'run'}-{scenario}-{method}-s{seed}"
    if rest == expected:
        return short
    if rest.startswith(expected):
        return short + rest[len(expected):]
    return f"{short} {rest}"


def row_of(run_id: str, data: dict[str, Any] | None, status: str,
           expected: Callable[[str, str, str], dict[str, Any] | None] | None = None) -> Row:
    """The row of a run from its run.json (None: unreadable) and its status. `expected(preset, method,
    scenario)` gives the flattened config the preset makes (see `PresetConfigs`); without it no overrides."""
    if data is None:
        return Row(run_id, short_id(run_id, None, None, None, None), status=status, status_label=status)
    cfg = _dict(data.get("config"))
    method = _dict(cfg.get("method"))
    train = _dict(cfg.get("train"))
    preset, name, scenario = _str(data.get("preset")), _str(method.get("name")), _str(cfg.get("scenario"))
    seed, iterations = _int(train.get("seed")), _int(train.get("iterations"))
    figures = run_figures(data)
    row = Row(run_id, short_id(run_id, preset, scenario, name, seed), preset, name, scenario, seed, iterations,
              status=status, status_label=fmt_status(status, figures), score=figures.score)
    row.acc, row.acc_seen = _num(figures.headline), figures.seen_only
    row.duration = _num(_dict(data.get("timing")).get("total_s"))
    if expected is not None and preset and name and scenario:
        try:
            base = expected(preset, name, scenario)
        except Exception:  # noqa: BLE001 - a preset that cannot be built shows no overrides, never a crash
            base = None
        if base is not None:
            from core.schema.config import flat_config  # loaded with the preset's config above

            row.override_items = override_items(flat_config(cfg), base)
            row.overrides = " ".join(text for _, text in row.override_items)
    return row


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return bool(a == b)


def override_items(run: dict[str, Any], base: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(`train.iterations`, `iterations=50`), ...: the run's flattened config fields that the preset sets
    otherwise. A field the run does not have (an older cltui wrote it) is no override; one the preset lacks
    is. Named by the last part of the key unless two differing fields share it."""
    differ = [(k, v) for k, v in run.items() if k not in SKIPPED and not k.startswith("track.")
              and (k not in base or not same(v, base[k]))]
    lasts = [k.rpartition(".")[2] for k, _ in differ]
    return tuple((k, f"{k if lasts.count(last) > 1 else last}={fmt_value(v)}")
                 for (k, v), last in zip(differ, lasts, strict=False))


class PresetConfigs:
    """`build_config(preset, method=, scenario=)` flattened, once per (preset, method, scenario); None for a
    preset that is gone or a combination that does not validate. Thread-safe enough: the worst case is
    building one twice."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str, str], dict[str, Any] | None] = {}

    def __call__(self, preset: str, method: str, scenario: str) -> dict[str, Any] | None:
        key = (preset, method, scenario)
        if key not in self.cache:
            from core.schema.config import flat_config
            from core.schema.presets import build_config  # not at import: the first screen does not wait for it

            try:
                self.cache[key] = flat_config(build_config(preset, method=method, scenario=scenario).to_dict())
            except Exception:  # noqa: BLE001 - unknown preset, a method it does not take, a damaged TOML
                self.cache[key] = None
        return self.cache[key]


# --- the filter -----------------------------------------------------------------------------------------


@dataclass
class Term:
    attr: str
    op: str  # ":" exact (any of values), "~" substring, "<", ">", "<=", ">=", "words"
    values: list[Any]
    negate: bool = False

    def test(self, row: Row) -> bool:
        if self.op == "words":
            hay = " ".join(str(x).lower() for x in (row.id, row.preset, row.method, row.scenario, row.status_label)
                           if x is not None)
            hit = self.values[0] in hay
        else:
            value = getattr(row, self.attr)
            if self.op == ":":
                hit = value is not None and any(_equal(value, v) for v in self.values)
            elif self.op == "~":
                hit = value is not None and any(v in str(value).lower() for v in self.values)
            elif value is None:
                hit = False
            else:
                x = self.values[0]
                hit = {"<": value < x, ">": value > x, "<=": value <= x, ">=": value >= x}[self.op]
        return hit != self.negate


def _equal(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, float):
        return isinstance(value, (int, float)) and math.isclose(value, wanted, abs_tol=1e-9)
    return str(value).lower() == wanted


@dataclass
class Filter:
    terms: list[Term] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, row: Row) -> bool:
        return all(t.test(row) for t in self.terms)


TOKEN = re.compile(r"^([A-Za-z_]+)\s*(>=|<=|>|<|:|=)(.*)$")


def number(attr: str, text: str) -> float:
    raw = text.strip().lower()
    scale = 1.0
    if attr == "acc":
        raw = raw.removesuffix("%")
    elif attr == "duration" and raw and raw[-1] in "smh":
        scale = {"s": 1.0, "m": 60.0, "h": 3600.0}[raw[-1]]
        raw = raw[:-1]
    value = float(raw)  # ValueError: not a number
    if not math.isfinite(value):
        raise ValueError(text)
    value *= scale
    if attr == "acc" and (value > 1 or text.strip().endswith("%")):
        value /= 100  # a percentage: acc>90 is acc>0.9
    return value


def parse_filter(text: str) -> tuple[Filter, list[str]]:
    """The filter typed after `/`, and what is wrong with it (each bad token left out, with the reason)."""
    terms: list[Term] = []
    errors: list[str] = []
    for token in text.split():
        negate = token[0] in "-!" and len(token) > 1
        body = token[1:] if negate else token
        match = TOKEN.match(body)
        if not match:
            terms.append(Term("id", "words", [body.lower()], negate))
            continue
        name, op, raw = match.group(1).lower(), match.group(2), match.group(3).strip()
        if name not in FIELDS and op == "=":
            terms.append(Term("overrides", "~", [body.lower()], negate))  # lr=0.01: an override
            continue
        if name not in FIELDS:
            errors.append(f"unknown field “{name}” (fields: {FIELD_NAMES})")
            continue
        kind, attr = FIELDS[name]
        if not raw:
            errors.append(f"“{token}” needs a value after {op}")
            continue
        if op in ("<", ">", "<=", ">="):
            if kind != "number":
                errors.append(f"{name} is not a number: use {name}:value")
                continue
            try:
                terms.append(Term(attr, op, [number(attr, raw)], negate))
            except ValueError:
                errors.append(f"“{raw}” is not a number ({name}{op}number)")
            continue
        values = [v for v in raw.lower().split(",") if v]
        if kind == "number":
            try:
                terms.append(Term(attr, ":", [number(attr, v) for v in values], negate))
            except ValueError:
                errors.append(f"{name}:{raw}: {name} takes numbers")
        elif kind == "text":
            terms.append(Term(attr, "~", values, negate))
        else:
            terms.append(Term(attr, ":", values, negate))
    return Filter(terms), errors


# --- sorting and grouping -------------------------------------------------------------------------------


def sort_value(row: Row, column: str) -> tuple[int, Any]:
    """A key that sorts every row, missing values last whichever the direction (see `sort_rows`)."""
    if column == "run":
        return (0, row.id)
    value = getattr(row, column, None)
    if value is None or value == "":
        return (1, 0)
    return (0, value.lower() if isinstance(value, str) else value)


def sort_rows(rows: Iterable[Row], column: str, descending: bool) -> list[Row]:
    present = [r for r in rows if sort_value(r, column)[0] == 0]
    missing = [r for r in rows if sort_value(r, column)[0] == 1]
    present.sort(key=lambda r: (sort_value(r, column)[1], r.id), reverse=descending)
    missing.sort(key=lambda r: r.id, reverse=True)
    return present + missing


def group_rows(rows: list[Row], by: str, column: str, descending: bool) -> list[Group]:
    """One Group per value of `by`, its runs sorted by `column`, the groups sorted by the same column
    (by its aggregate: mean accuracy, mean duration, newest run, or the group's value)."""
    buckets: dict[Any, list[Row]] = {}
    for row in rows:
        buckets.setdefault(getattr(row, by), []).append(row)
    groups = []
    for value, members in buckets.items():
        finals = [r.acc for r in members if r.acc is not None and not r.acc_seen and r.status == "finished"]
        acc, sem = mean_sem(finals)  # type: ignore[arg-type]
        times = [r.duration for r in members if r.duration is not None]
        groups.append(Group(by, value, sort_rows(members, column, descending), acc, sem, len(finals),
                            sum(times) / len(times) if times else None))

    def key(g: Group) -> tuple[int, Any]:
        if column == by:
            v = g.value
        elif column in ("acc", "duration"):
            v = getattr(g, column)
        elif column == "run":
            v = max(r.id for r in g.rows)
        else:
            values = {getattr(r, column) for r in g.rows}
            v = values.pop() if len(values) == 1 else None
        if v is None:
            return (1, 0)
        return (0, v.lower() if isinstance(v, str) else v)

    present = [g for g in groups if key(g)[0] == 0]
    missing = [g for g in groups if key(g)[0] == 1]
    present.sort(key=lambda g: (key(g)[1], str(g.value)), reverse=descending)
    missing.sort(key=lambda g: str(g.value))
    return present + missing


def common(values: Iterable[Any], limit: int = 9) -> str:
    """What a group's column shows: the one value its runs share, else the values (`0,1,2`) when short,
    else how many (`4 values`)."""
    distinct = sorted({v for v in values}, key=lambda v: (v is None, str(v) if not isinstance(v, (int, float))
                                                           else f"{v:020.6f}"))
    shown = ["–" if v is None else str(v) for v in distinct]
    if len(shown) == 1:
        return shown[0]
    text = ",".join(shown)
    return text if len(text) <= limit else f"{len(shown)} values"
