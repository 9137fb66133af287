"""Sweeps: one method of a preset tuned over a grid of config values (or random, or Optuna-chosen points), every
point x seed an ordinary run of a study (core/studies/study.py), then the metric against each parameter and the best
point, chosen on held-out training data (`benchmark.validation`) unless asked otherwise: the test set is never
used for tuning (van de Ven's compare_hyperParams.py grid-searches; FACIL's "continual grid search" tunes on
held-out data only).

A sweep is a study file with `kind = "sweep"`; each of its runs names the point it trains (`params`) and the
trial it belongs to. Torch-free, like core/studies/study.py: the CLI plans and summarises, the worker processes train.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

from core.files import slug
from core.runs.record import now_iso
from core.runs.store import RunStore
from core.schema.config import ConfigError, RunConfig
from core.schema.presets import build_config, load_preset, parse_override, preset_toml, toml_text
from core.studies import study as studies

SEARCHES = ("grid", "random", "optuna")
SELECT_METRIC = {"validation": "final_avg_val_acc", "test": "final_avg_acc"}
DEFAULT_VALIDATION = 0.1  # held out when --select validation and the preset holds out nothing
PRUNE_STARTUP = 2  # Optuna trials that end before any is pruned
SEARCH_SEED = 0  # random and Optuna search draw their points from this seed: a resumed sweep draws the same
MAX_POINTS = 10_000  # grid points (or trials) of one sweep: far beyond what anyone trains, short of a typo's 1e9
GRID_HELP = "write KEY=lo:hi:log:n (e.g. method.lambda=1:1e12:log:7), KEY=lo:hi:lin:n or KEY=a,b,c"


@dataclass(frozen=True)
class Axis:
    """One swept config key: its grid values, and for a range the bounds random and Optuna search draw from."""

    key: str
    values: tuple[Any, ...]
    text: str  # as the user wrote it, for messages and the study file
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    def sample(self, rng: random.Random) -> Any:
        """A value drawn at random: log-uniform or uniform over a range, uniform over a list."""
        if self.low is None or self.high is None:
            return rng.choice(self.values)
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return round(value) if self.integer else float(f"{value:.6g}")


def _number(raw: str, text: str, what: str) -> tuple[float, bool]:
    """(value, written as an integer) of one bound of a range."""
    try:
        _, value = parse_override(f"v={raw}")
    except ConfigError:
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"--grid {text!r}: {what} {raw!r} is not a number; {GRID_HELP}", field="--grid")
    return float(value), isinstance(value, int)


def parse_axis(text: str) -> Axis:
    """`method.lambda=1:1e12:log:7` -> seven log-spaced values from 1 to 1e12; `train.lr=1e-4,3e-4` -> a list
    (values read as TOML, as --set reads them). A one-line ConfigError naming the --grid value and the fix."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not raw or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
        raise ConfigError(f"--grid {text!r}: {GRID_HELP}", field="--grid")
    parts = raw.split(":")
    if len(parts) == 1:
        values = tuple(parse_override(f"{key}={item}")[1] for item in raw.split(",") if item.strip())
        if not values or len(values) != len(raw.split(",")):
            raise ConfigError(f"--grid {text!r}: an empty value in the list; {GRID_HELP}", field="--grid")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--grid {text!r}: a value is listed twice; list each once", field="--grid")
        return Axis(key, values, text)
    if len(parts) != 4 or parts[2] not in ("log", "lin"):
        raise ConfigError(f"--grid {text!r}: a range has four parts lo:hi:log:n or lo:hi:lin:n; {GRID_HELP}",
                          field="--grid")
    (low, low_int), (high, high_int) = _number(parts[0], text, "lo"), _number(parts[1], text, "hi")
    try:
        n = int(parts[3])
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_POINTS:
        raise ConfigError(f"--grid {text!r}: n {parts[3]!r} must be a whole number of values from 1 to {MAX_POINTS}",
                          field="--grid")
    log = parts[2] == "log"
    if low > high:
        raise ConfigError(f"--grid {text!r}: lo {parts[0]} is above hi {parts[1]}; swap them", field="--grid")
    if log and low <= 0:
        raise ConfigError(f"--grid {text!r}: a log range needs lo > 0 (got {parts[0]}); use lin, or a positive lo",
                          field="--grid")
    if n == 1:
        points = [low]
    elif log:
        a, b = math.log10(low), math.log10(high)
        points = [10 ** (a + (b - a) * i / (n - 1)) for i in range(n)]
    else:
        points = [low + (high - low) * i / (n - 1) for i in range(n)]
    integer = low_int and high_int
    values = tuple(dict.fromkeys(round(v) if integer else float(f"{v:.12g}") for v in points))  # no repeats
    return Axis(key, values, text, low, high, log, integer)


def parse_axes(texts: list[str]) -> list[Axis]:
    if not texts:
        raise ConfigError(f"--grid: give at least one parameter to sweep; {GRID_HELP}", field="--grid")
    axes = [parse_axis(t) for t in texts]
    keys = [a.key for a in axes]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"--grid: {key} is swept twice; give it one --grid", field="--grid")
    return axes


def points(axes: list[Axis], search: str, trials: int | None) -> list[dict[str, Any]]:
    """The points a grid or random search trains ({key: value}); Optuna's are asked for as it goes."""
    if search == "grid":
        total = math.prod(len(a.values) for a in axes)
        if total > MAX_POINTS:
            raise ConfigError(f"--grid: {total} grid points is more than {MAX_POINTS}; use fewer values, or "
                              f"--search random --trials N", field="--grid")
        keys = [a.key for a in axes]
        return [dict(zip(keys, combo, strict=False)) for combo in itertools.product(*(a.values for a in axes))]
    if search == "optuna":
        return []  # each asked of Optuna after the trials before it have told their value
    rng = random.Random(SEARCH_SEED)
    return [{a.key: a.sample(rng) for a in axes} for _ in range(trials or 0)]


def short(value: Any) -> str:
    """A swept value as people write it: 1e6, not 1e+06 (still valid TOML)."""
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", toml_text(value)) if isinstance(value, float) else toml_text(value)


def label(params: dict[str, Any]) -> str:
    return " ".join(f"{key.split('.')[-1]}={short(value)}" for key, value in params.items())


def signature(settings: dict[str, Any]) -> str:
    """What makes two sweeps the same sweep: `cltui sweep … --resume` continues the newest one that matches."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Plan:
    """A sweep's settings, checked, and how to make the config of any point."""

    preset: str
    method: str
    scenario: str
    axes: list[Axis]
    seeds: int
    overrides: list[str]  # the user's --set
    select: str
    search: str
    trials: int | None
    added: list[str]  # what the sweep adds to them: the validation share, when the preset holds out nothing

    def config(self, params: dict[str, Any], seed: int) -> RunConfig:
        sets = self.overrides + self.added + [f"{key}={toml_text(value)}" for key, value in params.items()]
        try:
            return build_config(self.preset, method=self.method, scenario=self.scenario, seed=seed, overrides=sets)
        except ConfigError as e:
            axis = next((a for a in self.axes if e.field == a.key or e.field.startswith(f"{a.key}.")), None)
            if axis is not None:
                raise ConfigError(f"--grid {axis.text!r}: {e.field}: {e.detail}",
                                  field="--grid") from None
            raise

    def settings(self) -> dict[str, Any]:
        return {"preset": self.preset, "method": self.method, "scenario": self.scenario, "seeds": self.seeds,
                "grid": [a.text for a in self.axes], "overrides": self.overrides, "select": self.select,
                "search": self.search, "trials": self.trials}

    def entries(self, params: dict[str, Any], trial: int) -> list[dict[str, Any]]:
        return [{"method": self.method, "seed": seed, "run_id": None, "params": params, "trial": trial,
                 "label": label(params)} for seed in range(self.seeds)]


def make_plan(preset: str, method: str, scenario: str, grid: list[str], seeds: int, overrides: list[str],
              select: str, search: str, trials: int | None) -> Plan:
    """Check every setting (one ConfigError naming the option) before anything trains."""
    if select not in SELECT_METRIC:
        raise ConfigError(f"--select: {select!r} is not one of validation, test", field="--select")
    if search not in SEARCHES:
        raise ConfigError(f"--search: {search!r} is not one of {', '.join(SEARCHES)}", field="--search")
    if search == "grid" and trials is not None:
        raise ConfigError("--trials: a grid search trains every point; add --search random or --search optuna",
                          field="--trials")
    if search != "grid" and not (trials and 1 <= trials <= MAX_POINTS):
        raise ConfigError(f"--trials: --search {search} needs --trials N (1 to {MAX_POINTS})", field="--trials")
    if seeds < 1:
        raise ConfigError("--seeds: at least 1", field="--seeds")
    axes = parse_axes(grid)
    base = build_config(preset, method=method, scenario=scenario, overrides=overrides)
    extra = []
    if select == "validation" and not base.benchmark.validation:
        extra = [f"benchmark.validation={DEFAULT_VALIDATION}"]
    if any(a.key == "benchmark.validation" for a in axes):
        raise ConfigError("--grid benchmark.validation: the held-out share decides what the sweep is chosen on; "
                          "set it with --set", field="--grid")
    plan = Plan(preset, method, scenario, axes, seeds, list(overrides), select, search, trials, extra)
    for axis in axes:  # every value of every axis once, so a bad one is named before anything trains
        for value in axis.values if axis.low is None else (axis.low, axis.high):
            plan.config({axis.key: value}, 0)
    return plan


def new_study(plan: Plan, jobs: int) -> dict[str, Any]:
    first = plan.config({}, 0)
    study_id = f"{time.strftime('%Y%m%d-%H%M%S')}-sweep-{slug(first.preset or 'study')}-{plan.method}-{plan.scenario}"
    return {"schema": studies.SCHEMA, "id": study_id, "kind": "sweep", "created": now_iso(), "finished": None,
            "preset": first.preset, "scenario": plan.scenario, "methods": [plan.method], "seeds": plan.seeds,
            "overrides": plan.overrides, "added": plan.added, "jobs": jobs, "grid": [a.text for a in plan.axes],
            "select": plan.select, "search": plan.search, "trials": plan.trials,
            "signature": signature(plan.settings()), "runs": []}


def find_previous(store: RunStore, plan: Plan) -> dict[str, Any] | None:
    """The newest sweep with the same settings (what --resume continues), or None."""
    wanted = signature(plan.settings())
    found = [s for s in studies.list_studies(store) if s.get("kind") == "sweep" and s.get("signature") == wanted]
    return found[-1] if found else None


# --- Results ----------------------------------------------------------------------------------------


def _finished(store: RunStore, study: dict[str, Any], records: list[dict[str, Any] | None] | None = None
              ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(entry, run.json) of the study's finished runs; `records`: run.json per entry already read (the TUI's)."""
    records = studies.run_records(store, study) if records is None else records
    return [(e, r) for e, r in zip(study["runs"], records, strict=False)
            if r is not None and r.get("status") == "finished"]


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"n": len(records)}
    for name, key in (("val", "final_avg_val_acc"), ("test", "final_avg_acc")):
        row[name], row[f"{name}_sem"] = studies.mean_sem([r["metrics"].get(key) for r in records])
    return row


def axis_table(store: RunStore, study: dict[str, Any], key: str,
               records: list[dict[str, Any] | None] | None = None) -> list[dict[str, Any]]:
    """The metric against one parameter: per value, mean +- SEM over every finished run with that value (other
    axes and seeds pooled), validation and test, and n; of`: the runs planned with that value."""
    done = _finished(store, study, records)
    values = sorted({json.dumps(e["params"][key]) for e in study["runs"] if key in e.get("params", {})},
                    key=lambda v: (not isinstance(json.loads(v), (int, float)), json.loads(v)
                                   if isinstance(json.loads(v), (int, float)) else v))
    rows = []
    for text in values:
        value = json.loads(text)
        records = [r for e, r in done if e["params"].get(key) == value]
        planned = sum(e["params"].get(key) == value for e in study["runs"])
        rows.append({"value": value, **_summary(records), "of": planned})
    return rows


def best(store: RunStore, study: dict[str, Any], records: list[dict[str, Any] | None] | None = None
         ) -> dict[str, Any] | None:
    """The point with the highest mean selection metric over its seeds (validation unless --select test); None
    until a run has finished with that metric."""
    metric = "val" if study.get("select", "validation") == "validation" else "test"
    by_point: dict[str, list[dict[str, Any]]] = {}
    for entry, record in _finished(store, study, records):
        by_point.setdefault(json.dumps(entry["params"], sort_keys=True), []).append(record)
    scored = [(json.loads(p), _summary(rs)) for p, rs in by_point.items()]
    scored = [(p, s) for p, s in scored if s[metric] is not None]
    if not scored:
        return None
    params, summary = max(scored, key=lambda ps: ps[1][metric])
    return {"params": params, "select": study.get("select", "validation"), **summary}


def so_far(record: dict[str, Any], context: int) -> float | None:
    """A run's validation accuracy over the contexts trained so far, after `context` (what pruning reads)."""
    from core.runs.metrics import run_figures

    rows = record.get("val_matrix") or []
    if len(rows) <= context:
        return None
    return run_figures({"config": record.get("config") or {}}).seen_average(rows[context], context)


def trial_curves(store: RunStore, study: dict[str, Any]) -> dict[int, dict[int, float]]:
    """Per trial: validation accuracy so far after each context, of its first seed that has a validation
    matrix (what a resumed sweep's pruning compares with)."""
    curves: dict[int, dict[int, float]] = {}
    for entry, record in zip(study["runs"], studies.run_records(store, study), strict=False):
        if record is None or entry["trial"] in curves or not record.get("val_matrix"):
            continue
        points = {k: so_far(record, k) for k in range(len(record["val_matrix"]))}
        curves[entry["trial"]] = {k: v for k, v in points.items() if v is not None}
    return curves


def trial_values(store: RunStore, study: dict[str, Any]) -> dict[int, float | None]:
    """Per trial whose runs have all ended and that was not pruned: the mean selection metric over its seeds
    (None: no run finished)."""
    metric = SELECT_METRIC[study.get("select", "validation")]
    records = studies.run_records(store, study)
    out: dict[int, float | None] = {}
    pruned = {int(t) for t in study.get("pruned", {})}
    for trial in sorted({e["trial"] for e in study["runs"]} - pruned):
        mine = [r for e, r in zip(study["runs"], records, strict=False) if e["trial"] == trial]
        if any(r is None or r.get("status") == "running" for r in mine):
            continue
        out[trial] = studies.mean_sem([r["metrics"].get(metric) for r in mine if r.get("status") == "finished"])[0]
    return out


def render(store: RunStore, study: dict[str, Any], fmt: str) -> str:
    """The sweep's tables and choice as markdown or json text (the Rich tables live in the CLI)."""
    chosen = best(store, study)
    tables = {a.partition("=")[0]: axis_table(store, study, a.partition("=")[0]) for a in study["grid"]}
    if fmt == "json":
        return json.dumps({"id": study["id"], "select": study.get("select"), "tables": tables, "best": chosen},
                          indent=2)
    out = []
    for key, rows in tables.items():
        out += [f"| {key} | validation acc (%) | test acc (%) | n |", "|---|---|---|---|"]
        out += [f"| {short(r['value'])} | {studies.pct(r['val'], r['val_sem'])} | "
                f"{studies.pct(r['test'], r['test_sem'])} | {r['n']}/{r['of']} |" for r in rows]
        out.append("")
    out.append(choice_line(chosen))
    return "\n".join(out)


def choice_line(chosen: dict[str, Any] | None) -> str:
    if chosen is None:
        return "best: none yet (no run has finished)"
    split = "validation" if chosen["select"] == "validation" else "test"
    score = chosen["val"] if split == "validation" else chosen["test"]
    score_sem = chosen["val_sem"] if split == "validation" else chosen["test_sem"]
    params = ", ".join(f"{k}={short(v)}" for k, v in chosen["params"].items())
    return (f"best: {params} — {split} acc {studies.pct(score, score_sem)} %, test acc "
            f"{studies.pct(chosen['test'], chosen['test_sem'])} % (n={chosen['n']}); chosen on the {split} split")


# --- Writing the chosen values into a preset ---------------------------------------------------------


def tuned_preset_text(study: dict[str, Any], chosen: dict[str, Any]) -> str:
    """The base preset with the chosen values: a method parameter goes into [method_defaults.<method>] for the
    sweep's scenario only (the other scenarios keep theirs), any other key into its section. The --set values the
    sweep ran under are kept (the value was chosen under them); the validation share the sweep added is not."""
    preset, method, scenario = study["preset"], study["methods"][0], study["scenario"]
    table = load_preset(preset)
    tuned = json.loads(json.dumps(table.get("method_defaults", {})))  # a deep copy
    sets = list(study.get("overrides", []))
    own_method = isinstance(table.get("method"), dict) and table["method"].get("name") == method
    for key, value in chosen["params"].items():
        if key.startswith("method.") and not own_method:
            name = key.removeprefix("method.")
            params = tuned.setdefault(method, {})
            current = params.get(name)
            if not isinstance(current, dict):
                # a scalar held for every scenario keeps holding for the others
                current = {} if current is None else {s: current for s in ("task", "domain", "class")}
            params[name] = {**current, scenario: value}
        else:
            sets.append(f"{key}={toml_text(value)}")
    config = build_config(preset, scenario=scenario, overrides=sets)
    params = ", ".join(f"{k}={short(v)}" for k, v in chosen["params"].items())
    description = (f"{table.get('description', preset)} Tuned by cltui sweep {study['id']} ({scenario}-IL, "
                   f"chosen on the {chosen['select']} split): {params}.")
    return preset_toml(config, description, tuned)


# --- Model-based search ------------------------------------------------------------------------------


class OptunaSearch:
    """Optuna's TPE sampler (seeded) over the axes: ranges as float / int distributions (log where the grid said
    log), lists as categorical ones. Trials a previous session finished are told to it again before it asks."""

    def __init__(self, axes: list[Axis], prune: bool = True):
        try:
            import optuna
        except ImportError:
            raise ConfigError("--search optuna: Optuna is not installed; pip install 'cltui[optuna]'",
                              field="--search") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.keys = optuna, [a.key for a in axes]
        self.reported: dict[int, dict[int, float]] = {}  # per Optuna trial number: context -> value reported
        d = optuna.distributions
        self.distributions = {
            a.key: d.CategoricalDistribution(a.values) if a.low is None
            else d.IntDistribution(int(a.low), int(a.high), log=a.log) if a.integer  # type: ignore[arg-type]
            else d.FloatDistribution(a.low, a.high, log=a.log) for a in axes}
        self.prunes = prune
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SEARCH_SEED))

    def replay(self, sweep: dict[str, Any], values: dict[int, float | None],
               curves: dict[int, dict[int, float]] | None = None) -> None:
        """Tell Optuna the trials of an earlier session: their values, the validation curves pruning compares
        with (`trial_curves`), and the pruned ones as pruned."""
        pruned = sweep.get("pruned", {})
        for trial, value in values.items():
            params = next(e["params"] for e in sweep["runs"] if e["trial"] == trial)
            state = self.optuna.trial.TrialState.COMPLETE if value is not None else self.optuna.trial.TrialState.FAIL
            self.study.add_trial(self.optuna.trial.create_trial(
                params=params, distributions=self.distributions, value=value, state=state,
                intermediate_values=(curves or {}).get(trial, {}) if value is not None else None))
        for trial, record in pruned.items():
            params = next(e["params"] for e in sweep["runs"] if e["trial"] == int(trial))
            self.study.add_trial(self.optuna.trial.create_trial(
                params=params, distributions=self.distributions, state=self.optuna.trial.TrialState.PRUNED,
                intermediate_values={int(k): v for k, v in record["reported"].items()}))

    def report(self, trial: Any, context: int, value: float) -> bool:
        """The validation accuracy so far after `context`; True: the trial is hopeless, stop it.

        Hopeless: below the median of the ended trials' values after that same context, once PRUNE_STARTUP
        trials have ended, and never after the first context (every trial learns one context well; forgetting
        shows from the second on). Optuna's MedianPruner is not used: it compares a trial's best value over its
        steps, and accuracy over the contexts so far falls from context to context for every trial, so the
        first context's would decide."""
        reported = self.reported.setdefault(trial.number, {})
        if context in reported:
            return False  # another seed of the trial reported this context first
        reported[context] = value
        trial.report(value, context)
        if not self.prunes or context == 0:
            return False
        complete = self.optuna.trial.TrialState.COMPLETE
        ended = [t.intermediate_values[context] for t in self.study.get_trials(deepcopy=False)
                 if t.state == complete and context in t.intermediate_values]
        return len(ended) >= PRUNE_STARTUP and value < statistics.median(ended)

    def prune(self, trial: Any) -> None:
        self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)

    def ask(self) -> tuple[Any, dict[str, Any]]:
        trial = self.study.ask(self.distributions)
        return trial, {key: trial.params[key] for key in self.keys}

    def tell(self, trial: Any, value: float | None) -> None:
        if value is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)
