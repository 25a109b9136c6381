"""Benchmark 4: preparing a 1 GB corpus, with and without streaming, within 3 GB of memory.

    python bench/memory_scale.py              # 1 GB JSONL made at run time in a temp folder
    python bench/memory_scale.py --gb 0.2

Each mode runs code/pretrain.py's own data path in a fresh process: `load_train_data` then
`build_datasets` (tokenize with EOS, pack into blocks of 128, split off 5% for evaluation); the
streaming mode reads every block of the stream. Peak memory is the process's maximum resident set
size (ru_maxrss, memory-mapped Arrow pages included). Needs about 6 GB of free disk for the corpus
and the datasets cache. Goal: peak RSS <= 3 GB in both modes.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import OFFLINE, ROOT, make_corpus, print_table


def worker(corpus: str, streaming: bool) -> dict:
    from llm_pretrain.checks import expand_train_files
    from llm_pretrain.data import load_train_data
    from llm_pretrain.model import load_tokenizer
    from llm_pretrain.paths import TOKENIZER_DIR
    from llm_pretrain.prepare import build_datasets
    from pretrain import DataTrainingArguments  # the script's data arguments and their defaults

    data_args = DataTrainingArguments(train_files=[corpus], streaming=streaming)
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    raw_ds = load_train_data(expand_train_files([corpus]), streaming)
    train_ds, eval_ds, report = build_datasets(raw_ds, tokenizer, data_args, seed=42)
    if streaming:
        blocks = sum(1 for _ in train_ds) + eval_ds.num_rows
    else:
        blocks = train_ds.num_rows + eval_ds.num_rows
    peak_kb = max(resource.getrusage(who).ru_maxrss
                  for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"blocks": blocks, "peak_gb": peak_kb / 1e6}


def measure(corpus: Path, streaming: bool, cache: Path) -> dict:
    """Run one mode in a fresh process; its wall time and the peak RSS it reports."""
    cmd = [sys.executable, str(Path(__file__)), "--worker", "--corpus", str(corpus)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd + (["--streaming"] if streaming else []), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **OFFLINE, "HF_DATASETS_CACHE": str(cache)})
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"worker failed:\n{err[-3000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="corpus size in GB")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--streaming", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.corpus, args.streaming)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        free = shutil.disk_usage(tmp).free / 1e9
        if free < 6 * args.gb:
            parser.error(f"needs about {6 * args.gb:.0f} GB free in {tmp}, found {free:.0f} GB")
        corpus = Path(tmp) / "corpus.jsonl"
        docs = make_corpus(corpus, args.gb * 1000)
        print(f"corpus: {corpus.stat().st_size / 1e9:.2f} GB, {docs:,} documents, "
              f"{os.cpu_count()} cores")
        results = {"streaming": measure(corpus, True, Path(tmp) / "cache-stream")}
        results["map-style (Arrow cache)"] = measure(corpus, False, Path(tmp) / "cache-map")
    print_table(["mode", "seconds", "blocks of 128", "peak RSS (GB)"], [
        [mode, f"{r['seconds']:.0f}", f"{r['blocks']:,}", f"{r['peak_gb']:.2f}"]
        for mode, r in results.items()])
    worst = max(r["peak_gb"] for r in results.values())
    print(f"result: peak_rss_gb={worst:.2f} (goal <= 3)")


if __name__ == "__main__":
    main()
