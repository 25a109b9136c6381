"""Draw the course diagrams into images/ (our own figures; nothing is taken from the book).

    python tools/make_images.py

00_pipeline.png: corpus -> tokenizer -> blocks -> model -> Trainer -> script/DeepSpeed.
03_packing.png: documents with EOS concatenated and cut into fixed-size blocks.
05_zero2_memory.png: per-GPU memory of Qwen2.5-1.5B under ZeRO-2 for 1, 2, 4 and 8 GPUs.
"""

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

OUT = Path(__file__).resolve().parents[1] / "images"
N_PARAMS = 1_543_714_304  # Qwen2.5-1.5B


def pipeline() -> Figure:
    steps = [
        ("seq-monkey JSONL", "load_dataset('json')"),
        ("tokenizer + EOS", "map(batched=True)"),
        ("blocks of N tokens", "group_texts"),
        ("Qwen2 model", "AutoModelForCausalLM"),
        ("Trainer", "TrainingArguments"),
        ("pretrain.py", "deepspeed ZeRO-2"),
    ]
    fig = Figure(figsize=(11, 1.9))
    ax = fig.subplots()
    for i, (title, call) in enumerate(steps):
        ax.add_patch(FancyBboxPatch((i * 1.8, 0), 1.5, 1, boxstyle="round,pad=0.05",
                                    facecolor=f"C{i}", alpha=0.25, edgecolor=f"C{i}"))
        ax.text(i * 1.8 + 0.75, 0.62, title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(i * 1.8 + 0.75, 0.3, call, ha="center", va="center", fontsize=7.5,
                family="monospace")
        if i:
            ax.annotate("", xy=(i * 1.8 - 0.05, 0.5), xytext=(i * 1.8 - 0.27, 0.5),
                        arrowprops={"arrowstyle": "->"})
    ax.set(xlim=(-0.2, len(steps) * 1.8 - 0.1), ylim=(-0.2, 1.2))
    ax.axis("off")
    fig.tight_layout()
    return fig


def packing() -> Figure:
    docs = [7, 3, 11, 5, 2, 9, 6]  # tokens per document, EOS included
    block = 8
    fig = Figure(figsize=(9, 2.6))
    ax = fig.subplots()
    start = 0
    for i, n in enumerate(docs):
        ax.broken_barh([(start, n - 1)], (1.1, 0.6), color=f"C{i}", alpha=0.6)
        ax.broken_barh([(start + n - 1, 1)], (1.1, 0.6), color="black")
        start += n
    total = start
    for b in range(total // block + 1):
        left = b * block
        width = min(block, total - left)
        kept = left + block <= total
        ax.broken_barh([(left, width)], (0.1, 0.6), facecolor="none",
                       edgecolor="black" if kept else "red", linestyle="-" if kept else "--")
        ax.text(left + width / 2, 0.4, f"block {b}" if kept else "dropped", ha="center",
                va="center", fontsize=8, color="black" if kept else "red")
    ax.text(-1, 1.4, "documents\n(black = EOS)", ha="right", va="center", fontsize=8)
    ax.text(-1, 0.4, f"blocks of {block}", ha="right", va="center", fontsize=8)
    ax.set(xlim=(-9, total + 1), ylim=(0, 1.9), xlabel="token position in the concatenated stream")
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def zero2_memory() -> Figure:
    gpus = [1, 2, 4, 8]
    parts = {"bf16 weights (2 B)": [2 * N_PARAMS / 1e9] * 4,
             "bf16 grads (2 B / g)": [2 * N_PARAMS / g / 1e9 for g in gpus],
             "fp32 master + Adam m, v (12 B / g)": [12 * N_PARAMS / g / 1e9 for g in gpus]}
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    bottom = [0.0] * len(gpus)
    for label, values in parts.items():
        ax.bar([str(g) for g in gpus], values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for i, total in enumerate(bottom):
        ax.text(i, total + 0.4, f"{total:.1f} GB", ha="center", fontsize=8)
    ax.set(xlabel="GPUs (g)", ylabel="GB per GPU",
           title="Qwen2.5-1.5B model states per GPU under ZeRO-2")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, draw in [("00_pipeline.png", pipeline), ("03_packing.png", packing),
                       ("05_zero2_memory.png", zero2_memory)]:
        draw().savefig(OUT / name, dpi=110)
        print(f"wrote images/{name}")


if __name__ == "__main__":
    main()
