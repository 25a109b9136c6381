"""Run notebooks top to bottom in a fresh kernel and store their outputs in place.

    python tools/execute.py                         # every chapter and solution notebook
    python tools/execute.py chapters/03_data.ipynb  # only these

The notebooks run in the course kernel `llm-pretrain` (tools/course_kernel.py, installed by
`make setup`), the kernel that `make lab` and strict nbval start too, so the stored outputs are what
the tests compare against. Each notebook's wall time is printed.
"""

import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course_kernel import KERNEL_NAME

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=1200, kernel_name=KERNEL_NAME, record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    paths = args.notebooks or [*sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")),
                               *sorted((ROOT / "chapters" / "solutions").glob("*.ipynb"))]
    for path in paths:
        name = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
        print(f"{name}: {execute(path):.1f} s", flush=True)


if __name__ == "__main__":
    main()
