"""Root pytest configuration: the environment every test and every notebook kernel runs in.

Kernels started by nbval inherit this process's environment, so setting it here makes the
notebooks run CPU-only, offline, and without progress bars whose rates change from run to run.
`tools/execute.py` uses the same settings when it refreshes the committed outputs.
"""

import os
import sys
from pathlib import Path

KERNEL_ENV = {
    "CUDA_VISIBLE_DEVICES": "",  # CPU only, as on a classroom laptop and in CI
    "HF_HUB_OFFLINE": "1",  # never reach for the model hub
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DS_ACCELERATOR": "cpu",  # DeepSpeed's CPU accelerator
    "TOKENIZERS_PARALLELISM": "false",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # also switches off transformers' bars
    "TQDM_DISABLE": "1",
    "PYTHONHASHSEED": "0",
}
os.environ.update(KERNEL_ENV)
# `python`, `torchrun` and `deepspeed` in subprocesses are this environment's.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def pytest_collection_modifyitems(items):
    """Make nbval ignore stderr: warnings and library log lines come and go between runs."""
    for item in items:
        parent = item.parent
        if hasattr(parent, "skip_compare") and "stderr" not in parent.skip_compare:
            parent.skip_compare = parent.skip_compare + ("stderr",)
