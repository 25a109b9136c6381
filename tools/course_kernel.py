"""The course's Jupyter kernels: the one environment that `make lab`, the tests and the tools share.

    python tools/course_kernel.py            # what `make setup` runs: install into this venv
    python tools/course_kernel.py --check    # exit 1 when the installed kernels are out of date

Two kernelspecs go into `<venv>/share/jupyter/kernels/`, where JupyterLab, nbval, nbclient and
VS Code started from the venv all find them:

- `llm-pretrain` (what every notebook selects): CPU only, offline hub, quiet progress bars, and
  the venv's `bin/` first on `PATH`, so `python`, `torchrun` and `deepspeed` in a cell's
  subprocess are the course's own.
- `llm-pretrain-gpu`: the same with the GPUs left visible, for a learner who has one (the stored
  outputs are from the CPU kernel).

The root conftest.py applies the same `COURSE_ENV` to the test process itself.
"""

import argparse
import json
import sys
from pathlib import Path

KERNEL_NAME = "llm-pretrain"
DISPLAY_NAME = "Python 3.11 (llm-pretrain course)"

COURSE_ENV = {
    "CUDA_VISIBLE_DEVICES": "",  # CPU only, as on a classroom laptop and in CI
    "HF_HUB_OFFLINE": "1",  # never reach for the model hub: no retries behind a firewall
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DS_ACCELERATOR": "cpu",  # DeepSpeed's CPU accelerator
    "TOKENIZERS_PARALLELISM": "false",  # no fork warning when a cell starts a subprocess
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # also switches off transformers' bars
    "TQDM_DISABLE": "1",
    "PYTHONHASHSEED": "0",
}
GPU_OVERRIDES = ("CUDA_VISIBLE_DEVICES", "DS_ACCELERATOR")  # left to the machine on a GPU


def course_env(prefix: Path, gpu: bool = False) -> dict[str, str]:
    """The kernel's environment: `COURSE_ENV` and the venv's `bin/` first on `PATH`.

    `${PATH}` is filled in by jupyter_client from the environment of the server that starts it.
    """
    env = {k: v for k, v in COURSE_ENV.items() if not (gpu and k in GPU_OVERRIDES)}
    env["PATH"] = f"{prefix / 'bin'}:${{PATH}}"
    return env


def kernelspecs(prefix: Path) -> dict[str, dict]:
    """kernel.json of both kernels of the venv at `prefix`."""
    python = str(prefix / "bin" / "python")

    def spec(gpu: bool) -> dict:
        return {
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": DISPLAY_NAME.replace("course", "course, GPU") if gpu else DISPLAY_NAME,
            "language": "python",
            "env": course_env(prefix, gpu),
            "metadata": {"debugger": True, "supported_encryption": ["curve"]},
        }

    return {KERNEL_NAME: spec(False), f"{KERNEL_NAME}-gpu": spec(True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args()
    prefix = Path(sys.prefix)
    stale = []
    for name, spec in kernelspecs(prefix).items():
        path = prefix / "share" / "jupyter" / "kernels" / name / "kernel.json"
        text = json.dumps(spec, indent=1) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        sys.exit(f"course_kernel.py: error: out of date, run `make setup`: {', '.join(stale)}")


if __name__ == "__main__":
    main()
