"""The memory model of chapter 01 against a real training step on one GPU.

    python bench/gpu_memory.py                      # Qwen2.5-1.5B, T = 2048, on CUDA
    python bench/gpu_memory.py --config assets/tiny-qwen2 --block 128   # rehearsal on a CPU

For micro-batch 1, 2 and 4, activation checkpointing off and on, it trains two AdamW steps in
bf16 autocast (fp32 weights, gradients and optimizer state: 16 bytes a parameter, as the
calculator's "bf16 mixed" on one GPU) and takes `torch.cuda.max_memory_allocated()`, against
`training_memory_gb` of llm_pretrain.classroom (chapter 01's calculator) for the same settings.
Prints one JSON object: a row per setting with both numbers and the error. Off by more than 15%
is what issue 15 asks to fix in the calculator. On a CPU the measured column is null: the
rehearsal checks the flow, not the numbers.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from llm_pretrain.classroom import training_memory_gb
from llm_pretrain.paths import QWEN_CONFIG_DIR


def peak_gb(model, optimizer, batch: int, block: int, device: torch.device) -> float | None:
    """Peak device memory (GB) over two optimizer steps of one micro-batch of random tokens."""
    ids = torch.randint(0, model.config.vocab_size, (batch, block), device=device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):  # the first step allocates AdamW's state
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(QWEN_CONFIG_DIR))
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = AutoConfig.from_pretrained(args.config)
    config._attn_implementation = "sdpa"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    rows = []
    for checkpointing in (False, True):
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.train()
        for batch in args.batches:
            measured = peak_gb(model, optimizer, batch, args.block, device)
            parts = training_memory_gb(config, batch, args.block, n_gpus=1,
                                       gradient_checkpointing=checkpointing)
            model_gb = sum(parts.values())
            rows.append({"micro_batch": batch, "checkpointing": checkpointing,
                         "measured_gb": measured, "calculator_gb": round(model_gb, 3),
                         "error": None if measured is None else round(model_gb / measured - 1, 3)})
            print(rows[-1], file=sys.stderr)
    print(json.dumps({"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                      "config": Path(args.config).name, "block": args.block, "rows": rows}))


if __name__ == "__main__":
    main()
