"""Strict nbval of every notebook, on "another CPU": the stored outputs must hold there too.

The stored outputs come from 2-core AVX-512 machines (an Intel Xeon, an AMD EPYC). A learner's CPU
rounds fp32 sums in another order: another thread count splits the reductions differently, and
AVX2 kernels (an older AMD or Intel laptop) accumulate differently from AVX-512 ones. Every
notebook runs here under nbval, in the course kernel, with one thread and AVX2 kernels in MKL,
oneDNN and ATen. No stored output may depend on the last bits of a float: chapter 04 prints its
losses in NBVAL_IGNORE_OUTPUT cells and compares them with a tolerance in the next cell.

One thread per kernel leaves a core free, so the notebooks run as two nbval processes side by
side. In the full suite they start in the background once the browser tests are done
(tests/conftest.py) under Linux's SCHED_IDLE policy (`chrt --idle`): they get a core only
when no other process wants it, and so use the time the other tests leave idle
(waiting for processes, ports, timeouts); the tests of this file come last and read the results.
The chapters also run in the default environment, in JupyterLab: tests/test_browser.py.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import NOTEBOOKS, ROOT
from course_kernel import KERNEL_NAME

PERTURBED = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL's code path on AMD CPUs
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorized kernels
}
TRAINER = ROOT / "chapters" / "04_trainer.ipynb"
GROUPS = {"chapter 04": [TRAINER], "the other notebooks": [p for p in NOTEBOOKS if p != TRAINER]}


def code_cell_count(paths) -> int:
    return sum(c.cell_type == "code" for p in paths for c in nbformat.read(p, 4).cells)


RUNS: dict[str, tuple[subprocess.Popen, Path]] = {}  # group -> (nbval process, its log)


def start_nbval_runs() -> None:
    """Start one nbval process per group in the perturbed environment, as idle work (once)."""
    env = {**os.environ, **PERTURBED}
    for name, paths in GROUPS.items():
        if name not in RUNS:
            log = Path(tempfile.mkdtemp(prefix="nbval-")) / "log.txt"
            with log.open("w") as out:
                RUNS[name] = subprocess.Popen(
                    ["chrt", "--idle", "0", sys.executable, "-m", "pytest", "-q", "-p",
                     "no:cacheprovider", *map(str, paths)],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True), log


def stop_nbval_runs() -> None:
    """Kill what is left of the runs (nbval, its kernels and what they started), remove the logs."""
    for process, log in RUNS.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(log.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def nbval_runs():
    start_nbval_runs()  # in the full suite they already run (tests/conftest.py)
    yield RUNS
    stop_nbval_runs()


def test_the_course_kernel_gets_the_perturbed_environment(monkeypatch):
    for name, value in PERTURBED.items():
        monkeypatch.setenv(name, value)
    probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch\nprint(torch.get_num_threads(), torch.backends.cpu.get_cpu_capability())")])
    NotebookClient(probe, kernel_name=KERNEL_NAME).execute()
    assert probe.cells[0].outputs[0]["text"].split() == ["1", "AVX2"]


@pytest.mark.parametrize("group", GROUPS)
def test_stored_outputs_hold_with_one_thread_and_avx2(nbval_runs, group):
    process, log = nbval_runs[group]
    process.wait(timeout=1800)
    text = log.read_text()
    assert process.returncode == 0, text[-6000:]
    cells = code_cell_count(GROUPS[group])
    assert re.search(rf"^{cells} passed in ", text, re.M), text[-2000:]  # every cell, none skipped
