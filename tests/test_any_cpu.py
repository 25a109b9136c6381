"""Strict nbval of every notebook, on "another CPU": the stored outputs must hold there too.

The stored outputs come from 2-core AVX-512 machines (an Intel Xeon, an AMD EPYC). A learner's CPU
rounds fp32 sums in another order: another thread count splits the reductions differently, and
AVX2 kernels (an older AMD or Intel laptop) accumulate differently from AVX-512 ones. Every
notebook runs here under nbval, in the course kernel, with one thread and AVX2 kernels in MKL,
oneDNN and ATen. No stored output may depend on the last bits of a float: chapter 04 prints its
losses in NBVAL_IGNORE_OUTPUT cells and compares them with a tolerance in the next cell.

One thread per kernel leaves a core free, so the notebooks run as two nbval processes side by
side, started together by this module's first nbval test. The chapters also run in the default
environment, in JupyterLab: tests/test_browser.py.
"""

import os
import re
import signal
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from course_kernel import KERNEL_NAME
from helpers import NOTEBOOKS, ROOT, course_env

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


@pytest.fixture(scope="module")
def nbval_runs(tmp_path_factory):
    """One nbval process per group in the perturbed environment, both running at once: {group:
    (process, its log)}. What is left of them (nbval, its kernels and what they started) is
    killed when the module's tests are done, passed or not."""
    runs = {}
    try:
        for name, paths in GROUPS.items():
            log = tmp_path_factory.mktemp("nbval") / "log.txt"
            with log.open("w") as out:
                runs[name] = subprocess.Popen(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     *map(str, paths)],
                    cwd=ROOT, env=course_env(PERTURBED), stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True), log
        yield runs
    finally:
        for process, _ in runs.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_the_course_kernel_gets_the_perturbed_environment(monkeypatch):
    for name, value in PERTURBED.items():
        monkeypatch.setenv(name, value)
    probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch\nprint(torch.get_num_threads(), torch.backends.cpu.get_cpu_capability())")])
    NotebookClient(probe, kernel_name=KERNEL_NAME).execute()
    assert probe.cells[0].outputs[0]["text"].split() == ["1", "AVX2"]


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_stored_outputs_hold_with_one_thread_and_avx2(nbval_runs, group):
    process, log = nbval_runs[group]
    process.wait(timeout=1800)
    text = log.read_text()
    assert process.returncode == 0, text[-6000:]
    cells = code_cell_count(GROUPS[group])
    assert re.search(rf"^{cells} passed in ", text, re.M), text[-2000:]  # every cell, none skipped
