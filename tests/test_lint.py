"""Code style: ruff over the tools, tests, the generated script and the notebooks."""

import subprocess
import sys

from helpers import ROOT


def test_ruff_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_ruff_skips_what_runs_write_even_outside_git(tmp_path):
    # DeepSpeed copies its own zero_to_fp32.py into every checkpoint; a course copied without
    # .git (a zip, a benchmark's copy) must still lint clean after the notebooks ran
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    for folder in ("chapters/runs/05_deepspeed/checkpoint-20", "runs/pretrain-tiny", "tools"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "unused_import.py").write_text("import os\n")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert "tools/unused_import.py" in done.stdout and "runs" not in done.stdout
