"""The wheel holds every preset, and a non-editable install finds them from anywhere.

A copy of the checkout (what git tracks plus new files it does not ignore) is built into a wheel offline
(`pip wheel --no-deps --no-build-isolation --no-index`, the venv's setuptools), the wheel is installed
without its dependencies into a folder of its own (`pip install --no-deps --target SITE`), and cltui is
run from an unrelated working directory with only SITE and the venv's site-packages (for torch, Textual,
...) on its path: `python -S` so that the venv's editable-install hook (a .pth file) is not read, and no
path to the checkout anywhere. The builds run in copies under tmp_path: the checkout gets no build/ or
egg-info, and runs of this test side by side do not share a build folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_SITE = Path(sysconfig.get_paths()["purelib"])  # the dependencies, installed in the venv
PACKAGES = ("cltui", "core", "presets")


def checkout_files() -> list[Path]:
    """The checkout as a fresh clone plus the new files would have it: git's tracked and untracked,
    not-ignored files (without git: the project's sources)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             check=True, capture_output=True, timeout=60).stdout
        names = [name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = ["pyproject.toml", "README.md"] + [str(p.relative_to(ROOT)) for package in PACKAGES
                                                   for p in (ROOT / package).rglob("*") if p.is_file()]
    return [ROOT / name for name in names if "__pycache__" not in name and (ROOT / name).is_file()]


def pip(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    result = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    for path in checkout_files():
        target = src / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    pip("wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir",
        "-w", str(base / "wheels"), cwd=base)
    wheels = list((base / "wheels").glob("cltui-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def site(wheel: Path) -> Path:
    target = wheel.parent.parent / "site"
    pip("install", "--no-deps", "--no-index", "--no-cache-dir", "--target", str(target), str(wheel),
        cwd=wheel.parent)
    return target


@pytest.fixture
def installed(site: Path, tmp_path: Path):
    """Run `python -S ARGS` (or a console script) against the installed copy, from an empty folder of
    tmp_path, with no user presets; -> CompletedProcess."""
    cwd, user_presets = tmp_path / "elsewhere", tmp_path / "user-presets"
    cwd.mkdir()
    user_presets.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "CLTUI_", "VIRTUAL_ENV", "PYTEST_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(site), str(VENV_SITE)]), CLTUI_PRESETS_DIR=str(user_presets),
               COLUMNS="1000", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    run.cwd = cwd  # type: ignore[attr-defined]
    return run


def builtin_presets() -> list[str]:
    names = sorted(p.stem for p in (ROOT / "presets").glob("*.toml"))
    assert "split-digits" in names, names
    return names


# --- the wheel --------------------------------------------------------------------------------------------


def test_the_wheel_holds_every_preset_module_and_stylesheet(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"presets/{name}.toml" for name in builtin_presets()} | {"presets/__init__.py"}
    for package in ("cltui", "core"):
        for path in (ROOT / package).rglob("*"):
            if path.suffix in (".py", ".tcss") and "__pycache__" not in path.parts:
                expected.add(path.relative_to(ROOT).as_posix())
    assert "cltui/tui/cltui.tcss" in expected and "core/schema/params.py" in expected
    missing = sorted(expected - names)
    assert not missing, f"not in {wheel.name}: {', '.join(missing)}"
    # Nothing else lands at the top of site-packages (no tests/, benchmarks/ or docs/ as packages).
    top = {name.split("/")[0] for name in names}
    assert sorted(n for n in top if not n.endswith(".dist-info")) == sorted(PACKAGES), sorted(top)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "cltui = cltui.cli.main:app" in entry_points


# --- the installed copy -----------------------------------------------------------------------------------


def test_the_installed_copy_is_what_runs_and_finds_its_presets(installed, site):
    code = (
        "import importlib.util, json, sys\n"
        "import core.schema.presets as p\n"
        "print(json.dumps({'files': {n: importlib.util.find_spec(n).origin for n in ('cltui', 'core', 'presets')},\n"
        "                  'builtin': str(p.builtin_presets_dir()), 'presets': p.list_presets(), 'path': sys.path}))\n"
    )
    result = installed("-c", code)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    for name, origin in seen["files"].items():
        assert Path(origin).is_relative_to(site), f"{name} imported from {origin}, not from the install in {site}"
    # The venv's site-packages (for the dependencies) is the only path into the checkout's folder.
    into_checkout = [p for p in seen["path"] if p and Path(p).resolve().is_relative_to(ROOT)
                     and not Path(p).resolve().is_relative_to(VENV_SITE.resolve())]
    assert not into_checkout, into_checkout
    assert Path(seen["builtin"]) == site / "presets"
    assert seen["presets"] == builtin_presets()


def test_the_installed_cli_lists_and_shows_the_builtin_presets(installed, site):
    result = installed("-m", "cltui.cli.main", "presets", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in builtin_presets():
        listed = any(line.split()[:3] == [name, "│", "built-in"] for line in lines)
        assert listed, f"{name} not listed:\n{result.stdout}"
    assert f"built-in: {site / 'presets'}" in result.stdout

    # The console script of the wheel works as well (its #! names the venv's python: run it with -S).
    result = installed(str(site / "bin" / "cltui"), "presets", "show", "split-digits")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout[result.stdout.index("\n{") + 1:])
    assert config["preset"] == "split-digits" and config["benchmark"]["name"] == "digits"


def test_a_tiny_run_from_the_installed_copy(installed, tmp_path):
    runs = tmp_path / "RUNS"
    result = installed("-m", "cltui.cli.main", "run", "split-digits", "--set", "train.iterations=5",
                       "--runs-dir", str(runs), "--quiet", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    folders = list(runs.iterdir())
    assert len(folders) == 1 and "split-digits" in folders[0].name, folders
    record = json.loads((folders[0] / "run.json").read_text())
    assert record["status"] == "finished", record.get("error")
    assert [c["iterations"] for c in record["contexts"]] == [5] * 5
    assert len(record["acc_matrix"]) == 5
    assert not list(installed.cwd.iterdir())  # nothing written where it was started from
