"""Root pytest configuration: the tests run in the environment the course's kernel gives learners.

`tools/course_kernel.py` holds that environment once: `make setup` writes it into the kernelspec
`llm-pretrain` that every notebook selects (nbval and JupyterLab start that kernel), and this file
applies the same settings to the test process and the scripts it launches.
"""

import os
import sys
from pathlib import Path

from course_kernel import course_env  # tools/ is on sys.path: `pythonpath` in pyproject.toml

os.environ.update({k: v for k, v in course_env(Path(sys.prefix)).items() if k != "PATH"})
# `python`, `torchrun` and `deepspeed` in subprocesses are this environment's, as in the kernel.
os.environ["PATH"] = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}"


def pytest_collection_modifyitems(items):
    """Make nbval ignore stderr: warnings and library log lines come and go between runs."""
    for item in items:
        parent = item.parent
        if hasattr(parent, "skip_compare") and "stderr" not in parent.skip_compare:
            parent.skip_compare = parent.skip_compare + ("stderr",)
