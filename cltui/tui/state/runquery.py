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
- `sort_rows`, `group_rows`: sort by any column; group by a set of keys (columns), one `Group` per
  combination of their values, with n, mean ± SEM of the score (finished runs only; never over runs scored
  differently, accuracy and R²) and the mean duration. The default keys, `GROUP_KEYS`, are what makes runs
  comparable (preset, scenario, method, the overrides, iterations), so a mean is only ever over runs that
  differ by seed.
"""

from __future__ import annotations

import difflib
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
# `g` groups by these: a setup, the runs that differ only by seed (the seed is never an override)
GROUP_KEYS: tuple[str, ...] = ("preset", "scenario", "method", "overrides", "iterations")
GROUPABLE = ("preset", "method", "scenario", "seed", "iterations", "overrides", "status")  # what `G` offers
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
    config: dict[str, Any] = field(default_factory=dict)  # the flattened config: what dotted filter keys read


@dataclass
class Group:
    """The runs sharing one value of each grouping key (`by`, the columns; `values`, in the same order), with
    their aggregate figures."""

    by: tuple[str, ...]
    values: tuple[Any, ...]
    rows: list[Row]
    acc: float | None = None
    acc_sem: float | None = None
    acc_n: int = 0  # how many runs the mean is over (finished, with a final score)
    duration: float | None = None
    score: str | None = "accuracy"  # what `acc` holds; None: its runs are scored differently, so no mean

    def value(self, key: str) -> Any:
        """The group's value of one of its keys."""
        return self.values[self.by.index(key)]

    @property
    def key(self) -> str:
        """The table's row key: the keys and their values, each value written by repr, so that two groups
        never share one ("1" and 1, None and "None" differ)."""
        return "\0group:" + ",".join(self.by) + ":" + "|".join(repr(v) for v in self.values)


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
    if method == "merge":  # `cltui merge` names its run <preset>-merge-<approach>-s<seed>
        merged = re.match(re.escape(f"{preset or 'run'}-merge-") + r"[a-z0-9]+" + re.escape(f"-s{seed}"), rest)
        expected = merged.group(0) if merged else expected
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
    from core.schema.config import flat_config  # not at import: the first screen does not wait for pydantic

    row.config = flat_config(cfg)
    if expected is not None and preset and name and scenario:
        try:
            base = expected(preset, name, scenario)
        except Exception:  # noqa: BLE001 - a preset that cannot be built shows no overrides, never a crash
            base = None
        if base is not None:
            row.override_items = override_items(row.config, base)
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

FILTER_HELP = (
    "/ filters the runs; terms are and-ed, a leading - or ! negates one:\n"
    "  method:er,ewc   one of these values (exact; also preset, scenario, status)\n"
    "  acc>90  seed:1  iterations>=50  duration<2m   numbers compare (acc in % or as 0.9)\n"
    "  method.lambda>1e6  train.lr<=1e-3  benchmark.name:folder   any config key, dotted\n"
    "  lambda>1e6  lr=0.01   a key's last part, when one key of the runs ends so\n"
    "  overrides:lr  set:iterations   text in the overrides column\n"
    "  deep   any other word: part of the id, preset, method, scenario or status"
)


@dataclass
class Term:
    attr: str  # a Row attribute, or a dotted config key when `config` is set
    op: str  # ":" equal (any of values), "~" substring, "<", ">", "<=", ">=", "words"
    values: list[Any]
    negate: bool = False
    config: bool = False  # attr is a key of the run's flattened config

    def test(self, row: Row) -> bool:
        if self.op == "words":
            hay = " ".join(str(x).lower() for x in (row.id, row.preset, row.method, row.scenario, row.status_label)
                           if x is not None)
            hit = self.values[0] in hay
        else:
            value = row.config.get(self.attr) if self.config else getattr(row, self.attr)
            if self.op == ":":
                hit = value is not None and any(_equal(value, v) for v in self.values)
            elif self.op == "~":
                hit = value is not None and any(v in str(value).lower() for v in self.values)
            elif _num(value) is None:
                hit = False  # a comparison never passes a missing or non-numeric value
            else:
                x = self.values[0]
                hit = {"<": value < x, ">": value > x, "<=": value <= x, ">=": value >= x}[self.op]
        return hit != self.negate


def _equal(value: Any, wanted: Any) -> bool:
    """A run's value against a typed one: numbers by value (`lr:1e-3` is 0.001), booleans and None by name,
    anything else as text, case aside."""
    if isinstance(value, bool):
        return str(value).lower() == str(wanted).lower()
    if isinstance(wanted, float):
        return _num(value) is not None and math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(value, (int, float)):
        try:
            return math.isclose(value, float(wanted), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    if value is None:
        return str(wanted) in ("none", "null")
    return str(value).lower() == str(wanted)


@dataclass
class Filter:
    terms: list[Term] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, row: Row) -> bool:
        return all(t.test(row) for t in self.terms)


TOKEN = re.compile(r"^([A-Za-z_][\w.]*?)\s*(>=|<=|!=|>|<|:|=)(.*)$")


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


def config_keys(rows: Iterable[Row]) -> set[str]:
    """Every dotted config key of `rows`: what a filter's key may name."""
    keys: set[str] = set()
    for row in rows:
        keys.update(row.config)
    return keys


def resolve_key(name: str, keys: set[str]) -> tuple[str | None, str | None]:
    """The config key a filter names, and what is wrong when none: a dotted key as it is (when some run has
    it), or a key's last part when exactly one key ends so (`lambda` for `method.lambda`)."""
    if name in keys:
        return name, None
    if "." in name:
        near = difflib.get_close_matches(name, sorted(keys), n=1)
        return None, f"no run has the config key “{name}”" + (f" (did you mean {near[0]}?)" if near else "")
    ending = sorted(k for k in keys if k.rpartition(".")[2] == name)
    if len(ending) == 1:
        return ending[0], None
    if ending:
        return None, f"“{name}” is ambiguous: write one of {', '.join(ending)}"
    parts = {k.rpartition(".")[2]: k for k in sorted(keys)}
    near = difflib.get_close_matches(name, [*FIELD_NAMES.split(), *parts], n=1)
    if near:  # the likely fix first: the line is cut at the terminal's width
        return None, f"unknown field “{name}”: did you mean {parts.get(near[0], near[0])}?"
    return None, f"unknown field “{name}” (fields: {FIELD_NAMES}, or a dotted config key such as method.lambda)"


def parse_filter(text: str, keys: Iterable[str] = ()) -> tuple[Filter, list[str]]:
    """The filter typed after `/`, and what is wrong with it (each bad token left out, with the reason).
    `keys`: the dotted config keys of the runs (`config_keys`), which a term may name besides the columns."""
    known = set(keys)
    terms: list[Term] = []
    errors: list[str] = []
    for token in text.split():
        negate = token[0] in "-!" and len(token) > 1
        body = token[1:] if negate else token
        match = TOKEN.match(body)
        if not match:
            terms.append(Term("id", "words", [body.lower()], negate))
            continue
        name, op, raw = match.group(1), match.group(2), match.group(3).strip()
        if op == "!=":
            negate, op = not negate, ":"
        if not raw:
            errors.append(f"“{token}” needs a value after {op}")
            continue
        if name.lower() in FIELDS and "." not in name:
            term, error = field_term(name.lower(), op, raw, negate)
        else:
            key, error = resolve_key(name, known)
            term = None if key is None else config_term(key, op, raw, negate)
            if key is not None and term is None:
                error = f"“{raw}” is not a number ({name}{op}number)"
        if term is None:
            errors.append(error or f"cannot read “{token}”")
        else:
            terms.append(term)
    return Filter(terms), errors


def field_term(name: str, op: str, raw: str, negate: bool) -> tuple[Term | None, str | None]:
    """A term on one of the table's columns (`FIELDS`)."""
    kind, attr = FIELDS[name]
    if op in ("<", ">", "<=", ">="):
        if kind != "number":
            return None, f"{name} is not a number: use {name}:value"
        try:
            return Term(attr, op, [number(attr, raw)], negate), None
        except ValueError:
            return None, f"“{raw}” is not a number ({name}{op}number)"
    values = [v for v in raw.lower().split(",") if v]
    if kind == "number":
        try:
            return Term(attr, ":", [number(attr, v) for v in values], negate), None
        except ValueError:
            return None, f"{name}:{raw}: {name} takes numbers"
    return Term(attr, "~" if kind == "text" else ":", values, negate), None


def config_term(key: str, op: str, raw: str, negate: bool) -> Term | None:
    """A term on a config key: `=` and `:` match any of the comma-separated values (numbers by value), the
    comparisons need a number (None: it is not one)."""
    if op in ("<", ">", "<=", ">="):
        try:
            value = float(raw)
        except ValueError:
            return None
        return Term(key, op, [value], negate, config=True)
    values: list[Any] = []
    for v in (v for v in raw.lower().split(",") if v):
        try:
            values.append(float(v) if v not in ("true", "false", "nan", "inf", "-inf") else v)
        except ValueError:
            values.append(v)
    return Term(key, ":", values, negate, config=True)


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


def setup_overrides(row: Row, keys: Iterable[str] = ()) -> str | None:
    """The overrides a group compares: every one but those with a key of their own among `keys` (iterations:
    `train.iterations`); None when they are not known."""
    if row.overrides is None:
        return None
    own = {"train.iterations"} if "iterations" in keys else set()
    return " ".join(text for key, text in row.override_items if key not in own)


def group_value(row: Row, key: str, keys: Iterable[str] = ()) -> Any:
    """A run's value of one grouping key (`keys`: the whole set, which decides what the overrides hold)."""
    if key == "overrides":
        return setup_overrides(row, keys)
    return getattr(row, key)


def group_rows(rows: list[Row], by: tuple[str, ...] | str, column: str, descending: bool) -> list[Group]:
    """One Group per combination of the values of the keys `by` (one key, or several), its runs sorted by
    `column`, the groups sorted by the same column (by its aggregate: mean score, mean duration, newest run,
    the group's value of a key, or the value its runs share)."""
    keys = (by,) if isinstance(by, str) else tuple(by)
    buckets: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        buckets.setdefault(tuple(group_value(row, k, keys) for k in keys), []).append(row)
    groups = []
    for values, members in buckets.items():
        done = [r for r in members if r.acc is not None and not r.acc_seen and r.status == "finished"]
        scores = {r.score for r in done}
        score = scores.pop() if len(scores) == 1 else None if scores else members[0].score
        acc, sem = mean_sem([r.acc for r in done]) if score is not None else (None, None)
        times = [r.duration for r in members if r.duration is not None]
        groups.append(Group(keys, values, sort_rows(members, column, descending), acc, sem, len(done),
                            sum(times) / len(times) if times else None, score))

    def key(g: Group) -> tuple[int, Any]:
        if column in keys:
            v = g.value(column)
        elif column in ("acc", "duration"):
            v = getattr(g, column)
        elif column == "run":
            v = max(r.id for r in g.rows)
        else:
            shared = {getattr(r, column) for r in g.rows}
            v = shared.pop() if len(shared) == 1 else None
        if v is None or v == "":
            return (1, 0)
        return (0, v.lower() if isinstance(v, str) else v)

    present = [g for g in groups if key(g)[0] == 0]
    missing = [g for g in groups if key(g)[0] == 1]
    present.sort(key=lambda g: (key(g)[1], g.key), reverse=descending)
    missing.sort(key=lambda g: g.key)
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
