"""Properties of the run store and the study files under any content a damaged disk, a crash or a hand edit
can leave: random bytes, random JSON values, and mutations of a real run.json / study file (keys dropped,
values replaced by random JSON). A reader either gets the typed record or a StoreError (one line for the
user), never another exception; a listing never stops; an id never names a path outside the runs folder.

Each property runs ~200 examples with hypothesis; no torch (the records are built by core.runs.record itself).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from core.runs.paths import StoreError, child_name
from core.runs.record import RunRecord, read_record
from core.runs.store import RunStore
from core.studies import study as studies
from tests.helpers.runs import TINY, config

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- what a file may hold -----------------------------------------------------------------------------------

def json_values(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    keys = keys if keys is not None else st.text(max_size=8)
    scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
               | st.sampled_from(["running", "finished", "failed", "cancelled", "none", "class", "[/x]", ""]))
    return st.recursive(scalars,
                        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=4),
                        max_leaves=16)


# Keys with a lone surrogate: json.dumps writes them as "\ud800" escapes, which json.loads turns back into
# them.
SURROGATE_KEYS = st.text(max_size=6) | st.sampled_from(["\ud800", "\udfff", "a\udc80b"])


def real_record() -> dict[str, Any]:
    """A run.json as the trainer writes it: a finished tiny run with five rows, metrics and timing."""
    from core.runs.metrics import summarize
    from core.runs.record import ContextRow

    record = RunRecord.new("20260101-000000-split-digits-class-none-s0", "split-digits", config().to_dict(),
                           {"cltui": "0.1.0", "torch": "2", "python": "3.11", "device": "cpu", "host": "h"})
    record.acc_init = [0.1, 0.0, 0.2, 0.0, 0.1]
    matrix: list[list[float]] = []
    for k in range(5):
        row = [round(0.99 - 0.2 * (k - j), 6) if j <= k else 0.0 for j in range(5)]
        matrix.append(row)
        record.context_completed(ContextRow(index=k, classes=[2 * k, 2 * k + 1], train_s=0.1, iterations=20,
                                            final_loss=0.05, elapsed_s=0.2 * (k + 1)), row,
                                 summarize(matrix, record.acc_init))
    record.end("finished", None, summarize(matrix, record.acc_init),
               {"total_s": 1.5, "train_s": 0.5, "eval_s": 0.1, "samples_per_s": 25000.0})
    return record.to_dict()


REAL = real_record()


def real_study(run_ids: list[str]) -> dict[str, Any]:
    return {"schema": 1, "id": "20260101-000000-split-digits-class", "created": "2026-01-01T00:00:00+00:00",
            "finished": None, "preset": "split-digits", "scenario": "class", "methods": ["none", "er"],
            "seeds": 2, "overrides": list(TINY), "jobs": 1,
            "runs": [{"method": m, "seed": s,
                      "run_id": run_ids[(2 * i + s) % len(run_ids)] if run_ids else None}
                     for i, m in enumerate(["none", "er"]) for s in range(2)]}


def paths_in(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value: dict keys and list indexes, nested."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from paths_in(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,)
            yield from paths_in(v, prefix + (i,))


@st.composite
def mutations(draw: st.DrawFn, base: dict[str, Any], values: st.SearchStrategy[Any] | None = None) -> Any:
    """`base` with one to four changes: a key dropped (an item removed), or a value replaced by random
    JSON."""
    values = values if values is not None else json_values()
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        places = list(paths_in(data))
        if not places:
            break
        *parents, last = draw(st.sampled_from(places))
        node = data
        for p in parents:
            node = node[p]
        if draw(st.booleans()):
            del node[last]
        else:
            node[last] = draw(values)
    return data


def contents(values: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[bytes | None]:
    """What a run.json may hold: random bytes, any JSON value, a mutated real record, the real record cut
    short; None stands for a run.json that is a folder."""
    as_json = st.one_of(json_values(), mutations(REAL, values), st.just(REAL)).map(
        lambda v: json.dumps(v).encode())
    cut = st.integers(0, len(json.dumps(REAL))).map(lambda n: json.dumps(REAL).encode()[:n])
    return st.one_of(st.binary(max_size=300), as_json, cut, st.none())


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("props")


class Scratch:
    """A fresh folder per hypothesis example (function-scoped fixtures are not reset between examples)."""

    def __init__(self, base: Path):
        self.path = Path(tempfile.mkdtemp(dir=base))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def write_run(root: Path, name: str, content: bytes | None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    if content is None:
        (folder / "run.json").mkdir()
    else:
        (folder / "run.json").write_bytes(content)
    return folder


# --- run.json -----------------------------------------------------------------------------------------------

def reads_or_says_why(folder: Path) -> RunRecord | None:
    try:
        record = read_record(folder)
    except StoreError as e:
        assert str(e) and "\n" not in str(e)  # one line for the user
        event("StoreError")
        return None
    assert isinstance(record, RunRecord)
    event("RunRecord")
    return record


@PROPERTY
@given(content=st.binary(max_size=2000))
def test_read_record_of_random_bytes_is_a_record_or_a_store_error(base, content):
    with Scratch(base) as root:
        reads_or_says_why(write_run(root, "r", content))


@PROPERTY
@given(value=json_values(SURROGATE_KEYS))
def test_read_record_of_any_json_value_is_a_record_or_a_store_error(base, value):
    with Scratch(base) as root:
        reads_or_says_why(write_run(root, "r", json.dumps(value).encode()))


@PROPERTY
@given(data=mutations(REAL))
def test_a_mutated_run_json_reads_as_a_record_the_faces_can_use_or_a_store_error(base, data):
    with Scratch(base) as root:
        record = reads_or_says_why(write_run(root, "r", json.dumps(data).encode()))
        if record is not None:
            as_dict = record.to_dict()  # what every face reads
            json.dumps(as_dict)
            assert as_dict["id"] == data["id"] and as_dict["status"] == data["status"]
            assert isinstance(as_dict["acc_matrix"], list) and isinstance(as_dict["metrics"], dict)
            assert isinstance(as_dict["config"]["method"]["name"], str)


@PROPERTY
@given(folders=st.lists(contents(), max_size=6))
def test_runs_list_never_raises_and_has_one_entry_per_run_folder(base, folders):
    with Scratch(base) as root:
        for k, content in enumerate(folders):
            write_run(root, f"r{k}", content)
        (root / "studies").mkdir()  # not a run
        entries = RunStore(root).list()
        assert [e.id for e in entries] == [f"r{k}" for k in range(len(folders))]
        for e in entries:
            assert (e.data is None) == (e.error is not None) == (e.status == "unreadable")


@PROPERTY
@given(folders=st.lists(contents(json_values(SURROGATE_KEYS)), max_size=6))
@example(folders=[json.dumps({**REAL, "extra": {"\ud800": 1}}).encode()])
def test_runs_list_never_raises_even_with_lone_surrogates_in_keys(base, folders):
    with Scratch(base) as root:
        for k, content in enumerate(folders):
            write_run(root, f"r{k}", content)
        entries = RunStore(root).list()
        assert [e.id for e in entries] == [f"r{k}" for k in range(len(folders))]


# --- study files -----------------------------------------------------------------------------------------

# Records a study's runs may point at: a finished one with any finite metrics, or damaged content.
FINITE = st.floats(allow_nan=False, allow_infinity=False) | st.none()


@st.composite
def study_runs(draw: st.DrawFn, metric_values: st.SearchStrategy[Any] = FINITE) -> bytes | None:
    if draw(st.booleans()):
        metrics = {k: draw(metric_values) for k in ("final_avg_acc", "avg_forgetting", "bwt")}
        timing = {**REAL["timing"], "total_s": draw(metric_values)}
        return json.dumps({**REAL, "metrics": metrics, "timing": timing,
                           "config": {**REAL["config"],
                                      "method": {"name": draw(st.sampled_from(["none", "er"]))}},
                           "status": draw(st.sampled_from(["finished", "failed"]))}).encode()
    return draw(contents())


def study_contents(run_ids: list[str]) -> st.SearchStrategy[bytes]:
    good = real_study(run_ids)
    as_json = st.one_of(json_values(), mutations(good), st.just(good)).map(lambda v: json.dumps(v).encode())
    return st.one_of(st.binary(max_size=300), as_json)


def check_study(root: Path, study_id: str) -> None:
    """Load a study; when it loads, everything the CLI and the TUI do with it works."""
    store = RunStore(root)
    try:
        study = studies.load(store, study_id)
    except StoreError as e:
        assert str(e)
        event("study: StoreError")
        return
    event("study: loaded")
    for entry in study["runs"]:
        if entry.get("run_id") is not None:
            assert child_name(entry["run_id"]) == entry["run_id"]
    records = studies.run_records(store, study)
    assert len(records) == len(study["runs"])
    rows = studies.table(store, study)
    assert [r["method"] for r in rows] == study["methods"]
    for fmt in ("markdown", "csv", "json"):
        studies.render(rows, fmt)


@PROPERTY
@given(data=st.data(), runs=st.lists(study_runs(), max_size=4))
def test_a_study_file_loads_with_a_usable_table_or_gives_a_store_error(base, data, runs):
    with Scratch(base) as root:
        ids = [write_run(root, f"r{k}", content).name for k, content in enumerate(runs)]
        (root / "studies").mkdir()
        content = data.draw(study_contents(ids))
        (root / "studies" / "s.json").write_bytes(content)
        check_study(root, "s")
        listed = studies.list_studies(RunStore(root))
        assert len(listed) == 1
        assert ("error" in listed[0]) or listed[0]["runs"] is not None


@PROPERTY
@given(files=st.lists(st.binary(max_size=200) | json_values().map(lambda v: json.dumps(v).encode())
                      | mutations(real_study(["r0"])).map(lambda v: json.dumps(v).encode()), max_size=5))
def test_studies_list_never_raises_and_has_one_entry_per_study_file(base, files):
    with Scratch(base) as root:
        (root / "studies").mkdir()
        for k, content in enumerate(files):
            (root / "studies" / f"s{k}.json").write_bytes(content)
        listed = studies.list_studies(RunStore(root))
        assert len(listed) == len(files)
        for entry in listed:
            if "error" in entry:  # one "unreadable" row, named after its file
                assert entry["id"] in {f"s{k}" for k in range(len(files))} and entry["runs"] == []
            else:
                assert isinstance(entry["runs"], list) and isinstance(entry["methods"], list)


@PROPERTY
@given(runs=st.lists(study_runs(st.floats() | st.none()), min_size=1, max_size=4))
@example(runs=[json.dumps({**REAL, "metrics": {"final_avg_acc": float("nan")}}).encode(),
               json.dumps({**REAL, "metrics": {"final_avg_acc": 0.5}}).encode()])
def test_a_study_table_copes_with_nan_and_infinite_metrics(base, runs):
    with Scratch(base) as root:
        ids = [write_run(root, f"r{k}", content).name for k, content in enumerate(runs)]
        study = real_study(ids)
        study["methods"] = ["none"]
        study["runs"] = [{"method": "none", "seed": k, "run_id": run_id} for k, run_id in enumerate(ids)]
        (root / "studies").mkdir()
        (root / "studies" / "s.json").write_text(json.dumps(study))
        check_study(root, "s")


# --- ids -------------------------------------------------------------------------------------------------

PIECES = ["..", ".", "/", "//", "\\", "a", "run", "r0", "link-in", "link-out", "~", " ", "é", "名", "\udc80",
          "\n", "-", "*", "?"]


def names(extra: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=20), st.lists(st.sampled_from(PIECES + extra), max_size=6).map("".join))


@pytest.fixture(scope="module")
def runs_root(base: Path) -> Path:
    """A runs folder with two runs, a link to one of them, a link out, and a sibling folder."""
    root = base / "ids" / "runs"
    for name in ("r0", "r1-b"):
        write_run(root, name, json.dumps({**REAL, "id": name}).encode())
    outside = base / "ids" / "outside"
    write_run(outside.parent, outside.name, json.dumps(REAL).encode())
    (root / "link-in").symlink_to(root / "r0", target_is_directory=True)
    (root / "link-out").symlink_to(outside, target_is_directory=True)
    return root


@PROPERTY
@given(name=names(["\0"]) | st.text())
def test_child_name_returns_a_plain_child_or_a_store_error(name):
    root = "/srv/runs"
    try:
        got = child_name(name)
    except StoreError:
        return
    assert got == name
    assert os.path.dirname(os.path.normpath(os.path.join(root, got))) == root


def from_a_command_line(s: str) -> bool:
    """Whether `s` can come from argv: no NUL, lone surrogates only as undecodable bytes (\\udc80-\\udcff)."""
    return "\0" not in s and all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in s)


def inside(path: Path, root: Path) -> bool:
    return path.parent.resolve() == root.resolve()


@PROPERTY
@given(data=st.data(), allow_link=st.booleans())
def test_resolve_returns_a_child_of_the_runs_folder_or_a_store_error(runs_root, data, allow_link):
    # What a command line can pass: no NUL, lone surrogates only as undecodable bytes.
    name = data.draw(names([str(runs_root), str(runs_root.parent), str(runs_root) + "/", "/etc", "/"])
                     .filter(from_a_command_line))
    before = sorted(os.listdir(runs_root))
    try:
        path = RunStore(runs_root).resolve(name, allow_link=allow_link)
    except StoreError:
        pass
    else:
        assert inside(path, runs_root), (name, path)
        if path.is_symlink() and not allow_link:
            assert inside(path.resolve(), runs_root)  # followed only when it stays in
    assert sorted(os.listdir(runs_root)) == before


@PROPERTY
@given(name=names(["\0", "\ud800", "a" * 300]))
@example(name="a" * 300)
def test_resolve_never_raises_anything_but_store_error(runs_root, name):
    try:
        path = RunStore(runs_root).resolve(name)
    except StoreError:
        return
    assert inside(path, runs_root)
