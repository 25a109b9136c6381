# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
"""What a run reports: tokens/s and MFU, perplexity and bits per byte, the loss curve."""

import logging
import math
import netrc
import os
import time
from pathlib import Path

import torch
from datasets import Dataset
from matplotlib.figure import Figure
from transformers import TrainerCallback

__all__ = [
    "lm_metrics",
    "bytes_per_token",
    "plot_loss_curve",
    "ThroughputCallback",
    "batch_arithmetic",
    "prepare_tracking",
    "PEAK_BF16_TFLOPS",
    "lookup_peak_tflops",
    "peak_flops",
    "flops_per_token",
]


# ---- chapters/04_trainer.ipynb, cell 18 ----
def lm_metrics(loss: float, bytes_per_token: float) -> dict:
    """Perplexity and bits per byte from a mean cross-entropy `loss` in nats per token.

    Bits per byte divides by the bytes each token stands for, so it compares across tokenizers.
    """
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "bits_per_byte": loss / math.log(2) / bytes_per_token,
    }


# ---- chapters/04_trainer.ipynb, cell 19 ----
def bytes_per_token(lm_ds: Dataset, tokenizer, max_blocks: int = 2000) -> float:
    """UTF-8 bytes of text per token over the first `max_blocks` packed blocks.

    Special tokens count as 0 bytes; the cap keeps this cheap on a large eval split.
    """
    blocks = lm_ds.select(range(min(max_blocks, lm_ds.num_rows)))[:]["input_ids"]
    texts = tokenizer.batch_decode(blocks, skip_special_tokens=True)
    return sum(len(t.encode("utf-8")) for t in texts) / sum(len(ids) for ids in blocks)


# ---- chapters/04_trainer.ipynb, cell 23 ----
def plot_loss_curve(log_history: list[dict], path: str | Path, title: str = "") -> None:
    """Draw train and eval loss against the optimizer step from `trainer.state.log_history`."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy (nats/token)", title=title)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# ---- chapters/04_trainer.ipynb, cell 39 ----
class ThroughputCallback(TrainerCallback):
    """Add `tokens_per_second` (and `mfu` when FLOPs and peak are given) to each training log.

    Tokens are the Trainer's own count (`include_num_input_tokens_seen="all"`, summed over all
    processes). Time runs from step to step and pauses for evaluation and checkpoint saves, so the
    rate is the training speed. MFU = achieved FLOP/s per device / the device's peak FLOP/s.
    """

    def __init__(self, flops_per_token: float | None = None, peak_flops: float | None = None):
        self.flops_per_token, self.peak_flops = flops_per_token, peak_flops

    def on_train_begin(self, args, state, control, **kwargs):
        self.mark = self.tokens_at_last_log = None  # every train() call starts its own clock
        self.seconds = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if self.mark is None:  # first step, or the first one after an evaluation or a save
            self.mark = time.perf_counter()
        if self.tokens_at_last_log is None:
            self.tokens_at_last_log = state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.seconds += now - self.mark
        self.mark = now

    def on_evaluate(self, args, state, control, **kwargs):
        self.mark = None

    on_save = on_evaluate

    def on_log(self, args, state, control, logs=None, **kwargs):
        if "loss" not in logs or self.seconds == 0 or args.include_num_input_tokens_seen == "no":
            return  # only training log lines, and only when the Trainer counts tokens
        rate = (state.num_input_tokens_seen - self.tokens_at_last_log) / self.seconds
        extra = {"tokens_per_second": round(rate, 1)}
        if self.flops_per_token and self.peak_flops:
            extra["mfu"] = round(rate / args.world_size * self.flops_per_token / self.peak_flops, 4)
        logs.update(extra)
        state.log_history[-1].update(extra)  # the Trainer stored this log line before the callbacks
        self.tokens_at_last_log, self.seconds = state.num_input_tokens_seen, 0.0


# ---- chapters/05_script.ipynb, cell 91 ----
def batch_arithmetic(training_args, n_train: int | None, block_size: int) -> str:
    """World size x per-device batch x accumulation = sequences and tokens per optimizer step,
    and the number of optimizer steps (`n_train` blocks, None for a stream), as one log line."""
    args = training_args
    per_step = args.world_size * args.per_device_train_batch_size * args.gradient_accumulation_steps
    if args.max_steps > 0:
        total = args.max_steps
    else:
        total = math.ceil(
            math.ceil(n_train / (args.world_size * args.per_device_train_batch_size))
            / args.gradient_accumulation_steps
            * args.num_train_epochs
        )
    blocks = "streamed" if n_train is None else f"{n_train:,}"
    return (
        f"world size {args.world_size} x per-device batch {args.per_device_train_batch_size} x "
        f"grad accumulation {args.gradient_accumulation_steps} = {per_step} sequences x "
        f"{block_size} tokens = {per_step * block_size:,} tokens per optimizer step | "
        f"train blocks {blocks}, optimizer steps {total:,}"
    )


# ---- chapters/05_script.ipynb, cell 94 ----
logger = logging.getLogger(__name__)


def prepare_tracking(training_args) -> None:
    """Without W&B credentials, log offline to output_dir/wandb rather than prompt or fail."""
    if "wandb" not in training_args.report_to:
        return
    os.environ.setdefault("WANDB_DIR", training_args.output_dir)
    try:
        logged_in = netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        logged_in = False
    if not (logged_in or os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")):
        os.environ["WANDB_MODE"] = "offline"
        logger.warning(
            "W&B: no API key found, logging offline to %s/wandb (`wandb sync` later)",
            training_args.output_dir,
        )


# ---- chapters/05_script.ipynb, cell 96 ----
PEAK_BF16_TFLOPS = {  # dense bf16 tensor-core peak of one device, from the vendors' data sheets
    "B200": 2250,
    "H200": 989,
    "H200 NVL": 835,
    "H100": 989,
    "H100 NVL": 835,
    "H100 PCIe": 756,
    "A100": 312,
    "L40S": 362,
    "L40": 181,
    "L4": 121,
    "RTX 4090": 165,
    "RTX 3090": 71,
    # parts sold in China: H800/A800 compute like H100/A100 (less interconnect), H20/L20 less
    "H800": 989,
    "H800 PCIe": 756,
    "A800": 312,
    "H20": 148,
    "L20": 119.5,
}


def lookup_peak_tflops(device_name: str) -> float | None:
    """Peak bf16 TFLOP/s for a GPU name as torch reports it ("NVIDIA H200"); None if unknown."""
    matches = [key for key in PEAK_BF16_TFLOPS if key in device_name]
    return PEAK_BF16_TFLOPS[max(matches, key=len)] if matches else None


def peak_flops(device: torch.device, tflops: float | None = None) -> float | None:
    """Peak FLOP/s of one device: `tflops` when given, else looked up for a CUDA GPU."""
    if tflops is None and device.type == "cuda":
        tflops = lookup_peak_tflops(torch.cuda.get_device_name(device))
    return tflops * 1e12 if tflops else None


def flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token, 6N + 12·L·d·T: N weights in matrix multiplies (forward and
    backward) plus attention over a context of T = `seq_len` tokens (causal masking ignored, as
    in PaLM). Counts full sizes also when ZeRO-3 has partitioned the weights (`ds_numel`)."""

    def size(p) -> int:
        return getattr(p, "ds_numel", p.numel())

    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings().weight
    n = sum(size(p) for p in model.parameters()) - size(embedding)
    n += size(output) if output is embedding else 0
    config = model.config
    return 6 * n + 12 * config.num_hidden_layers * config.hidden_size * seq_len
