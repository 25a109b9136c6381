"""Code style: ruff over the tools, tests, the generated script and the notebooks."""

import subprocess
import sys

from conftest import ROOT


def test_ruff_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
