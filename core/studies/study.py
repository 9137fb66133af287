"""Studies: every method x seed of one preset and scenario, as ordinary runs, and the table a paper is
made of (mean +- standard error over seeds, beside the published number where the protocol matches).

A study file `<runs-dir>/studies/<study-id>.json` records the study's settings and its run ids; the runs
themselves are ordinary run folders. Torch-free: the CLI plans, schedules and summarises studies; the
worker processes train.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from core.files import slug, write_json_atomic
from core.runs.lock import pid_alive
from core.runs.metrics import mean_sem, memory_mb
from core.runs.paths import StoreError, UnsafePathError, child_name, inside, read_bounded
from core.runs.record import now_iso, read_run_json
from core.runs.store import RunStore
from core.schema.config import ConfigError, RunConfig
from core.schema.presets import build_config

SCHEMA = 1

# Final average accuracy (%) published for protocols our presets reproduce (docs/reference.md).
PUBLISHED: dict[tuple[str, str], dict[str, float]] = {
    # van de Ven's split-MNIST tutorial figure (approximate), class-IL
    ("split-mnist", "class"): {"none": 20, "ewc": 20, "si": 23, "lwf": 22, "er": 89, "dgr": 90, "icarl": 93,
                               "gen-classifier": 93.5, "joint": 98},
    # van de Ven et al. 2022, Table 3 (conv layers pre-trained on CIFAR-10; ours train from scratch)
    ("split-cifar100", "task"): {"none": 61.43, "joint": 78.78, "ewc": 76.34, "si": 74.84, "lwf": 78.59,
                                 "dgr": 71.40, "bir": 79.14, "er": 76.43, "agem": 73.30},
    ("split-cifar100", "domain"): {"none": 18.42, "joint": 46.85, "ewc": 21.65, "si": 22.58, "lwf": 29.45,
                                   "dgr": 20.52, "bir": 30.26, "er": 39.00, "agem": 20.51},
    ("split-cifar100", "class"): {"none": 7.71, "joint": 49.78, "ewc": 8.24, "si": 8.10, "lwf": 25.57,
                                  "dgr": 9.67, "bir": 25.81, "er": 37.57, "agem": 20.38, "gen-classifier": 46.83,
                                  "icarl": 37.83},
}


def studies_dir(store: RunStore) -> Path:
    return store.root / "studies"


def study_files(store: RunStore) -> list[Path]:
    """The study files: regular `*.json` files of a studies folder that is a real folder of the runs folder
    (links and FIFOs left out); UnsafePathError when `studies` itself is a link or not a folder."""
    folder = inside(store.root, "studies", action="read")
    try:
        paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    except OSError:
        return []
    return [p for p in paths if os.path.isfile(p) and not p.is_symlink()]


class StudyRun(BaseModel):
    model_config = ConfigDict(extra="allow")

    method: str
    seed: int
    run_id: str | None = None

    @field_validator("run_id")
    @classmethod
    def _plain_child(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                child_name(v)
            except StoreError as e:
                raise ValueError(str(e)) from None
        return v


class Study(BaseModel):
    """A study file, typed: a file that is not one becomes one "unreadable" entry, and its run ids can only
    name plain children of the runs folder."""

    model_config = ConfigDict(extra="allow")

    id: str
    created: str | None = None
    finished: str | None = None
    preset: str | None = None
    scenario: str
    methods: list[str]
    seeds: int
    overrides: list[str] = []
    jobs: int | None = None
    runs: list[StudyRun]
    wall_s: list[float] = []


def parse_study(data: Any, where: Path) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise StoreError(f"{where}: not a cltui study file")
    try:
        study = Study.model_validate({k: v for k, v in data.items() if k != "schema"})
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        at = ".".join(str(p) for p in err["loc"]) or "the top level"
        raise StoreError(f"{where}: unreadable ({at}: {err['msg']})") from None
    child_name(study.id, "study")  # it names the file the study is saved back to
    out = {"schema": SCHEMA, **study.model_dump(mode="json")}
    try:  # text no UTF-8 can hold (a lone surrogate, written as \\ud800) breaks every printer later
        json.dumps(out, ensure_ascii=False).encode()
    except UnicodeError as e:
        raise StoreError(f"{where}: unreadable ({str(e)[:120]})") from None
    return out


def plan(preset: str, methods: list[str], scenario: str, seeds: int, overrides: list[str],
         jobs: int) -> tuple[dict[str, Any], list[RunConfig]]:
    """The study record and one validated config per method x seed (all checked before anything starts)."""
    if not methods:
        raise ConfigError("--methods: name at least one method, e.g. --methods none,er")
    if seeds < 1:
        raise ConfigError("--seeds: at least 1")
    configs = []
    for method in methods:
        for seed in range(seeds):
            try:
                configs.append(build_config(preset, method=method, scenario=scenario, seed=seed,
                                            overrides=overrides))
            except ConfigError as e:
                raise ConfigError(f"--methods {method}: {e}") from None
    first = configs[0]
    study = {
        "schema": SCHEMA, "id": f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(first.preset or 'study')}-{scenario}",
        "created": now_iso(), "finished": None, "preset": first.preset, "scenario": scenario,
        "methods": methods, "seeds": seeds, "overrides": overrides, "jobs": jobs,
        "runs": [{"method": c.method.name, "seed": c.train.seed, "run_id": None} for c in configs],
    }
    return study, configs


def save(store: RunStore, study: dict[str, Any]) -> Path:
    path = inside(store.root, "studies", f"{child_name(study['id'], 'study')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(inside(store.root, "studies", path.name), study)  # checked again: made by now
    return path


def study_file(store: RunStore, study_id: str) -> Path:
    """The file of a study by id or unique id prefix: a regular file of the runs folder's studies folder, never
    a link and never a path (StoreError says why not). Every study id from a command line or a screen is
    resolved here, for reading and for deleting alike."""
    child_name(study_id, "study")
    folder = studies_dir(store)
    exact = folder / f"{study_id}.json"
    if exact.is_symlink():
        raise StoreError(f"study {study_id!r}: {exact} is a symbolic link; cltui does not follow it")
    files = study_files(store)
    candidates = [p for p in files if p.stem == study_id] or [p for p in files if p.stem.startswith(study_id)]
    if len(candidates) != 1:
        what = "ambiguous" if candidates else "not found"
        raise StoreError(f"study {study_id!r} {what} in {folder}; `cltui studies list` shows the studies there")
    return candidates[0]


def load(store: RunStore, study_id: str) -> dict[str, Any]:
    """A study by id or unique id prefix, read through the typed `Study`; StoreError says why not."""
    candidates = [study_file(store, study_id)]
    try:
        study = json.loads(read_bounded(candidates[0]))
    except UnsafePathError:
        raise
    except (OSError, ValueError, RecursionError) as e:
        raise StoreError(f"{candidates[0]}: unreadable ({str(e)[:120]})") from None
    return parse_study(study, candidates[0])


def list_studies(store: RunStore) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        paths = study_files(store)
    except StoreError as e:  # the studies folder is a link: one unreadable entry, not the end of the listing
        return [{"id": "studies", "error": str(e), "runs": []}]
    for path in paths:
        try:
            out.append(load(store, path.stem))
        except StoreError as e:
            out.append({"id": path.stem, "error": str(e), "runs": []})
    return out


def removal(store: RunStore, study_id: str, with_runs: bool = False) -> tuple[Path, list[Path]]:
    """What deleting a study removes, all checked before anything is: its file and, `with_runs`, the folders of
    its runs that are still there (resolved as `cltui runs rm` resolves them). StoreError, and nothing removed,
    for an id that names no study file of this runs folder (a path, a link), a study whose run is still running,
    and, `with_runs`, a study file that cannot be read or a run folder that is not a cltui run."""
    path = study_file(store, study_id)
    try:
        study = load(store, path.stem)
    except UnsafePathError:
        raise
    except StoreError as e:
        if with_runs:
            raise StoreError(f"{e}; its runs cannot be read from it, so nothing was removed (the file alone can "
                             f"be)") from None
        return path, []  # a damaged study file: removing it is what a user wants
    folders: list[Path] = []
    for entry in study["runs"]:
        run_id = entry.get("run_id")
        if not run_id or not os.path.lexists(store.root / run_id):
            continue  # never started, or deleted already
        try:
            record: dict[str, Any] | None = read_run_json(store.run_dir(run_id))
        except StoreError:
            record = None
        if record is not None and record.get("status") == "running" and pid_alive(record.get("pid")):
            raise StoreError(f"study {path.stem}: its run {run_id} is still running (pid {record['pid']}); stop "
                             f"it before removing the study")
        if with_runs:
            folder = store.resolve(run_id, allow_link=True)
            if folder not in folders:
                folders.append(folder)
    return path, folders


def remove(store: RunStore, path: Path, folders: list[Path], done: Callable[[Path], None] | None = None) -> None:
    """Delete what `removal` named: the run folders first (through `RunStore.remove`, which removes a link
    itself and refuses a running run), then the study file, so that a failure part-way leaves a study that can
    be removed again. `done(path)` after each deletion."""
    for folder in folders:
        if os.path.lexists(folder):
            store.remove(folder.name)
            if done is not None:
                done(folder)
    inside(store.root, "studies", path.name, action="delete").unlink(missing_ok=True)
    if done is not None:
        done(path)


def run_records(store: RunStore, study: dict[str, Any]) -> list[dict[str, Any] | None]:
    records: list[dict[str, Any] | None] = []
    for entry in study["runs"]:
        try:
            records.append(read_run_json(store.run_dir(entry["run_id"])) if entry.get("run_id") else None)
        except StoreError:
            records.append(None)
    return records


def table(store: RunStore, study: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per method: finished runs, mean +- SEM of final average accuracy, forgetting and BWT, mean time
    per run, and the published figure where the preset and scenario match a published protocol."""
    return table_of(study, run_records(store, study))


# a class-IL study's: the final accuracy on the old and on the newest classes, and the task-IL accuracy of the same
# networks (each context on its own classes)
OLD_NEW = ("old_acc", "new_acc", "task_acc", "nme_acc", "cnn_acc")


def old_new_text(row: dict[str, Any]) -> str:
    """`62.1/88.0`: a study row's mean final accuracy on the old classes and on the newest (class-IL), in %."""
    old, new = row.get("old_acc"), row.get("new_acc")
    return "–" if old is None or new is None else f"{100 * old:.1f}/{100 * new:.1f}"


def pct(value: float | None, sem: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.2f}" + (f" ± {100 * sem:.2f}" if sem is not None else "")


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """The table as markdown, csv or json text (the Rich table lives in the CLI)."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    old_new = any("old_acc" in r for r in rows)
    header = ["method", "runs", "final avg acc (%)", "avg forgetting (%)", "BWT (%)",
              *(["old / new classes (%)", "task-IL of the same runs (%)"] if old_new else []), "memory (MB)",
              "time per run (s)", "published (%)"]
    lines = [[r["method"], f"{r['runs']}/{r['of']}", pct(r["final_avg_acc"], r["final_avg_acc_sem"]),
              pct(r["avg_forgetting"], r["avg_forgetting_sem"]), pct(r["bwt"], r["bwt_sem"]),
              *([old_new_text(r), pct(r.get("task_acc"), r.get("task_acc_sem"))] if old_new else []),
              "–" if r.get("memory_mb") is None else f"{r['memory_mb']:.2f}",
              "–" if r["time_s"] is None else f"{r['time_s']:.1f}",
              "–" if r["published"] is None else f"{r['published']:g}"] for r in rows]
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        extra = [f"{key}{sem}" for key in OLD_NEW for sem in ("", "_sem")] if old_new else []
        writer.writerow(["method", "runs", "finished", "final_avg_acc", "final_avg_acc_sem", "avg_forgetting",
                         "avg_forgetting_sem", "bwt", "bwt_sem", *extra, "memory_mb", "time_s", "published"])
        for r in rows:
            writer.writerow([r["method"], r["of"], r["runs"], r["final_avg_acc"], r["final_avg_acc_sem"],
                             r["avg_forgetting"], r["avg_forgetting_sem"], r["bwt"], r["bwt_sem"],
                             *(r.get(key) for key in extra), r.get("memory_mb"), r["time_s"], r["published"]])
        return buffer.getvalue()
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def table_of(study: dict[str, Any], records: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """`table`'s rows from run records already read (`records[i]` is the run.json of `study["runs"][i]`, or
    None): for a caller that follows a study and re-reads only the run.json files that changed (the TUI)."""
    published = PUBLISHED.get((study.get("preset"), study.get("scenario")), {})
    rows = []
    for method in study["methods"]:
        done = [r for e, r in zip(study["runs"], records, strict=False)
                if e["method"] == method and r is not None and r.get("status") == "finished"]
        row: dict[str, Any] = {"method": method, "runs": len(done),
                               "of": sum(e["method"] == method for e in study["runs"])}
        for key in ("final_avg_acc", "avg_forgetting", "bwt", *(OLD_NEW if study.get("scenario") == "class" else ())):
            values = [(r.get("metrics") or {}).get(key) for r in done]
            row[key], row[f"{key}_sem"] = mean_sem([v for v in values if v is not None])
        row["memory_mb"], _ = mean_sem([memory_mb(r) for r in done])
        times = [(r.get("timing") or {}).get("total_s") for r in done]
        times = [t for t in times if isinstance(t, (int, float))]
        row["time_s"] = statistics.mean(times) if times else None
        row["published"] = published.get(method)
        rows.append(row)
    return rows
