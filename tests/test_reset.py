"""`make reset` puts a used classroom copy of the course back to its committed state."""

import os
import shutil
import subprocess
import sys

from helpers import ROOT


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_reset_restores_notebooks_and_removes_what_runs_created(tmp_path):
    repo = tmp_path / "course"
    course_files = ["tools/reset.py", "chapters/00_setup.ipynb",
                    "assets/corpus/seq_monkey_sample.jsonl"]
    for name in course_files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "course")
    notebook = repo / "chapters" / "00_setup.ipynb"
    committed = notebook.read_bytes()
    notebook.write_text("{}")  # a student's edits, one of them even staged
    git(repo, "add", "chapters/00_setup.ipynb")
    notebook.write_text("{ }")
    for folder in ["chapters/runs/04_trainer/checkpoint-50", "runs/pretrain-tiny",
                   "chapters/.ipynb_checkpoints", "chapters/solutions/runs/x"]:
        (repo / folder).mkdir(parents=True)
        (repo / folder / "file").write_text("x")
    (repo / "chapters" / "Untitled.ipynb").write_text("{}")
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_DATASETS_OFFLINE": "1"}
    warm_cache = ("from datasets import load_dataset; load_dataset('json', data_files="
                  f"{str(repo / 'assets/corpus/seq_monkey_sample.jsonl')!r}, split='train')"
                  ".map(lambda r: {'n': len(r['text'])})")
    subprocess.run([sys.executable, "-c", warm_cache], env=env, check=True, capture_output=True)

    dry = subprocess.run([sys.executable, str(repo / "tools" / "reset.py"), "--dry-run"],
                         capture_output=True, text=True, env=env)
    assert dry.returncode == 0 and "would restore chapters/00_setup.ipynb" in dry.stdout
    assert notebook.read_text() == "{ }" and (repo / "runs").exists()  # a dry run changes nothing

    done = subprocess.run([sys.executable, str(repo / "tools" / "reset.py")], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert notebook.read_bytes() == committed
    assert not (repo / "runs").exists() and not (repo / "chapters" / "runs").exists()
    assert not (repo / "chapters" / ".ipynb_checkpoints").exists()
    assert not (repo / "chapters" / "solutions" / "runs").exists()
    assert done.stdout.count("deleted chapters/runs/") == 1  # listed once, not per subfolder
    assert (repo / "chapters" / "Untitled.ipynb").exists()
    assert "kept chapters/Untitled.ipynb" in done.stdout
    assert "deleted 1 datasets cache file(s)" in done.stdout


def test_reset_outside_git_is_one_clear_error(tmp_path):
    copy = tmp_path / "tools"
    copy.mkdir()
    shutil.copy(ROOT / "tools" / "reset.py", copy / "reset.py")
    done = subprocess.run([sys.executable, str(copy / "reset.py")], capture_output=True, text=True)
    assert done.returncode == 2 and "is not a git checkout" in done.stderr
    assert "Traceback" not in done.stderr
