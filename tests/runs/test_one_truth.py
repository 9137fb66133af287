"""One truth: the same records shown by every face give the same figures.

A finished run, runs cancelled after one and after three contexts, a failed run, a joint run, a merge run, a
sine regression, a generation run and a stability-gap run with a curve, written in the real run.json format, read
by `runs list --json`, `runs show --json` and its text, `runs list --format csv`, the TUI's runs table and detail
(Pilot), the paper figure's plotted data and the metrics an MLflow export logs. Each face must show the final
average, the average over the contexts seen, the forgetting and the name of the score that core/runs/metrics.py
computes; a few of them are also worked by hand here, so the one home cannot be wrong in the same way as its faces.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cltui.cli.main import app as cli_app
from cltui.tui.state.formats import fmt_headline, fmt_status
from core.runs.metrics import run_figures
from tests.helpers.fixed_runs import ACC_EWC, config, record, write_run

WIDE = {"COLUMNS": "200", "LINES": "50", "NO_COLOR": "1"}
CURVE = [[0, 0, [0.1, 0.0, 0.0]], [50, 0, [0.95, 0.0, 0.0]], [60, 1, [0.40, 0.3, 0.0]], [100, 1, [0.90, 0.95, 0.0]],
         [110, 2, [0.50, 0.6, 0.2]], [150, 2, [0.88, 0.9, 0.96]]]


def make(name: str, method: dict[str, Any], status: str, acc: list[list[float]], **changes: Any) -> dict[str, Any]:
    cfg = config(method, scenario=changes.pop("scenario", "class"))
    cfg["benchmark"].update(changes.pop("benchmark", {}))
    data = record(f"20260102-0{len(RECORDS)}0000-{name}", cfg, status, acc, total_s=12.5,
                  created="2026-01-02T00:00:00+00:00", finished="2026-01-02T00:01:00+00:00")
    data.update(changes)
    if status != "finished":
        data["metrics"]["final_avg_acc"] = sum(acc[-1]) / len(acc[-1])  # what an older cltui wrote: never shown
    return data


RECORDS: dict[str, dict[str, Any]] = {}
for name, args in {
    "finished": ({"name": "ewc", "lambda": 1e9}, "finished", ACC_EWC),
    "cancelled-1": ({"name": "lwf"}, "cancelled", [[1.0, 0.0, 0.0, 0.0, 0.0]]),
    "cancelled-3": ({"name": "lwf"}, "cancelled", ACC_EWC[:3]),
    "failed": ({"name": "si"}, "failed", ACC_EWC[:2]),
    "joint": ({"name": "joint"}, "finished", [[0.99, 0.98, 0.97, 0.96, 0.95]]),
    "merge": ({"name": "merge"}, "finished", [[0.9, 0.5, 0.7]]),
    "sine": ({"name": "none"}, "finished", [[0.99, -2.0, -1.0], [-0.5, 0.98, -3.0], [-0.5, 0.2, 0.9]]),
    "generation": ({"name": "mergan-ra"}, "finished", ACC_EWC),
    "gap": ({"name": "none"}, "finished", [[0.95, 0.0, 0.0], [0.90, 0.95, 0.0], [0.88, 0.9, 0.96]]),
    "uneven": ({"name": "wa"}, "finished", [[0.9, 0.0, 0.0], [0.6, 0.8, 0.0], [0.5, 0.4, 1.0]]),
}.items():
    extra: dict[str, Any] = {}
    if name == "merge":
        extra = {"benchmark": {"contexts": 3}}
    if name == "sine":
        extra = {"benchmark": {"name": "sine", "contexts": 3, "classes_per_context": 1}, "scenario": "task"}
    if name == "gap":
        extra = {"benchmark": {"contexts": 3}, "acc_curve": CURVE}
    if name == "uneven":  # B3-1: 3 classes first, then 1 per context; the first context is 3/5 of the average
        extra = {"benchmark": {"contexts": 3, "first_context_classes": 3, "classes_per_context": 1}}
    if name == "failed":
        extra = {"error": {"message": "loss is nan in context 2 at iteration 117", "kind": "error", "traceback": ""}}
    if name.startswith("cancelled"):
        extra = {"error": {"message": f"stopped in context {len(args[2])}", "kind": "cancelled", "traceback": ""}}
    RECORDS[name] = make(name, *args, **extra)

BY_HAND = {  # name: (final average over every context, average over the contexts seen, trained, score)
    "finished": (0.6316, 0.6316, "5/5", "accuracy"),
    "cancelled-1": (None, 1.0, "1/5", "accuracy"),  # not 20.0: four contexts were never trained
    "cancelled-3": (None, (0.702 + 0.754 + 0.972) / 3, "3/5", "accuracy"),
    "failed": (None, (0.871 + 0.983) / 2, "2/5", "accuracy"),
    "joint": (0.97, 0.97, "1/1", "accuracy"),
    "merge": (0.7, 0.7, "1/1", "accuracy"),  # every context, not c0's 0.9
    "sine": ((-0.5 + 0.2 + 0.9) / 3, (-0.5 + 0.2 + 0.9) / 3, "3/3", "R²"),
    "generation": (0.6316, 0.6316, "5/5", "accuracy"),
    "gap": ((0.88 + 0.9 + 0.96) / 3, (0.88 + 0.9 + 0.96) / 3, "3/3", "accuracy"),
    "uneven": ((3 * 0.5 + 0.4 + 1.0) / 5, (3 * 0.5 + 0.4 + 1.0) / 5, "3/3", "accuracy"),  # not the plain 0.633
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for data in RECORDS.values():
        write_run(root, data)
    return root


def cli(*args: str | Path) -> str:
    result = CliRunner().invoke(cli_app, [str(a) for a in args], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def close(a: Any, b: Any, tol: float = 1e-5) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= tol


@pytest.mark.parametrize("name", list(BY_HAND))
def test_the_one_home_gives_the_figures_worked_by_hand(name):
    final, seen, trained, score = BY_HAND[name]
    figures = run_figures(RECORDS[name])
    assert close(figures.metrics["final_avg_acc"], final, 1e-9)
    assert close(figures.metrics["seen_avg_acc"], seen, 1e-9)
    assert figures.progress == trained and figures.score == score


def test_cli_faces_agree(folder):
    listed = {d["id"]: d for d in map(json.loads, cli("runs", "list", "--json", "--runs-dir", folder).splitlines())}
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(cli("runs", "list", "--format", "csv", "--runs-dir",
                                                                   folder)))}
    table = cli("runs", "list", "--runs-dir", folder)
    for name, data in RECORDS.items():
        final, seen, trained, score = BY_HAND[name]
        shown = json.loads(cli("runs", "show", data["id"], "--json", "--runs-dir", folder))["metrics"]
        figures = run_figures(data)
        for face in (listed[data["id"]], shown, {k: float(v) if v else None for k, v in rows[data["id"]].items()
                                                   if k in ("final_avg_acc", "seen_avg_acc", "avg_forgetting")}):
            assert close(face["final_avg_acc"], final), (name, face)
            assert close(face["seen_avg_acc"], seen), (name, face)
        assert close(shown["avg_forgetting"], figures.metrics["avg_forgetting"]), name
        assert close(rows[data["id"]]["avg_forgetting"] or None, figures.metrics["avg_forgetting"]), name
        assert listed[data["id"]]["trained"] == rows[data["id"]]["trained"] == trained
        assert listed[data["id"]]["score"] == rows[data["id"]]["score"] == score
        # the text faces: the headline as the runs table writes it, the figure line as runs show does
        assert fmt_headline(figures) in table, name
        text = cli("runs", "show", data["id"], "--runs-dir", folder)
        if score == "R²":
            assert f"final avg R² {seen:.3f}" in text and "%" not in text.split("R² (x100)")[-1].split("total")[0]
        elif final is None:
            assert f"avg acc seen ({trained}) {100 * seen:.1f}%" in text, text
        else:
            assert f"final avg acc {100 * final:.1f}%" in text, text
        assert "None samples/s" not in text


def test_cli_names_a_merge_row_all_and_an_early_end_by_what_it_trained(folder):
    merge = cli("runs", "show", RECORDS["merge"]["id"], "--runs-dir", folder)
    assert "all" in merge and "70.0" in merge and "99.2" not in merge
    table = cli("runs", "list", "--runs-dir", folder)
    assert "cancelled 1/5" in table and "100.0 seen" in table and "20.0" not in table


@pytest.mark.anyio
async def test_tui_runs_table_and_detail_agree(folder, tui):
    from textual.widgets import DataTable, Static

    from cltui.tui.screens.detail import DetailScreen, matrix_rows

    pilot = await tui.start(folder, size=(200, 50))
    app = pilot.app
    details: dict[str, str] = {}
    table = app.screen.query_one("#runs", DataTable)
    cells = {str(row.key.value): [str(c) for c in table.get_row(row.key)] for row in table.ordered_rows}
    for name in ("cancelled-1", "merge", "sine", "failed"):
        app.push_screen(DetailScreen(folder / RECORDS[name]["id"]))
        for _ in range(40):
            await pilot.pause(0.05)
            summary = str(app.screen.query_one("#summary", Static).render())
            if RECORDS[name]["id"] in summary:
                break
        details[name] = summary
        app.pop_screen()
        await pilot.pause()

    for name, data in RECORDS.items():
        figures = run_figures(data)
        row = " | ".join(cells[data["id"]])
        assert fmt_headline(figures) in row, (name, row)
        assert fmt_status(data["status"], figures) in row, (name, row)
    assert "avg acc seen (1/5) 100.0%" in details["cancelled-1"]
    assert "avg acc seen (2/5) 92.7%" in details["failed"]
    assert "final avg acc 70.0%" in details["merge"] and "99.2" not in details["merge"]
    assert "final avg R² 0.200" in details["sine"] and "%" not in details["sine"].split("\n")[2]
    _, rows = matrix_rows(RECORDS["merge"])
    assert [c.plain for c in rows[0]][0] == "all" and rows[0][-3].plain == "70.0"


def test_paper_figures_plot_the_same_averages(folder):
    pytest.importorskip("matplotlib")
    from core.reporting.figures import context_curves_panel, final_bars_panel, group_runs, matplotlib_pyplot

    plt = matplotlib_pyplot()
    for name in ("cancelled-3", "finished", "gap"):
        fig, ax = plt.subplots()
        context_curves_panel(RECORDS[name])(ax)
        average = [line for line in ax.lines if line.get_label() == "average (seen)"][0]
        expected = run_figures(RECORDS[name]).averages(RECORDS[name]["acc_matrix"])
        assert [round(y, 6) for y in average.get_ydata()] == [round(100 * a, 6) for a in expected]
        plt.close(fig)
    fig, ax = plt.subplots()
    records = [RECORDS[n] for n in ("finished", "merge", "cancelled-1")]
    final_bars_panel(group_runs(records), {})(ax)
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == sorted([round(100 * 0.6316, 6), round(100 * 0.7, 6)])  # the cancelled run has no final bar
    plt.close(fig)


def test_mlflow_logs_the_same_figures(folder, tmp_path):
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    names = ("cancelled-1", "merge", "gap")
    cli("export", "mlflow", *(RECORDS[n]["id"] for n in names), "--uri", uri, "--runs-dir", folder)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    logged = {r.data.tags.get("cltui.run_id"): r.data.metrics for r in runs}
    for name in names:
        metrics = logged[RECORDS[name]["id"]]
        final, seen, _, _ = BY_HAND[name]
        assert close(metrics.get("final_avg_acc"), final), (name, metrics)
        assert close(metrics.get("seen_avg_acc"), seen), (name, metrics)
    assert close(logged[RECORDS["merge"]["id"]]["avg_acc"], 0.7)  # the row's average is over every context


def test_a_class_il_run_shows_its_old_and_new_classes(folder):
    """After c2 of B3-1 the old classes are c0's three and c1's one: (3 x 50 + 40) / 4 = 47.5%, the new c2 100%."""
    out = cli("runs", "show", RECORDS["uneven"]["id"], "--runs-dir", folder)
    def cells(line: str) -> list[str]:
        return line.replace("┃", " ").replace("│", " ").split()

    header = next(line for line in out.splitlines() if "avg seen" in line)
    assert cells(header)[-2:] == ["old", "new"]
    last = next(line for line in out.splitlines() if line.strip().startswith("c2"))
    assert cells(last)[-3:] == ["58.0", "47.5", "100.0"]
    assert "final avg acc 58.0%" in out
