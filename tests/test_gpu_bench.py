"""The GPU benchmarks on a machine without a GPU: one line and exit 2, or a CPU rehearsal."""

import json
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.mark.parametrize("script", ["bench/gpu_mfu.sh", "bench/gpu_check.sh"])
def test_gpu_benchmarks_refuse_without_cuda_in_one_line(script, tmp_path):
    done = subprocess.run(["bash", script, str(tmp_path / "results")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "error: no CUDA GPU visible" in done.stderr
    assert "REHEARSE=1" in done.stderr and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_memory_benchmark_rehearses_the_calculator_rows_on_the_cpu():
    done = subprocess.run([sys.executable, "bench/gpu_memory.py", "--config", "assets/tiny-qwen2",
                           "--block", "64", "--batches", "1", "2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["device"] == "cpu" and report["block"] == 64
    rows = [(r["micro_batch"], r["checkpointing"]) for r in report["rows"]]
    assert rows == [(1, False), (2, False), (1, True), (2, True)]
    by = {(r["micro_batch"], r["checkpointing"]): r["calculator_gb"] for r in report["rows"]}
    assert by[2, False] > by[1, False] > by[1, True]  # more tokens, more; checkpointing, less
    assert all(r["measured_gb"] is None for r in report["rows"])  # no device memory on a CPU
