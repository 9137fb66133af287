"""benchmarks/gpu_check.py stays runnable without a GPU: its quick mode on the CPU (a few methods in fp32 and
bf16, the MLP's throughput) passes and prints its summary; the full CPU run (every method, a detached run
stopped and resumed, a compare, ResNet-32, torch.compile) is slow-marked."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_quick_cpu_check_passes_and_prints_its_summary(capsys, tmp_path):
    code = load_gpu_check().main(["--device", "cpu", "--quick", "--json", str(tmp_path / "check.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "## gpu_check on cpu" in out and "| MLP 784-400-400-10 | cpu | bf16 |" in out
    for check in ("none fp32", "icarl bf16", "MLP step cpu fp32"):
        assert f"| {check} | ok" in out


def test_a_cuda_check_without_cuda_says_so_in_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert load_gpu_check().main(["--device", "cuda"]) == 2
    assert "no CUDA device is visible; use --device cpu" in capsys.readouterr().err


@pytest.mark.slow  # every method in fp32 and bf16, ResNet-32 and torch.compile on the CPU (about 3 minutes)
def test_the_full_cpu_check_passes():
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu"], capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
