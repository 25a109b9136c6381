"""Shared by the benchmarks: the project paths, a large corpus made at run time, a table printer.

A benchmark run as `python bench/<name>.py` imports this file as `common`: Python puts the
script's own folder first on `sys.path`. The course's code is the installed `llm_pretrain`
package (`make setup`), imported like any package.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "assets" / "corpus" / "seq_monkey_sample.jsonl"
# what the tests and notebooks run with: offline, no progress bars, no GPU
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}


def make_corpus(path: Path, megabytes: float, seed: int = 0) -> int:
    """Write shuffled copies of the bundled corpus until the file holds `megabytes` MB; return
    its document count. Made at run time, never committed."""
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    rng, size, docs = random.Random(seed), 0, 0
    with path.open("w", encoding="utf-8") as f:
        while size < megabytes * 1e6:
            rng.shuffle(lines)
            chunk = "\n".join(lines) + "\n"
            f.write(chunk)
            size += len(chunk.encode("utf-8"))
            docs += len(lines)
    return docs


def run_json(script: Path, *args: str, env: dict | None = None) -> dict:
    """Run a benchmark worker in a fresh process and return the JSON object it prints last."""
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env={**os.environ, **OFFLINE, **(env or {})}, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{script.name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def notebook_function(notebook: Path, name: str):
    """The function `name` as a code cell of `notebook` defines it: chapter 03's readable
    `group_texts`, which is taught but not exported (bench/data_prep.py and
    tests/test_packing.py compare it with the exported packing)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    (source,) = [s for s in sources if f"def {name}(" in s]
    namespace = {}
    exec(source, namespace)
    return namespace[name]


def print_table(headers: list[str], rows: list[list]) -> None:
    """A plain Markdown table, so the output pastes straight into BENCHMARKS.md."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
