# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
"""Interactive explorers for the classroom, generated from the chapters' `#| export classroom`
cells by tools/export.py. Each is a plain, tested function plus a small ipywidgets front end."""

import subprocess
import sys

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from transformers import AutoModelForCausalLM, get_scheduler

__all__ = [
    "PRECISION_BYTES",
    "LOGITS_BYTES",
    "count_parameters",
    "training_memory_gb",
    "PEAK_PROBE",
    "logits_probe_config",
    "peak_memory_gb",
    "GPU_MEMORY_GB",
    "memory_report",
    "memory_explorer",
    "packing_stats",
    "draw_packing",
    "packing_explorer",
    "LR_SCHEDULES",
    "lr_curves",
    "plot_lr_curves",
    "lr_explorer",
]


# ---- chapters/01_config.ipynb, cell 19 ----
# bytes per parameter for weights, gradients and AdamW state, and per saved activation value
PRECISION_BYTES = {"bf16 mixed": (2, 2, 12, 2), "fp32": (4, 4, 8, 4)}
# bytes per token and vocabulary entry at the loss's peak, in backward: three fp32 tensors of
# the logits' shape (the saved log-softmax, its gradient, the gradient of the logits)
LOGITS_BYTES = 12


def count_parameters(config) -> int:
    """Parameters of the model a config describes, counted on the meta device (no memory)."""
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config).num_parameters()


def training_memory_gb(
    config,
    micro_batch: int,
    seq_len: int,
    n_gpus: int = 1,
    zero_stage: int = 2,
    gradient_checkpointing: bool = False,
    precision: str = "bf16 mixed",
) -> dict:
    """Per-GPU memory (GB) of AdamW training, by component; ZeRO stage 1/2/3 shards the optimizer
    state / + gradients / + weights over `n_gpus`."""
    weight_b, grad_b, optim_b, act_b = PRECISION_BYTES[precision]
    n = count_parameters(config)
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = h // config.num_attention_heads * config.num_key_value_heads
    tokens = micro_batch * seq_len
    per_layer = 6 * h + 2 * kv + 4 * i  # saved values per token per layer
    saved = h * layers + per_layer if gradient_checkpointing else per_layer * layers
    return {
        "weights": weight_b * n / (n_gpus if zero_stage >= 3 else 1) / 1e9,
        "grads": grad_b * n / (n_gpus if zero_stage >= 2 else 1) / 1e9,
        "optimizer": optim_b * n / (n_gpus if zero_stage >= 1 else 1) / 1e9,
        "activations": act_b * tokens * saved / 1e9,
        "logits": LOGITS_BYTES * tokens * config.vocab_size / 1e9,
    }


# ---- chapters/01_config.ipynb, cell 32 ----
# one forward + backward on the CPU in a fresh process; prints its peak resident memory in bytes
PEAK_PROBE = """
import resource, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM
config = AutoConfig.from_pretrained(sys.argv[1])
micro_batch, seq_len = int(sys.argv[2]), int(sys.argv[3])
model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
ids = torch.randint(0, config.vocab_size, (micro_batch, seq_len),
                    generator=torch.Generator().manual_seed(0))
model(input_ids=ids, labels=ids).loss.backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
print(peak if sys.platform == "darwin" else peak * 1024)
"""


def logits_probe_config(config):
    """`config` cut to 1 layer of width 64 with its full vocabulary: nearly all the memory that
    grows with the batch is then the logits'."""
    return type(config)(
        **{
            **config.to_dict(),
            "num_hidden_layers": 1,
            "hidden_size": 64,
            "intermediate_size": 192,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "layer_types": None,
        }
    )


def peak_memory_gb(config_dir, micro_batch: int, seq_len: int) -> float:
    """Peak memory (GB) of a new process that builds the model of `config_dir` in fp32 and runs
    one training forward + backward pass of `micro_batch` x `seq_len` random tokens on the CPU."""
    probe = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, str(config_dir), str(micro_batch), str(seq_len)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(probe.stdout) / 1e9


# ---- chapters/01_config.ipynb, cell 48 ----
GPU_MEMORY_GB = (24, 40, 80, 141)


def memory_report(
    base_config,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    vocab: int,
    seq_len: int,
    micro_batch: int,
    precision: str,
    n_gpus: int,
    zero_stage: int,
    checkpointing: bool,
) -> str:
    """Parameters, per-GPU memory by component and which cards it fits, as text."""
    if hidden % heads or heads % kv_heads:
        return "hidden size must be a multiple of heads, and heads a multiple of KV heads"
    sizes = dict(
        num_hidden_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=vocab,
        layer_types=None,  # re-derived
        intermediate_size=round(hidden * base_config.intermediate_size / base_config.hidden_size),
    )  # the base's MLP ratio
    config = type(base_config)(**{**base_config.to_dict(), **sizes})
    mem = training_memory_gb(
        config, micro_batch, seq_len, n_gpus, zero_stage, checkpointing, precision
    )
    total = sum(mem.values())
    fits = "  ".join(f"{gb} GB {'yes' if total <= gb else 'no'}" for gb in GPU_MEMORY_GB)
    return "\n".join(
        [
            f"parameters: {count_parameters(config) / 1e9:.3f} B",
            *(f"{part:<12}{gb:8.1f} GB" for part, gb in mem.items()),
            f"{'total':<12}{total:8.1f} GB per GPU",
            f"fits: {fits}",
        ]
    )


def memory_explorer(base_config, **start) -> widgets.interactive:
    """Sliders for `memory_report`; `start` overrides the starting values (default: the base)."""
    c = base_config
    values = (
        dict(
            layers=c.num_hidden_layers,
            hidden=c.hidden_size,
            heads=c.num_attention_heads,
            kv_heads=c.num_key_value_heads,
            vocab=c.vocab_size,
            seq_len=2048,
            micro_batch=4,
            precision="bf16 mixed",
            n_gpus=8,
            zero_stage=2,
            checkpointing=True,
        )
        | start
    )
    slider = dict(continuous_update=False, style={"description_width": "initial"})
    controls = dict(
        layers=widgets.IntSlider(values["layers"], min=1, max=96, description="layers", **slider),
        hidden=widgets.IntSlider(
            values["hidden"], min=128, max=8192, step=128, description="hidden size", **slider
        ),
        heads=widgets.IntSlider(values["heads"], min=1, max=128, description="heads", **slider),
        kv_heads=widgets.IntSlider(
            values["kv_heads"], min=1, max=128, description="KV heads", **slider
        ),
        vocab=widgets.IntSlider(
            values["vocab"], min=1024, max=262144, step=1024, description="vocab", **slider
        ),
        seq_len=widgets.Dropdown(
            options=[512, 1024, 2048, 4096, 8192, 32768],
            value=values["seq_len"],
            description="sequence length",
        ),
        micro_batch=widgets.IntSlider(
            values["micro_batch"], min=1, max=64, description="micro-batch", **slider
        ),
        precision=widgets.Dropdown(
            options=list(PRECISION_BYTES), value=values["precision"], description="precision"
        ),
        n_gpus=widgets.Dropdown(
            options=[1, 2, 4, 8, 16, 32, 64], value=values["n_gpus"], description="GPUs"
        ),
        zero_stage=widgets.Dropdown(
            options=[0, 1, 2, 3], value=values["zero_stage"], description="ZeRO stage"
        ),
        checkpointing=widgets.Checkbox(values["checkpointing"], description="checkpointing"),
    )
    return widgets.interactive(lambda **kw: print(memory_report(base_config, **kw)), **controls)


# ---- chapters/03_data.ipynb, cell 29 ----
def packing_stats(doc_lengths: list[int], block_size: int, batch_size: int) -> dict:
    """Packing computed from token counts alone (EOS included), one map batch at a time: the same
    blocks and dropped tokens as `prepare_lm_dataset`, without tokenizing anything."""
    blocks = dropped = 0
    for start in range(0, len(doc_lengths), batch_size):
        tokens = sum(doc_lengths[start : start + batch_size])
        blocks, dropped = blocks + tokens // block_size, dropped + tokens % block_size
    tokens_in = sum(doc_lengths)
    return {
        "documents": len(doc_lengths),
        "tokens_in": tokens_in,
        "blocks": blocks,
        "tokens_dropped": dropped,
        "dropped_percent": round(100 * dropped / max(tokens_in, 1), 3),
        # documents / blocks = documents that end (EOS) in a block, on average; a block
        # touches one more, the document it starts in
        "documents_ending_per_block": round(len(doc_lengths) / max(blocks, 1), 2),
    }


# ---- chapters/03_data.ipynb, cell 76 ----
def draw_packing(
    doc_lengths: list[int], block_size: int, batch_size: int = 1000, n_blocks: int = 6
):
    """The first `n_blocks` blocks as rows of bars, one colour per document: every colour change
    inside a row is an EOS, and a row that starts with the previous row's colour starts
    mid-document."""
    fig, ax = plt.subplots(figsize=(8, 2.6))
    row = 0
    for start in range(0, len(doc_lengths), batch_size):
        spans, offset = [], 0  # (document, first token, end) within this map batch
        for doc, length in enumerate(doc_lengths[start : start + batch_size], start):
            spans.append((doc, offset, offset + length))
            offset += length
        for first in range(0, offset // block_size * block_size, block_size):
            if row == n_blocks:
                break
            for doc, lo, hi in spans:
                if lo < first + block_size and hi > first:
                    left = max(lo, first)
                    ax.broken_barh(
                        [(left - first, min(hi, first + block_size) - left)],
                        (row - 0.4, 0.8),
                        color=f"C{doc % 10}",
                    )
            row += 1
    ax.set(
        xlim=(0, block_size),
        xlabel="token position in block",
        ylabel="block",
        yticks=range(n_blocks),
        title=f"documents (colours) packed into blocks of {block_size}",
    )
    ax.invert_yaxis()
    return fig


def packing_explorer(doc_lengths: list[int]) -> widgets.interactive:
    """Dropdowns for block size and map batch size -> the packing report and picture."""

    def show(block_size: int, batch_size: int) -> None:
        stats = packing_stats(doc_lengths, block_size, batch_size)
        print(", ".join(f"{k}: {v:,}" for k, v in stats.items()))
        draw_packing(doc_lengths, block_size, batch_size)
        plt.show()

    return widgets.interactive(
        show,
        block_size=widgets.Dropdown(options=[32, 64, 128, 256, 512, 1024, 2048], value=128),
        batch_size=widgets.Dropdown(options=[10, 100, 1000, len(doc_lengths)], value=1000),
    )


# ---- chapters/05_script.ipynb, cell 123 ----
LR_SCHEDULES = ["linear", "cosine", "constant_with_warmup", "inverse_sqrt", "polynomial"]


def lr_curves(
    total_steps: int, warmup_steps: int, scheduler_type: str = "cosine", peak_lr: float = 1e-3
) -> dict[str, list[float]]:
    """The learning rate of every optimizer step under the Trainer's `--lr_scheduler_type` and
    under DeepSpeed's WarmupLR with its defaults (log warm-up, then constant), which a
    `scheduler` block in the DeepSpeed config puts in the Trainer's place."""
    from deepspeed.runtime.lr_schedules import WarmupLR  # a slow import: only when asked
    from deepspeed.utils import logger as deepspeed_logger

    def follow(make_scheduler) -> list[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak_lr)
        level = deepspeed_logger.level
        deepspeed_logger.setLevel("ERROR")
        try:
            scheduler = make_scheduler(optimizer)
        finally:
            deepspeed_logger.setLevel(level)
        rates = []
        for _ in range(total_steps):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return rates

    return {
        f"Trainer {scheduler_type}": follow(
            lambda opt: get_scheduler(scheduler_type, opt, warmup_steps, total_steps)
        ),
        "DeepSpeed WarmupLR": follow(
            lambda opt: WarmupLR(opt, warmup_max_lr=peak_lr, warmup_num_steps=warmup_steps)
        ),
    }


# ---- chapters/05_script.ipynb, cell 124 ----
def plot_lr_curves(curves: dict[str, list[float]]):
    """The schedules side by side."""
    fig, ax = plt.subplots(figsize=(7, 3))
    for name, rates in curves.items():
        ax.plot(range(len(rates)), rates, label=name)
    ax.set(xlabel="optimizer step", ylabel="learning rate", title="learning-rate schedules")
    ax.legend()
    return fig


def lr_explorer(peak_lr: float = 1e-3) -> widgets.interactive:
    """Sliders for warm-up and total steps and a scheduler menu -> both curves, plotted."""

    def show(warmup_steps: int, total_steps: int, scheduler_type: str) -> None:
        curves = lr_curves(total_steps, min(warmup_steps, total_steps), scheduler_type, peak_lr)
        print(" | ".join(f"{name}: last step {rates[-1]:.2e}" for name, rates in curves.items()))
        plot_lr_curves(curves)
        plt.show()

    slider = dict(continuous_update=False)
    return widgets.interactive(
        show,
        warmup_steps=widgets.IntSlider(20, min=2, max=2000, description="warm-up", **slider),
        total_steps=widgets.IntSlider(262, min=10, max=10000, description="total", **slider),
        scheduler_type=widgets.Dropdown(options=LR_SCHEDULES, value="cosine", description="type"),
    )
