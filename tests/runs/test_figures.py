"""`cltui plot` and the TUI's `p`: real matplotlib files (PDF, PNG, SVG) from real runs, opened and checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cltui.cli.main import app
from core.reporting.figures import COLUMN_WIDTH, PANEL_HEIGHT, group_runs, method_label, write_figure
from core.runs.record import read_run_json
from tests.helpers.studies import train_study
from tests.helpers.tui import settle_workers

WIDE = {"COLUMNS": "200"}


def cli(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


def pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", path.read_bytes()))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Three split-digits methods x two seeds, trained for real."""
    root = tmp_path_factory.mktemp("figures") / "runs"
    return root, train_study(root, ["none", "ewc", "er"], 2)


def test_plot_of_a_study_writes_a_multipage_pdf_a_png_and_an_svg(study, tmp_path):
    root, plan = study
    for suffix in ("pdf", "png", "svg"):
        result = cli("plot", plan["id"], "--out", str(tmp_path / f"study.{suffix}"), "--runs-dir", str(root))
        assert result.exit_code == 0, result.output
        assert f"wrote {tmp_path / f'study.{suffix}'}" in result.output

    pdf = tmp_path / "study.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    # the average accuracy per context, the final accuracy bars, then each method's mean accuracy matrix
    assert pdf_pages(pdf) == 2 + 3
    assert b"/FontFile2" in pdf.read_bytes()  # TrueType fonts embedded (Type 42), as journals ask

    with Image.open(tmp_path / "study.png") as png:
        assert png.format == "PNG"
        assert png.size == (round(2 * COLUMN_WIDTH * 300), round(PANEL_HEIGHT * 300))  # two panels, 300 dpi

    svg = ET.parse(tmp_path / "study.svg").getroot()
    assert svg.tag.endswith("svg") and svg.get("width") == f"{2 * COLUMN_WIDTH * 72:g}pt"
    text = (tmp_path / "study.svg").read_text()
    for name in ("None", "EWC", "ER", "split-digits, class-IL", "mean ± SEM, 2 runs each"):
        assert name in text  # text stays text: method names as the papers write them, the title


def test_plot_of_one_run_is_its_matrix_and_context_curves(study, tmp_path):
    root, plan = study
    run_id = plan["runs"][-1]["run_id"]
    result = cli("plot", run_id, "--out", str(tmp_path / "run.pdf"), "--runs-dir", str(root))
    assert result.exit_code == 0, result.output
    assert pdf_pages(tmp_path / "run.pdf") == 2
    result = cli("plot", run_id, "--out", str(tmp_path / "sub" / "run.png"), "--dpi", "100", "--runs-dir", str(root))
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "sub" / "run.png") as png:
        assert png.size == (round(2 * COLUMN_WIDTH * 100), round(PANEL_HEIGHT * 100))


def test_plot_of_several_runs_groups_them_by_method(study, tmp_path):
    root, plan = study
    ids = [e["run_id"] for e in plan["runs"] if e["method"] in ("none", "er")]
    result = cli("plot", *ids, "--out", str(tmp_path / "some.svg"), "--title", "two methods", "--runs-dir", str(root))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "some.svg").read_text()
    assert "two methods" in text and "ER" in text and "EWC" not in text


def test_runs_of_one_method_with_other_settings_are_told_apart():
    base = {"config": {"preset": "split-digits", "scenario": "class", "train": {"seed": 0},
                       "method": {"name": "ewc", "lambda": 1e9}}, "acc_matrix": [[1.0]]}
    other = {"config": {**base["config"], "method": {"name": "ewc", "lambda": 100.0}}, "acc_matrix": [[1.0]]}
    seed = {"config": {**base["config"], "train": {"seed": 1}}, "acc_matrix": [[1.0]]}
    groups = group_runs([base, other, seed, {"config": {"method": {"name": "derpp"}}}])
    assert [(g.label, len(g.records)) for g in groups] == [("EWC (λ=100)", 1), ("EWC (λ=1e+09)", 2), ("DER++", 1)]
    assert [method_label(m) for m in ("agem", "icarl", "bir", "lwf", "new-method")] == \
        ["A-GEM", "iCaRL", "BI-R", "LwF", "new-method"]


@pytest.mark.parametrize("args, words", [
    (["--out", "figure.doc"], ["--out", ".pdf, .png or .svg"]),
    (["--out", "figure"], ["--out", ".pdf"]),
], ids=["doc", "no-suffix"])
def test_bad_output_is_one_line_and_exit_code_2(study, args, words, tmp_path):
    root, plan = study
    result = cli("plot", plan["id"], *args, "--runs-dir", str(root))
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert all(w in line for w in words), line


def test_unknown_or_ambiguous_ids_are_one_line_and_exit_code_2(study, tmp_path):
    root, plan = study
    for name, words in (("no-such-run", ["no run 'no-such-run'"]), (plan["id"][:4], ["'" + plan["id"][:4] + "'"])):
        result = cli("plot", name, "--out", str(tmp_path / "x.pdf"), "--runs-dir", str(root))
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        [line] = result.stderr.strip().splitlines()
        assert all(w in line for w in words), line
    assert not (tmp_path / "x.pdf").exists()


def test_without_matplotlib_plot_names_the_extra(study, tmp_path):
    root, plan = study
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from cltui.cli.main import app\n"
            f"app(['plot', {plan['id']!r}, '--out', {str(tmp_path / 'x.png')!r}, '--runs-dir', {str(root)!r}])")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ, **WIDE})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "pip install 'cltui[plot]'" in line


def test_a_run_without_a_completed_context_has_nothing_to_draw(tmp_path):
    from core.reporting.figures import FigureError

    with pytest.raises(FigureError, match="nothing to draw"):
        write_figure([{"acc_matrix": [], "config": {"method": {"name": "none"}}}], tmp_path / "x.png")


@pytest.mark.anyio
async def test_p_in_the_tui_writes_the_figure_and_says_where(study, tui):
    from cltui.tui.screens.compare import CompareScreen
    from cltui.tui.screens.detail import DetailScreen

    root, plan = study
    run_dir = root / plan["runs"][0]["run_id"]

    pilot = await tui.start(root, size=(120, 40))
    application = pilot.app
    notes = tui.notes
    for screen in (DetailScreen(run_dir), CompareScreen([root / e["run_id"] for e in plan["runs"]])):
        await application.push_screen(screen)
        await settle_workers(application)
        await pilot.pause()
        before = len(notes)
        await pilot.press("p")
        deadline = time.monotonic() + 30
        while len(notes) == before and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.press("escape")

    assert str(run_dir / "figures" / "accuracy.pdf") in notes
    assert pdf_pages(run_dir / "figures" / "accuracy.pdf") == 2
    [compare] = (root / "figures").glob("compare-*.pdf")
    assert str(compare) in notes and pdf_pages(compare) == 5
    assert read_run_json(run_dir)["status"] == "finished"  # the run itself is untouched
