"""Benchmark 3: wall time of the course on this machine: every notebook, then the test command.

    python bench/course_time.py                    # both (about 15 minutes on 2 cores)
    python bench/course_time.py --part notebooks

Runs in a throw-away copy of the working tree, so the committed notebook outputs stay as they
are: each chapter, then each solution notebook, is executed top to bottom in a fresh kernel
(tools/execute.py, from an empty chapters/runs), then the whole test command (`python -m pytest`,
notebooks included) runs once in the same copy, so every notebook also runs a second time there.
Goals: the six chapters <= 5 minutes together, the test command <= 10 minutes.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import ROOT, print_table  # noqa: E402


def copy_tree(dest: Path) -> None:
    """The files git knows about (committed or not, minus ignored ones), copied to `dest`."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    shared = ROOT.parent / "shared"
    if shared.is_dir():  # the tests look for ../shared beside the checkout
        (dest.parent / "shared").symlink_to(shared)


def notebooks(tree: Path) -> list[list]:
    """(notebook, seconds) for every chapter, then every solution notebook."""
    done = subprocess.run([sys.executable, "tools/execute.py"], cwd=tree, capture_output=True,
                          text=True)
    rows = [[name, float(seconds)] for name, seconds in
            re.findall(r"^chapters/(\S+): ([\d.]+) s$", done.stdout, re.M)]
    if done.returncode != 0 or not rows:
        sys.exit(f"executing the notebooks failed:\n{done.stdout[-1000:]}{done.stderr[-3000:]}")
    return rows


def tests(tree: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=tree, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1]
    if done.returncode != 0:
        # pytest's -ra summary at the end of its output names the failing tests
        sys.exit(f"{done.stdout[-6000:]}\nthe test command failed after {seconds:.0f} s: {summary}")
    return seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["notebooks", "tests", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "course"
        copy_tree(tree)
        results = []
        if args.part in ("notebooks", "both"):
            rows = notebooks(tree)
            total = sum(seconds for name, seconds in rows if "/" not in name)  # the chapters
            solutions = sum(seconds for name, seconds in rows if "/" in name)
            print_table(["notebook", "seconds"], [[n, f"{s:.1f}"] for n, s in rows]
                        + [["all chapters", f"{total:.1f}"], ["all solutions", f"{solutions:.1f}"]])
            results.append(f"result: notebooks_seconds={total:.0f} (goal <= 300)")
        if args.part in ("tests", "both"):
            seconds, summary = tests(tree)
            print(f"test command: {seconds:.0f} s ({summary})")
            results.append(f"result: test_command_seconds={seconds:.0f} (goal <= 600)")
    print("\n".join(results))


if __name__ == "__main__":
    main()
