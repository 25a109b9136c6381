"""Benchmark 3: wall time of the course on this machine: every notebook, then the test command.

    python bench/course_time.py                    # both (about 15 minutes on 2 cores)
    python bench/course_time.py --part notebooks

Runs in a throw-away copy of the working tree, so the committed notebook outputs stay as they
are: each chapter, then each solution notebook, is executed top to bottom in a fresh kernel
(tools/execute.py, from an empty chapters/runs), then the whole test command (`python -m pytest`,
notebooks included) runs once in the same copy, so every notebook also runs a second time there.
Goals: the seven chapters (00-06) <= 5 minutes together, the test command <= 10 minutes.

For the teacher's plan (TEACHING.md), each chapter's row also counts the Chinese characters of
its prose, outside the exercises: in the core sections and in those whose heading says 选读
(optional), and gives the talk time at TALK_RATE characters a minute.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from common import ROOT, print_table

TALK_RATE = 200  # Chinese characters a minute: explaining aloud, slower than reading
HAN = re.compile(r"[\u4e00-\u9fff]")
HEADING = re.compile(r"^(#{2,3}) (.*)")


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


def prose(notebook: Path) -> tuple[int, int, int]:
    """(core characters, 选读 characters, exercises) of a chapter's markdown.

    A `##`/`###` heading with 选读 opens an optional part, which ends at the next heading of its
    level or above; the `## ✏️ 练习` section is not prose to present.
    """
    core = optional = 0
    optional_level, in_exercises = None, False
    cells = nbformat.read(notebook, as_version=4).cells
    for cell in cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            heading = HEADING.match(line)
            if heading:
                level = len(heading.group(1))
                if optional_level is not None and level <= optional_level:
                    optional_level = None
                if "选读" in heading.group(2) and optional_level is None:
                    optional_level = level
                if level == 2:
                    in_exercises = "练习" in heading.group(2)
            if in_exercises:
                continue
            chars = len(HAN.findall(line))
            if optional_level is None:
                core += chars
            else:
                optional += chars
    exercises = sum(c.cell_type == "code" and "check(" in c.source for c in cells)
    return core, optional, exercises


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
            plan = []
            for name, seconds in rows:
                if "/" not in name:
                    core, optional, exercises = prose(tree / "chapters" / name)
                    plan.append([name, f"{seconds / 60:.1f}", core, optional, exercises,
                                 f"{seconds / 60 + core / TALK_RATE:.0f}"])
            print_table(["chapter", "run min", "core chars", "选读 chars", "exercises",
                         f"run + talk min (at {TALK_RATE} chars/min)"], plan)
            results.append(f"result: notebooks_seconds={total:.0f} (goal <= 300)")
        if args.part in ("tests", "both"):
            seconds, summary = tests(tree)
            print(f"test command: {seconds:.0f} s ({summary})")
            results.append(f"result: test_command_seconds={seconds:.0f} (goal <= 600)")
    print("\n".join(results))


if __name__ == "__main__":
    main()
