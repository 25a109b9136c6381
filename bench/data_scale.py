"""Benchmark 5: data at corpus scale: streamed vs map-style preparation, the cost of resuming a
stream, and memory and disk of --tokenized_path as the corpus grows.

    python bench/data_scale.py                  # all three parts (about 15 minutes on 2 cores)
    python bench/data_scale.py --part stream    # or resume, or memory

stream: the same 100 MB corpus, same cores, fresh processes, interleaved, best of 2. "map-style"
    is code/pretrain.py's `build_datasets` with `--preprocessing_num_workers <cores>` (blocks
    written to the datasets cache); "streamed" is `build_datasets` with `--streaming`, every
    training block read; "streamed, Python filters" is the previous streamed path (Python-level
    record filter, `tokenize_function` lists, `pack_blocks`), for reference. Goal: streamed
    >= 0.8x map-style tokens/s.
resume: a streamed run of code/pretrain.py is resumed from a checkpoint whose saved loader state
    sits at 10% and at 90% of a 100 MB stream; time from launch to the first trained step.
    Goal: 90% / 10% <= 1.2 (the Trainer's own resume re-reads and re-tokenizes the stream).
memory: `python code/pretrain.py --tokenized_path DIR` on 0.25 GB and 1 GB corpora: the peak
    resident set and the peak anonymous memory of one process (the script or one of its worker
    processes), and bytes per token on disk, with the `labels`
    column the blocks used to carry and without it. Goal: peak RSS of 1 GB <= 1.2x of 0.25 GB,
    both <= 3 GB.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import OFFLINE, ROOT, make_corpus, print_table, run_json

SCRIPT = ROOT / "code" / "pretrain.py"
BATCH = 16  # the script's default micro-batch


def stream_worker(row: str, corpus: str) -> dict:
    """One preparation of `corpus` in this (fresh) process: seconds and tokens in blocks."""
    from llm_pretrain.data import (
        has_text,
        load_corpus,
        load_train_data,
        pack_blocks,
        tokenize_function,
    )
    from llm_pretrain.model import load_tokenizer
    from llm_pretrain.paths import TOKENIZER_DIR
    from llm_pretrain.prepare import build_datasets
    from pretrain import DataTrainingArguments  # the script's data arguments and their defaults

    tokenizer = load_tokenizer(TOKENIZER_DIR)
    start = time.perf_counter()
    if row == "streamed, Python filters":
        raw = load_corpus([corpus], streaming=True)
        kept = raw.filter(has_text, batched=True)
        blocks = (kept.map(tokenize_function, batched=True, remove_columns=["text"],
                           fn_kwargs={"tokenizer": tokenizer})
                  .with_format("arrow")
                  .map(pack_blocks, batched=True, fn_kwargs={"block_size": 128})
                  .with_format(None))
        n_blocks = sum(1 for _ in blocks)
    else:
        streaming = row == "streamed"
        data_args = DataTrainingArguments(
            train_files=[corpus], streaming=streaming, validation_split_percentage=0,
            preprocessing_num_workers=None if streaming else os.cpu_count())
        raw = load_train_data([corpus], streaming)
        train_ds, _, _ = build_datasets(raw, tokenizer, data_args, seed=42)
        n_blocks = sum(1 for _ in train_ds) if streaming else train_ds.num_rows
    return {"seconds": time.perf_counter() - start, "tokens": n_blocks * 128}


def save_loader_state(corpus: str, fraction: float, path: str) -> dict:
    """The state of the script's training loader after `fraction` of the stream's batches."""
    import torch
    from torchdata.stateful_dataloader import StatefulDataLoader

    from llm_pretrain.data import lm_collator, load_train_data
    from llm_pretrain.model import load_tokenizer
    from llm_pretrain.paths import TOKENIZER_DIR
    from llm_pretrain.prepare import build_datasets
    from pretrain import DataTrainingArguments

    tokenizer = load_tokenizer(TOKENIZER_DIR)
    data_args = DataTrainingArguments(train_files=[corpus], streaming=True)
    train_ds, _, _ = build_datasets(load_train_data([corpus], True), tokenizer, data_args,
                                    seed=42)
    total = sum(1 for _ in train_ds) // BATCH
    loader = StatefulDataLoader(train_ds, batch_size=BATCH, collate_fn=lm_collator)
    batches = iter(loader)
    for _ in range(int(total * fraction)):
        next(batches)
    torch.save(loader.state_dict(), path)
    return {"batches": int(total * fraction), "of": total}


def seconds_to_first_step(cmd: list[str], env: dict) -> float:
    """Launch `cmd` and return the seconds until it logs its first training loss."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=ROOT)
    restored = False
    for line in proc.stdout:
        restored = restored or "the stream continues where" in line
        if "'loss'" in line:
            seconds = time.perf_counter() - start
            break
    else:
        sys.exit(f"{' '.join(cmd)} logged no training step (exit {proc.wait()})")
    proc.kill()
    proc.wait()
    if not restored:
        sys.exit("the run did not restore the saved stream position")
    return seconds


def bench_stream(tmp: Path, repeats: int) -> None:
    corpus = tmp / "corpus.jsonl"
    docs = make_corpus(corpus, 100)
    print(f"stream: {corpus.stat().st_size / 1e6:.0f} MB, {docs:,} documents, "
          f"{os.cpu_count()} cores, best of {repeats}")
    rows = ["map-style", "streamed", "streamed, Python filters"]
    best = {}
    for repeat in range(repeats):
        for row in rows:
            cache = tmp / f"cache-{repeat}-{rows.index(row)}"
            result = run_json(Path(__file__), "--worker", row, "--corpus", str(corpus),
                              env={"HF_DATASETS_CACHE": str(cache)})
            shutil.rmtree(cache, ignore_errors=True)
            if row not in best or result["seconds"] < best[row]["seconds"]:
                best[row] = result
    rate = {row: r["tokens"] / r["seconds"] for row, r in best.items()}
    print_table(["path", "seconds", "tokens in blocks", "tokens/s", "x map-style"], [
        [row, f"{r['seconds']:.1f}", f"{r['tokens']:,}", f"{rate[row]:,.0f}",
         f"{rate[row] / rate['map-style']:.2f}"] for row, r in best.items()])
    print(f"result: streamed_vs_map_style={rate['streamed'] / rate['map-style']:.2f} "
          f"(goal >= 0.8)")


def bench_resume(tmp: Path, repeats: int) -> None:
    corpus = tmp / "corpus.jsonl"
    make_corpus(corpus, 100)
    env = {**os.environ, **OFFLINE, "HF_DATASETS_CACHE": str(tmp / "cache")}
    out = tmp / "run"
    args = [sys.executable, str(SCRIPT), "--streaming", "true", "--train_files", str(corpus),
            "--output_dir", str(out), "--eval_strategy", "no", "--logging_steps", "1"]
    done = subprocess.run(args + ["--max_steps", "2", "--save_steps", "1"], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    (out / "all_results.json").unlink()
    shutil.rmtree(out / "checkpoint-2")  # resume from checkpoint-1, with the state we plant
    states = {}
    for fraction in (0.1, 0.9):
        states[fraction] = tmp / f"state-{fraction}.pt"
        info = run_json(Path(__file__), "--state", str(fraction), "--corpus", str(corpus),
                        "--out", str(states[fraction]), env={"HF_DATASETS_CACHE": str(tmp / "c")})
        print(f"loader state at {fraction:.0%}: batch {info['batches']:,} of {info['of']:,}")
    best = {}
    for _ in range(repeats):
        for fraction, state in states.items():
            shutil.copy(state, out / "checkpoint-1" / "dataloader_rank0.pt")
            seconds = seconds_to_first_step(args + ["--max_steps", "3"], env)
            best[fraction] = min(seconds, best.get(fraction, seconds))
    print_table(["resume at", "seconds from launch to the first step"],
                [[f"{f:.0%} of the stream", f"{s:.1f}"] for f, s in best.items()])
    print(f"result: resume_90_vs_10={best[0.9] / best[0.1]:.2f} (goal <= 1.2)")


def bench_memory(tmp: Path) -> None:
    rows = []
    for gb in (0.25, 1.0):
        corpus = tmp / f"corpus-{gb}.jsonl"
        docs = make_corpus(corpus, gb * 1000)
        result = run_json(Path(__file__), "--prepare", str(corpus), "--out",
                          str(tmp / f"tokenized-{gb}"),
                          env={"HF_DATASETS_CACHE": str(tmp / f"cache-{gb}")})
        rows.append([f"{corpus.stat().st_size / 1e9:.2f} GB, {docs:,} documents",
                     f"{result['seconds']:.0f}", f"{result['peak_gb']:.2f} ({result['peak_at']})",
                     f"{result['anon_gb']:.2f}", f"{result['bytes_per_token']:.2f}",
                     f"{result['with_labels']:.2f}"])
        shutil.rmtree(tmp / f"cache-{gb}", ignore_errors=True)
        corpus.unlink()
    print_table(["corpus", "seconds", "peak RSS, largest process (GB) (which, when)",
                 "peak anonymous memory, largest process (GB)", "bytes/token on disk",
                 "with a labels column"], rows)
    small, large = (float(row[2].split()[0]) for row in rows)
    anon_small, anon_large = float(rows[0][3]), float(rows[1][3])
    print(f"result: peak_rss_1gb_vs_025gb={large / small:.2f} (goal <= 1.2), "
          f"peak_rss_gb={max(small, large):.2f} (goal <= 3), "
          f"anonymous_1gb_vs_025gb={anon_large / anon_small:.2f}")


def tree_memory(proc) -> tuple[float, float, str]:
    """(largest resident set, largest anonymous memory, which process has that resident set) of
    `proc` and its children, in GB. A resident set includes the memory-mapped Arrow pages the
    process touched, which the kernel drops under pressure; anonymous memory is what the
    process allocated."""
    import psutil

    largest = anonymous = 0
    which = ""
    for p in [proc, *proc.children(recursive=True)]:
        try:
            info = p.memory_info()
        except psutil.NoSuchProcess:
            continue
        if info.rss > largest:
            largest, which = info.rss, "the script" if p.pid == proc.pid else "a worker"
        anonymous = max(anonymous, info.rss - info.shared)
    return largest / 1e9, anonymous / 1e9, which


def prepare_worker(corpus: str, out: str) -> dict:
    """--tokenized_path in a child process, its memory sampled every 0.1 s; bytes per token."""
    import psutil

    from llm_pretrain.data import load_prepared

    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, str(SCRIPT), "--tokenized_path", out,
                              "--train_files", corpus, "--preprocessing_num_workers",
                              str(os.cpu_count())], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT)
    proc, peak_rss, peak_anon, peak_at = psutil.Process(child.pid), 0.0, 0.0, ""
    while child.poll() is None:
        rss, anon, which = tree_memory(proc)
        if rss > peak_rss:
            peak_rss, peak_at = rss, f"{which}, {time.perf_counter() - start:.0f} s"
        peak_anon = max(peak_anon, anon)
        time.sleep(0.1)
    if child.returncode != 0:
        sys.exit(child.stderr.read()[-3000:])
    seconds = time.perf_counter() - start
    train, _, report = load_prepared(out)
    tokens = report["tokens_kept"]
    saved = sum(p.stat().st_size for p in (Path(out) / "train").glob("*.arrow"))
    # the blocks' layout before: the same int32 token array again as a `labels` column
    with_labels = Path(out).parent / "with-labels"
    train.with_format("arrow").map(
        lambda t: t.append_column("labels", t.column("input_ids")), batched=True,
        keep_in_memory=True).save_to_disk(str(with_labels))
    before = sum(p.stat().st_size for p in with_labels.glob("*.arrow"))
    shutil.rmtree(with_labels)
    return {"seconds": seconds, "peak_gb": peak_rss, "peak_at": peak_at, "anon_gb": peak_anon,
            "bytes_per_token": saved / tokens, "with_labels": before / tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["stream", "resume", "memory"], action="append")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(stream_worker(args.worker, args.corpus)))
    elif args.state is not None:
        print(json.dumps(save_loader_state(args.corpus, args.state, args.out)))
    elif args.prepare:
        print(json.dumps(prepare_worker(args.prepare, args.out)))
    else:
        for part in args.part or ["stream", "resume", "memory"]:
            with tempfile.TemporaryDirectory() as tmp:
                free = shutil.disk_usage(tmp).free / 1e9
                if free < 8:
                    parser.error(f"needs about 8 GB free in {tmp}, found {free:.0f} GB")
                {"stream": lambda: bench_stream(Path(tmp), args.repeats),
                 "resume": lambda: bench_resume(Path(tmp), args.repeats),
                 "memory": lambda: bench_memory(Path(tmp))}[part]()


if __name__ == "__main__":
    main()
