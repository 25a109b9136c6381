"""Benchmark 2: the Trainer with our script's settings against a plain PyTorch training loop.

    python bench/trainer_overhead.py            # 60 steps each, 3 repeats, interleaved

Same tiny model, same initial weights, batch 16 x 128 tokens, fp32, the same packed blocks
(each arm shuffles them), fused AdamW (the Trainer's default `adamw_torch_fused`) with the same
weight decay, learning-rate schedule and gradient clipping. The Trainer run uses the script's
TrainingArguments defaults, its token counting and ThroughputCallback, logging every 10 steps;
evaluation and checkpoints are off in both (they are not training). Each run is a fresh process;
tokens/s is taken over the whole run, setup included. Goal: Trainer >= 0.9x the loop.
"""

import argparse
import json
import tempfile
import time
from itertools import islice
from pathlib import Path

from common import print_table, run_json

BENCH = Path(__file__).resolve().parent

BATCH, BLOCK, SEED = 16, 128, 42


def worker(kind: str, steps: int) -> dict:
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    from llm_pretrain.data import lm_collator, load_corpus, prepare_lm_dataset
    from llm_pretrain.metrics import ThroughputCallback
    from llm_pretrain.model import build_model, load_tokenizer
    from llm_pretrain.paths import CORPUS_FILE, TINY_CONFIG_DIR, TOKENIZER_DIR
    from pretrain import TRAINING_DEFAULTS  # the script's TrainingArguments defaults

    tokenizer = load_tokenizer(TOKENIZER_DIR)
    blocks, _ = prepare_lm_dataset(load_corpus([CORPUS_FILE]), tokenizer, BLOCK)
    set_seed(SEED)
    model = build_model(config_name=TINY_CONFIG_DIR, dtype=torch.float32)
    defaults = {**TRAINING_DEFAULTS, "output_dir": tempfile.mkdtemp(),
                "max_steps": steps, "eval_strategy": "no", "save_strategy": "no"}
    args = TrainingArguments(**defaults)
    start = time.perf_counter()
    if kind == "trainer":
        trainer = Trainer(model=model, args=args, train_dataset=blocks,
                          processing_class=tokenizer, data_collator=lm_collator)
        trainer.callback_handler.callbacks.insert(0, ThroughputCallback())
        trainer.train()
        tokens = trainer.state.num_input_tokens_seen
        final_loss = [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]
    else:
        from torch.utils.data import DataLoader
        from transformers import get_scheduler

        generator = torch.Generator().manual_seed(SEED)
        loader = DataLoader(blocks, batch_size=BATCH, shuffle=True, generator=generator,
                            collate_fn=lm_collator)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}],
                                      lr=args.learning_rate, fused=True)  # as args.optim
        scheduler = get_scheduler(args.lr_scheduler_type, optimizer, args.warmup_steps, steps)
        model.train()
        tokens, losses = 0, []
        for batch in islice(loader, steps):
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            tokens += batch["input_ids"].numel()
            losses.append(loss.item())
        final_loss = sum(losses[-10:]) / 10
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": tokens, "final_loss": final_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["loop", "trainer"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps)))
        return
    best = {}
    for _ in range(args.repeats):
        for kind in ["loop", "trainer"]:
            result = run_json(BENCH / "trainer_overhead.py", "--worker", kind,
                              "--steps", str(args.steps))
            if kind not in best or result["seconds"] < best[kind]["seconds"]:
                best[kind] = result
    print(f"{args.steps} steps x {BATCH} x {BLOCK} tokens, fp32, CPU; best of {args.repeats}")
    loop_rate = best["loop"]["tokens"] / best["loop"]["seconds"]
    print_table(["run", "seconds", "tokens", "tokens/s", "x plain loop", "loss (last 10 steps)"], [
        [kind, f"{r['seconds']:.2f}", f"{r['tokens']:,}", f"{r['tokens'] / r['seconds']:,.0f}",
         f"{r['tokens'] / r['seconds'] / loop_rate:.2f}", f"{r['final_loss']:.3f}"]
        for kind, r in best.items()])
    ratio = best["trainer"]["tokens"] / best["trainer"]["seconds"] / loop_rate
    print(f"result: trainer_vs_plain_loop={ratio:.2f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
