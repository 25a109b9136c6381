"""Start a class over: put the chapters back as committed and delete what running them created.

    python tools/reset.py            # or: make reset
    python tools/reset.py --dry-run  # only list what it would do

Restores every committed file under chapters/ (the notebooks, exercises.py, the solutions) to
the last commit, staged changes included (students' edits are lost: save a copy first); deletes
what runs create (runs/ folders, .ipynb_checkpoints/, outputs/, wandb/) and the datasets cache
files that `map()` wrote for the bundled corpus. Notebooks the class created (Untitled.ipynb, ...)
are left alone and listed.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "assets" / "corpus" / "seq_monkey_sample.jsonl"


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def created_folders() -> list[Path]:
    """What running the notebooks and the script leaves in the course tree (outside .venv)."""
    found = [ROOT / name for name in ("runs", "outputs", "wandb", ".ipynb_checkpoints")]
    for top in ("chapters", "code", "bench", "tools"):
        found += (ROOT / top).glob("**/runs")
        found += (ROOT / top).glob("**/.ipynb_checkpoints")
    found = [p for p in found if p.is_dir()]
    return [p for p in found if not any(parent in found for parent in p.parents)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list what would be done")
    args = parser.parse_args()
    if git("rev-parse", "--is-inside-work-tree").returncode != 0:
        parser.error(f"{ROOT} is not a git checkout, so there is no committed state to restore")
    status = git("status", "--porcelain", "--untracked-files=all", "--", "chapters").stdout
    changed = [line[3:] for line in status.splitlines() if not line.startswith("??")]
    extra = [line[3:] for line in status.splitlines()
             if line.startswith("??") and line.endswith(".ipynb")]
    folders = created_folders()
    for path in extra:
        print(f"kept {path} (not part of the course; delete it by hand if you want)")
    if args.dry_run:
        print("\n".join([*(f"would restore {path}" for path in changed),
                         *(f"would delete {f.relative_to(ROOT)}/" for f in folders)]))
        return
    if changed and git("checkout", "HEAD", "--", "chapters").returncode != 0:
        sys.exit("reset.py: error: git could not restore chapters/")
    for folder in folders:
        shutil.rmtree(folder)
    print("\n".join([*(f"restored {path}" for path in changed),
                     *(f"deleted {f.relative_to(ROOT)}/" for f in folders)]))
    from datasets import load_dataset  # slow to import: only when really resetting

    removed = load_dataset("json", data_files=str(CORPUS), split="train").cleanup_cache_files()
    print(f"deleted {removed} datasets cache file(s) of the bundled corpus")
    print("the course is back to its committed state")


if __name__ == "__main__":
    main()
