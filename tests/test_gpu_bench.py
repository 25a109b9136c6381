"""The GPU benchmarks on a machine without a GPU: one line and exit 2, or a CPU rehearsal; and
the wheelhouse that lets bench/gpu_check.sh run on a GPU box with torch alone."""

import importlib.metadata
import json
import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT

GPU_REQUIREMENTS = ROOT / "bench" / "gpu_requirements.txt"
LINE = re.compile(r"([A-Za-z0-9_.-]+)==(\S+)\s*(?:#\s*(?:box:\s*(.+)|(optional)))?$")


def gpu_requirements() -> list[tuple[str, str, str | None, str | None]]:
    """(name, pin, box range, "optional") of each requirement line."""
    return [LINE.match(line.strip()).groups() for line in GPU_REQUIREMENTS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("script", ["bench/gpu_mfu.sh", "bench/gpu_check.sh"])
def test_gpu_benchmarks_refuse_without_cuda_in_one_line(script, tmp_path):
    done = subprocess.run(["bash", script, str(tmp_path / "results")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "error: no CUDA GPU visible" in done.stderr
    assert "REHEARSE=1" in done.stderr and not (tmp_path / "results").exists()


def test_gpu_requirements_pin_the_course_versions_and_leave_torch_to_the_box():
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    lines = gpu_requirements()  # every non-comment line parses
    names = [canonicalize_name(name) for name, *_ in lines]
    assert len(names) == len(set(names)) and "torch" not in names
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    course = {canonicalize_name(n): v for n, v in pins.items()}
    for name, pin, box, _ in lines:
        assert course.get(canonicalize_name(name), pin) == pin, f"{name}: not requirements.txt's"
        assert box is None or pin in SpecifierSet(box), f"{name}: its own wheel must meet its range"
    # what the scripts import first: the check's own entry points, and the course package's
    for needed in ("transformers", "datasets", "accelerate", "deepspeed", "torchdata", "pyarrow",
                   "matplotlib", "ipython", "ipywidgets", "httpx2"):
        assert needed in names


def test_the_course_venv_has_every_package_the_gpu_check_lists():
    """Every line names a package the course's own environment has: an import the check really
    needs, not a guess. Only requirements.txt's pins are compared by version (above): the other
    lines are the versions of the day the wheelhouse was built, and a fresh `make setup` may
    resolve a newer one (idna 3.20 here, 3.21 in a clean clone on 2026-12-05)."""
    missing = []
    for name, _, _, optional in gpu_requirements():
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if not optional:  # liger-kernel needs Triton, which a CPU machine lacks
                missing.append(name)
    assert not missing


def test_wheelhouse_install_wants_a_site_packages_folder(tmp_path):
    done = subprocess.run(["bash", "bench/wheelhouse.sh", "--install", str(tmp_path / "site")],
                          cwd=ROOT, env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "site-packages" in done.stderr
    assert not (tmp_path / "site").exists()


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
