# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
r"""Pretrain a causal language model (Qwen2 architecture) with the Hugging Face Trainer.

    python code/pretrain.py                        # tiny Qwen2, bundled corpus, CPU, ~1 minute
    torchrun --nproc_per_node 2 code/pretrain.py   # the same job in 2 processes (DDP)
    bash code/pretrain.sh                          # DeepSpeed ZeRO-2 on every visible GPU
    bash code/pretrain.sh --config_name Qwen/Qwen2.5-1.5B --tokenizer_name Qwen/Qwen2.5-1.5B \
        --train_files data/*.jsonl --block_size 2048 --bf16 true --per_device_train_batch_size 4 \
        --learning_rate 3e-4 --adam_beta2 0.95 --output_dir runs/qwen2.5-1.5b
    sbatch code/pretrain.slurm ...                 # several nodes: one pretrain.sh per node

Every `TrainingArguments` flag works as well. Rerunning the same command resumes from the newest
complete checkpoint in --output_dir, also with another number of processes; SIGTERM saves one
checkpoint at a step all processes agree on and exits with status 143. Generated from
chapters/01-05 by tools/export.py: edit the notebooks, not this file.
"""
import dataclasses
import glob
import json
import logging
import math
import netrc
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.distributed as dist
from datasets import (
    Dataset,
    DatasetDict,
    Features,
    IterableDataset,
    Value,
    concatenate_datasets,
    load_dataset,
    load_from_disk,
)
from datasets.fingerprint import Hasher
from huggingface_hub.errors import StrictDataclassError
from matplotlib.figure import Figure
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    HfArgumentParser,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
    set_seed,
)


# ---- chapters/01_config.ipynb, cell 3 ----
def project_root() -> Path:
    """The course root, the folder that holds `assets/`, `chapters/` and `code/`.

    From the script this is the parent of `code/`; in a notebook (no `__file__`) it is the parent
    of the working directory `chapters/`.
    """
    here = Path(globals()["__file__"]) if "__file__" in globals() else Path.cwd() / "notebook"
    return here.resolve().parent.parent


ASSETS_DIR = project_root() / "assets"
QWEN_CONFIG_DIR = ASSETS_DIR / "qwen2.5-1.5b"  # the published Qwen2.5-1.5B config.json
TINY_CONFIG_DIR = ASSETS_DIR / "tiny-qwen2"  # same architecture, 4.2M parameters
TOKENIZER_DIR = ASSETS_DIR / "tokenizer"  # byte-level BPE, 4,096 tokens
CORPUS_FILE = ASSETS_DIR / "corpus" / "seq_monkey_sample.jsonl"


# ---- chapters/02_model.ipynb, cell 3 ----
def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False):
    """Load a tokenizer by Hub name or local folder with `AutoTokenizer`."""
    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)


# ---- chapters/02_model.ipynb, cell 10 ----
def build_model(
    config_name: str | Path | None = None,
    model_name_or_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """A causal LM: pretrained weights if `model_name_or_path`, else fresh from `config_name`.

    `dtype` is explicit on purpose: transformers 5 builds in the config's dtype (bf16 for Qwen2.5)
    and loads pretrained weights with `dtype="auto"`; mixed precision wants fp32 master weights.
    """
    if model_name_or_path:
        return AutoModelForCausalLM.from_pretrained(
            model_name_or_path, dtype=dtype, trust_remote_code=trust_remote_code
        )
    config = AutoConfig.from_pretrained(config_name, trust_remote_code=trust_remote_code)
    return AutoModelForCausalLM.from_config(
        config, dtype=dtype, trust_remote_code=trust_remote_code
    )


# ---- chapters/03_data.ipynb, cell 3 ----
def load_corpus(
    train_files: list[str | Path], streaming: bool = False
) -> Dataset | IterableDataset:
    """Load JSON-lines files with one `{"text": ...}` per line as a single `train` split.

    Record batches of the Arrow cache hold up to 10,000 documents (the default is 1,000):
    reading a cache file back touches a page of every record batch."""
    return load_dataset("json", data_files=[str(f) for f in train_files], split="train",
                        streaming=streaming, writer_batch_size=10_000)


# ---- chapters/03_data.ipynb, cell 8 ----
def tokenize_function(examples: dict, tokenizer) -> dict:
    """Tokenize a batch of documents and end each with EOS, so documents stay apart once packed.

    Qwen-style tokenizers add no BOS/EOS themselves; without the EOS the model would read the
    end of one document straight into the start of the next.
    """
    ids = tokenizer(examples["text"], add_special_tokens=False, return_attention_mask=False)
    ids = ids["input_ids"]
    return {"input_ids": [doc + [tokenizer.eos_token_id] for doc in ids]}


# ---- chapters/03_data.ipynb, cell 16 ----
def pack_blocks(batch: pa.Table, block_size: int) -> pa.Table:
    """`group_texts` as array work on an Arrow batch (`with_format("arrow")`): the same blocks.

    The batch's token ids are one contiguous array; full blocks are offsets into it, nothing is
    copied. The tail that does not fill a block is dropped.
    """
    tokens = batch.column("input_ids").combine_chunks().flatten()
    n_full = len(tokens) // block_size * block_size
    offsets = pa.array(np.arange(0, n_full + 1, block_size, dtype=np.int32))
    return pa.table({"input_ids": pa.ListArray.from_arrays(offsets, tokens.slice(0, n_full))})


def tokenize_batch(batch: pa.Table, tokenizer) -> pa.Table:
    """`tokenize_function` on an Arrow batch, written straight into an int32 Arrow column: this
    spares `datasets` inferring the type of every one of millions of Python integers."""
    ids = tokenize_function({"text": batch.column("text").to_pylist()}, tokenizer)["input_ids"]
    return pa.table({"input_ids": pa.array(ids, pa.list_(pa.int32()))})


# ---- chapters/03_data.ipynb, cell 21 ----
def lm_collator(features: list[dict]) -> dict[str, torch.Tensor]:
    """Stack equal-length blocks into tensors; `labels` are `input_ids` (the model shifts them).

    Not `DataCollatorForLanguageModeling`: it masks every pad token in the labels, and a Qwen
    tokenizer's pad token is its EOS, so the model would never learn where a document ends.
    """
    batch = default_data_collator(features)
    batch["labels"] = batch["input_ids"].clone()
    return batch


# ---- chapters/03_data.ipynb, cell 24 ----
def pack_groups(batch: pa.Table, tokenized: Dataset, group_size: int, block_size: int) -> pa.Table:
    """`pack_blocks` on each group of `group_size` documents of `tokenized` that starts at one of
    the batch's `start` rows: every group is packed alone, whichever process gets it."""
    return pa.concat_tables([pack_blocks(tokenized[start : start + group_size], block_size)
                             for start in batch.column("start").to_pylist()])


def packed_cache_file(tokenized_ds: Dataset, block_size: int, group_size: int) -> str | None:
    """A cache file for the blocks, next to the token ids they are cut from, named by a hash of
    those (whose file name is their fingerprint), the packing code and sizes. `groups` lives in
    memory: without a file name, `map` would keep every block in memory too.

    The name must not start with the tokens' own name: `datasets` looks for the shards of a
    `map` result as `<its name>*.arrow` and would take the blocks for token shards."""
    if not tokenized_ds.cache_files:
        return None  # tokens in memory (a small dataset): the blocks may be too
    tokens = Path(tokenized_ds.cache_files[0]["filename"])
    packing = Hasher.hash((tokens.name, pack_groups, block_size, group_size))
    return str(tokens.with_name(f"blocks-{packing}.arrow"))


def prepare_lm_dataset(
    raw_ds: Dataset, tokenizer, block_size: int, num_proc: int | None = None,
    batch_size: int = 1000,
) -> tuple[Dataset, dict]:
    """Tokenize (EOS after every document) and pack into blocks; return blocks and a packing report.

    Packing sees `batch_size` documents at a time, so up to one partial block per group is
    dropped: the report says how many tokens that was. `num_proc` processes tokenize and pack;
    the groups are fixed by document index, so the blocks do not depend on `num_proc`.
    """
    tokenized_ds = raw_ds.with_format("arrow").map(
        tokenize_batch, batched=True, batch_size=batch_size, num_proc=num_proc,
        remove_columns=raw_ds.column_names, fn_kwargs={"tokenizer": tokenizer}, desc="tokenize",
    )
    groups = Dataset.from_dict({"start": range(0, tokenized_ds.num_rows, batch_size)})
    lm_ds = groups.with_format("arrow").map(
        # few, large record batches (16 groups per call, up to a million tokens per batch):
        # reading the cache file back touches a page of every record batch
        pack_groups, batched=True, batch_size=16, num_proc=num_proc, remove_columns=["start"],
        writer_batch_size=max(1000, 2**20 // block_size),
        fn_kwargs={"tokenized": tokenized_ds.with_format("arrow"), "group_size": batch_size,
                   "block_size": block_size},
        cache_file_name=packed_cache_file(tokenized_ds, block_size, batch_size),
        desc=f"pack into blocks of {block_size}",
    ).with_format(None)
    tokens_in = pc.sum(pc.list_value_length(tokenized_ds.data.column("input_ids"))).as_py() or 0
    tokens_kept = lm_ds.num_rows * block_size
    return lm_ds, {
        "documents": raw_ds.num_rows,
        "tokens_in": tokens_in,
        "tokens_kept": tokens_kept,
        "tokens_dropped": tokens_in - tokens_kept,
        "dropped_percent": round(100 * (tokens_in - tokens_kept) / max(tokens_in, 1), 3),
        "blocks": lm_ds.num_rows,
        "block_size": block_size,
        "map_batch_size": batch_size,
        "eos_id": tokenizer.eos_token_id,
    }


# ---- chapters/03_data.ipynb, cell 40 ----
def in_eval_split(batch: pa.Table, percent: float, side: str) -> list[bool]:
    """Which documents of an Arrow batch fall on `side` ("train" or "eval") of the split: a
    document is held out when the CRC-32 of its text, mod 10,000, is below `percent` x 100."""
    texts = batch.column("text").to_pylist()
    held_out = [zlib.crc32(text.encode("utf-8")) % 10_000 < percent * 100 for text in texts]
    return held_out if side == "eval" else [not h for h in held_out]


def split_documents(
    raw_ds: Dataset | IterableDataset, percent: float, num_proc: int | None = None
) -> tuple[Dataset | IterableDataset, Dataset | IterableDataset]:
    """(train, eval) documents, split by content before packing, for map-style and streams alike.

    The filter works on Arrow batches: a stream then stays in Arrow from the JSON reader to the
    packed blocks, instead of passing through one Python dict per document.
    """
    parallel = {"num_proc": num_proc} if isinstance(raw_ds, Dataset) else {}
    return tuple(raw_ds.with_format("arrow")
                 .filter(in_eval_split, batched=True, **parallel,
                         fn_kwargs={"percent": percent, "side": side})
                 .with_format(None)
                 for side in ("train", "eval"))


# ---- chapters/03_data.ipynb, cell 45 ----
def save_prepared(path: str | Path, train_ds: Dataset, eval_ds: Dataset | None,
                  report: dict, num_proc: int | None = None) -> None:
    """Save train and eval blocks with their packing report under `path`; a save cut short
    leaves `path.partial`, never a `path` that looks done. `num_proc` processes write shards of
    at most 100 MB, and each holds the pages of one shard at a time, whatever the corpus size."""
    partial = Path(f"{path}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    splits = {"train": train_ds} if eval_ds is None else {"train": train_ds, "eval": eval_ds}
    DatasetDict(splits).save_to_disk(str(partial), max_shard_size="100MB", num_proc=num_proc)
    (partial / "packing_report.json").write_text(json.dumps(report, indent=2) + "\n")
    partial.rename(path)


def load_prepared(path: str | Path) -> tuple[Dataset, Dataset | None, dict]:
    """Train and eval blocks (eval: None if there was none) and the packing report saved by
    `save_prepared`; the blocks are memory-mapped, not read into memory."""
    splits = load_from_disk(str(path))
    report = json.loads((Path(path) / "packing_report.json").read_text(encoding="utf-8"))
    return splits["train"], splits.get("eval"), report


# ---- chapters/03_data.ipynb, cell 49 ----
def stream_blocks(stream: IterableDataset, tokenizer, block_size: int) -> IterableDataset:
    """`prepare_lm_dataset` for a stream, lazily: int32 Arrow tokens, packed per map batch."""
    return (stream.with_format("arrow")
            .map(tokenize_batch, batched=True, remove_columns=["text"],
                 fn_kwargs={"tokenizer": tokenizer})
            .map(pack_blocks, batched=True, fn_kwargs={"block_size": block_size})
            .with_format(None))


# ---- chapters/04_trainer.ipynb, cell 10 ----
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


# ---- chapters/04_trainer.ipynb, cell 21 ----
def lm_metrics(loss: float, bytes_per_token: float) -> dict:
    """Perplexity and bits per byte from a mean cross-entropy `loss` in nats per token.

    Bits per byte divides by the bytes each token stands for, so it compares across tokenizers.
    """
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "bits_per_byte": loss / math.log(2) / bytes_per_token,
    }


# ---- chapters/04_trainer.ipynb, cell 22 ----
def bytes_per_token(lm_ds: Dataset, tokenizer, max_blocks: int = 2000) -> float:
    """UTF-8 bytes of text per token over the first `max_blocks` packed blocks.

    Special tokens count as 0 bytes; the cap keeps this cheap on a large eval split.
    """
    blocks = lm_ds.select(range(min(max_blocks, lm_ds.num_rows)))[:]["input_ids"]
    texts = tokenizer.batch_decode(blocks, skip_special_tokens=True)
    return sum(len(t.encode("utf-8")) for t in texts) / sum(len(ids) for ids in blocks)


# ---- chapters/04_trainer.ipynb, cell 26 ----
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


# ---- chapters/05_script.ipynb, cell 5 ----
@dataclass
class ModelArguments:
    """Which model to train and how its weights are held."""

    config_name: str | None = field(
        default=str(TINY_CONFIG_DIR),
        metadata={"help": "Config (Hub name or folder) of a model trained from scratch."},
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Pretrained weights to continue pretraining; overrides --config_name."},
    )
    tokenizer_name: str = field(
        default=str(TOKENIZER_DIR), metadata={"help": "Tokenizer (Hub name or folder)."}
    )
    dtype: str = field(
        default="float32",
        metadata={"help": "dtype of the weights; keep float32 and add --bf16 true for mixed "
                  "precision.", "choices": ["float32", "bfloat16", "float16"]},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Run Python code shipped with the model repository (Qwen2 needs none)."},
    )
    peak_tflops: float | None = field(
        default=None,
        metadata={"help": "Peak bf16 TFLOP/s of one device, for the MFU in the logs (default: "
                  "looked up from the GPU's name)."},
    )


# ---- chapters/05_script.ipynb, cell 6 ----
@dataclass
class DataTrainingArguments:
    """Which corpus to read and how to cut it into training blocks."""

    train_files: list[str] = field(
        default_factory=lambda: [str(CORPUS_FILE)],
        metadata={"help": "JSON-lines files (or globs) with one {\"text\": ...} per line."},
    )
    block_size: int = field(default=128, metadata={"help": "Tokens per training sequence."})
    preprocessing_num_workers: int | None = field(
        default=None,
        metadata={"help": "Processes for filtering, tokenizing and packing (datasets `num_proc`)."},
    )
    validation_split_percentage: float = field(
        default=5.0,
        metadata={"help": "Percent of the documents held out for evaluation, chosen by content "
                  "before packing (0: none)."},
    )
    streaming: bool = field(
        default=False, metadata={"help": "Read the corpus as a stream (corpora that don't fit)."}
    )
    shuffle_buffer: int = field(
        default=0,
        metadata={"help": "Streaming: shuffle blocks in a buffer of this many (0: off). The "
                  "buffer is not saved, so a resumed run no longer repeats the same steps."},
    )
    tokenized_path: str | None = field(
        default=None,
        metadata={"help": "Folder of the tokenized, packed and split corpus. Missing: prepare it "
                  "there with one process and exit. Present: every rank loads it, memory-mapped."},
    )


# ---- chapters/05_script.ipynb, cell 8 ----
# Defaults of the bundled tiny CPU job; every one can be overridden on the command line.
TRAINING_DEFAULTS = dict(
    output_dir="runs/pretrain-tiny",
    per_device_train_batch_size=16,
    learning_rate=1e-3,
    lr_scheduler_type="cosine",
    warmup_steps=20,
    weight_decay=0.1,
    num_train_epochs=1,
    logging_steps=10,
    eval_strategy="steps",
    eval_steps=50,
    save_steps=50,
    save_total_limit=2,
    report_to="none",
    seed=42,
    disable_tqdm=True,
    log_on_each_node=False,  # several nodes: rank 0 logs, not the first process of every node
    use_cpu=not torch.cuda.is_available(),  # also what makes multi-process CPU runs distributed
    include_num_input_tokens_seen=True,  # = "all": the token count behind tokens/s and MFU
    ddp_find_unused_parameters=False,  # torchrun/DDP: every weight gets a gradient, skip the search
)
# --per_device_eval_batch_size defaults to the training micro-batch (parse_args): evaluation
# holds the fp32 logits of a whole batch, 16 x 2048 x 151,936 x 4 bytes = 20 GB at batch 16.


# ---- chapters/05_script.ipynb, cell 10 ----
class UsageError(Exception):
    """Bad input on the command line or in the files it names: one line, exit status 2."""


class ArgumentParser(HfArgumentParser):
    """`HfArgumentParser` whose errors raise `UsageError` instead of printing the whole usage."""

    def error(self, message: str):
        raise UsageError(message)


# ---- chapters/05_script.ipynb, cell 11 ----
def parse_args(argv: list[str] | None = None):
    """Model, data and training arguments from the command line, on the tiny-job defaults."""
    parser = ArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    parser.set_defaults(**TRAINING_DEFAULTS)
    try:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except json.JSONDecodeError as err:
        raise UsageError(f"--deepspeed: the config is not valid JSON ({err})") from err
    except (ValueError, OSError) as err:
        raise UsageError(str(err).splitlines()[0]) from err
    given = {arg.split("=")[0] for arg in (sys.argv[1:] if argv is None else argv)}
    if "--per_device_eval_batch_size" not in given:
        training_args.per_device_eval_batch_size = training_args.per_device_train_batch_size
    return model_args, data_args, training_args


# ---- chapters/05_script.ipynb, cell 16 ----
def expand_train_files(patterns: list[str]) -> list[str]:
    """Expand globs; refuse what is missing, a directory or empty; drop exact duplicates."""
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise UsageError(f"--train_files: {pattern!r} matches no file")
        for path in matches:
            if os.path.isdir(path):
                raise UsageError(f"--train_files: {path} is a directory, not a JSON-lines file")
            if not os.path.isfile(path):
                raise UsageError(f"--train_files: {path} does not exist")
            if os.path.getsize(path) == 0:
                raise UsageError(f"--train_files: {path} is empty")
            if path not in files:
                files.append(path)
    return files


# ---- chapters/05_script.ipynb, cell 18 ----
def find_bad_record(path: str) -> str | None:
    """The first line of a JSON-lines file that is not UTF-8, not JSON or has no "text" field."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return f"{path}:{lineno}: not valid UTF-8 (byte {err.start} of the line)"
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                return f"{path}:{lineno}: not valid JSON ({err.msg}, column {err.colno})"
            if not isinstance(record, dict) or "text" not in record:
                return f"{path}:{lineno}: a record without a \"text\" field"
    return None


# ---- chapters/05_script.ipynb, cell 19 ----
def check_utf8(raw_ds: Dataset) -> None:
    """Validate the `text` column's UTF-8, one record batch of the cache files at a time, read
    rather than memory-mapped: the process does not keep the whole corpus resident."""
    for cache in raw_ds.cache_files:
        with pa.OSFile(cache["filename"]) as source:
            for batch in pa.ipc.open_stream(source):
                batch.column("text").validate(full=True)


def load_train_data(train_files: list[str], streaming: bool) -> Dataset | IterableDataset:
    """`load_corpus`, with a broken file reported as the file, line and problem."""
    verbosity = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # we report bad files ourselves
    try:
        raw_ds = load_corpus(train_files, streaming=streaming)
        if streaming:
            if "text" not in next(iter(raw_ds)):
                raise KeyError("text")
        else:  # Arrow keeps the bytes of a string as they are: check that they are UTF-8
            check_utf8(raw_ds)
    except Exception as err:  # datasets and Arrow raise several exception types for a bad file
        problem = next(filter(None, map(find_bad_record, train_files)), None)
        if problem is None:
            raise  # not the file's fault: keep the real error
        raise UsageError(problem) from err
    finally:
        datasets.logging.set_verbosity(verbosity)
    return raw_ds


# ---- chapters/05_script.ipynb, cell 22 ----
def nonempty_text(batch: pa.Table) -> pa.Array:
    """Which records of an Arrow batch have a string `text` that is neither null nor empty."""
    return pc.fill_null(pc.greater(pc.utf8_length(batch.column("text")), 0), False)


def drop_empty_texts(batch: pa.Table) -> pa.Table:
    """The records of an Arrow batch that `nonempty_text` keeps."""
    return batch.filter(nonempty_text(batch))


def has_text(batch: dict) -> list[bool]:
    """Which records of a batch have a non-empty string as `text`, whatever JSON value it is."""
    return [isinstance(t, str) and t != "" for t in batch["text"]]


def keep_text_records(
    raw_ds: Dataset | IterableDataset, num_proc: int | None = None
) -> Dataset | IterableDataset:
    """Only the records whose `text` is a non-empty string, with `text` a string column.

    Where some `text` is not a string (null, a number, a list), `datasets` loads the column as
    JSON, whose Arrow values are JSON-encoded: such records are dropped and the rest decoded.
    """
    parallel = {"num_proc": num_proc} if isinstance(raw_ds, Dataset) else {}
    if raw_ds.features is not None and raw_ds.features["text"] == Value("string"):
        arrow = raw_ds.with_format("arrow")  # no Python object per document
        if isinstance(raw_ds, Dataset):  # a filter stores kept row numbers, not a copy of the text
            return arrow.filter(nonempty_text, batched=True, num_proc=num_proc).with_format(None)
        # a map: datasets 5.2 cannot chain two Arrow filters on a stream (both add a
        # "===MASK===" column), and split_documents filters next
        return arrow.map(drop_empty_texts, batched=True).with_format(None)
    others = [name for name in raw_ds.column_names or [] if name != "text"]
    return raw_ds.filter(has_text, batched=True, **parallel).map(
        lambda batch: {"text": batch["text"]}, batched=True, remove_columns=others, **parallel,
        features=Features({"text": Value("string")}))


# ---- chapters/05_script.ipynb, cell 24 ----
def check_model_fits(model, tokenizer, block_size: int) -> None:
    """The tokenizer's ids and the block length must fit the model."""
    config = model.config
    if len(tokenizer) > config.vocab_size:
        raise UsageError(f"--tokenizer_name: the tokenizer has {len(tokenizer):,} tokens but the "
                         f"model's vocab_size is {config.vocab_size:,}")
    if block_size > config.max_position_embeddings:
        raise UsageError(f"--block_size {block_size} exceeds the model's max_position_embeddings "
                         f"({config.max_position_embeddings})")
    if block_size < 2:
        raise UsageError(f"--block_size must be at least 2, got {block_size}")


# ---- chapters/05_script.ipynb, cell 27 ----
STREAM_EVAL_DOCUMENTS = 100  # streamed corpora: the first 100 documents on the eval side
# A map-style corpus is prepared this many documents at a time (about 0.3 GB of seq-monkey text):
# each worker process then touches its share of one piece only, so the memory a preparation
# needs does not grow with the corpus. Packing groups do not cross a piece.
PIECE_DOCUMENTS = 400_000


def prepare_eval(eval_docs: Dataset, tokenizer, data_args) -> tuple[Dataset, dict]:
    """Blocks and packing report of the held-out documents; none held out is a usage error."""
    if eval_docs.num_rows == 0:
        raise UsageError(f"--validation_split_percentage {data_args.validation_split_percentage}: "
                         f"no document of this corpus is held out; raise it, or use 0")
    return prepare_lm_dataset(eval_docs, tokenizer, data_args.block_size,
                              data_args.preprocessing_num_workers)


def prepare_piece(raw_ds: Dataset, tokenizer, data_args) -> tuple[Dataset, Dataset | None, dict]:
    """Filter, split by document, tokenize and pack one piece of a map-style corpus."""
    num_proc, block_size = data_args.preprocessing_num_workers, data_args.block_size
    percent = data_args.validation_split_percentage
    kept = keep_text_records(raw_ds, num_proc)
    train_docs, eval_docs = split_documents(kept, percent, num_proc)
    eval_ds = eval_report = None
    if percent > 0:
        eval_ds, eval_report = prepare_eval(eval_docs, tokenizer, data_args)
    train_ds, report = prepare_lm_dataset(train_docs, tokenizer, block_size, num_proc)
    report["skipped_records"] = raw_ds.num_rows - kept.num_rows
    report["eval"] = eval_report
    return train_ds, eval_ds, report


def merge_reports(reports: list[dict]) -> dict:
    """The packing report of several pieces: the counts add up, the settings are shared."""
    merged = dict(reports[0])
    for key in ("documents", "tokens_in", "tokens_kept", "tokens_dropped", "blocks",
                "skipped_records"):
        if key in merged:
            merged[key] = sum(report[key] for report in reports)
    dropped, tokens = merged["tokens_dropped"], max(merged["tokens_in"], 1)
    merged["dropped_percent"] = round(100 * dropped / tokens, 3)
    if merged.get("eval") is not None:
        merged["eval"] = merge_reports([report["eval"] for report in reports])
    return merged


def build_stream(raw_ds: IterableDataset, tokenizer, data_args, seed: int):
    """Train blocks read lazily from a stream, eval blocks from its first eval-side documents."""
    block_size, percent = data_args.block_size, data_args.validation_split_percentage
    train_docs, eval_docs = split_documents(keep_text_records(raw_ds), percent)
    eval_ds = eval_report = None
    if percent > 0:
        eval_docs = Dataset.from_list(list(eval_docs.take(STREAM_EVAL_DOCUMENTS)))
        eval_ds, eval_report = prepare_eval(eval_docs, tokenizer, data_args)
    train_ds = stream_blocks(train_docs, tokenizer, block_size)
    if data_args.shuffle_buffer > 0:
        train_ds = train_ds.shuffle(seed=seed, buffer_size=data_args.shuffle_buffer)
    report = {"streaming": True, "block_size": block_size, "eos_id": tokenizer.eos_token_id,
              "shuffle_buffer": data_args.shuffle_buffer, "eval": eval_report}
    return train_ds, eval_ds, report


def build_datasets(raw_ds, tokenizer, data_args, seed: int, piece_documents: int = PIECE_DOCUMENTS):
    """Train and eval blocks plus the packing report, map-style or streamed.

    Evaluation documents are split off by content before packing (`split_documents`), so no
    document is on both sides. A map-style corpus is prepared in contiguous pieces of
    `piece_documents` documents whose blocks are then concatenated in order.
    """
    if data_args.streaming:
        return build_stream(raw_ds, tokenizer, data_args, seed)
    n = max(1, math.ceil(raw_ds.num_rows / piece_documents))
    pieces = [prepare_piece(raw_ds.shard(n, i), tokenizer, data_args) for i in range(n)]
    train_ds = concatenate_datasets([train for train, _, _ in pieces])
    eval_ds = None if pieces[0][1] is None else concatenate_datasets([ev for _, ev, _ in pieces])
    report = merge_reports([report for _, _, report in pieces])
    report["pieces"] = n
    if train_ds.num_rows == 0 or (eval_ds is not None and eval_ds.num_rows == 0):
        raise UsageError(f"--train_files: too little text for blocks of {data_args.block_size}: "
                         f"{train_ds.num_rows} training and "
                         f"{0 if eval_ds is None else eval_ds.num_rows} eval block(s)")
    return train_ds, eval_ds, report


# ---- chapters/05_script.ipynb, cell 30 ----
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# What a run of this script writes into --output_dir, besides checkpoint-N folders.
OUTPUT_NAMES = {
    "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
    "tokenizer_config.json", "chat_template.jinja", "training_args.bin", "trainer_state.json",
    "train_results.json", "eval_results.json", "all_results.json", "packing_report.json",
    "loss_curve.png", "runs", "wandb",
}


# ---- chapters/05_script.ipynb, cell 31 ----
def is_complete_checkpoint(path: Path) -> bool:
    """True once the Trainer wrote `trainer_state.json`, the last file of every checkpoint.

    A SIGTERM save marks its folder with `checkpoint-is-incomplete.txt` until it is done.
    """
    if (path / "checkpoint-is-incomplete.txt").exists():
        return False
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return state.get("global_step") == int(CHECKPOINT_RE.match(path.name).group(1))


def last_complete_checkpoint(output_dir: str | Path) -> tuple[Path | None, list[Path]]:
    """The newest complete checkpoint in `output_dir`, and the incomplete ones newer than it."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if CHECKPOINT_RE.match(p.name)]
    folders.sort(key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)), reverse=True)
    skipped = []
    for folder in folders:
        if is_complete_checkpoint(folder):
            return folder, skipped
        skipped.append(folder)
    return None, skipped


# ---- chapters/05_script.ipynb, cell 34 ----
def agree_on_checkpoint(output_dir: str | Path) -> tuple[Path | None, list[Path]]:
    """`last_complete_checkpoint` as rank 0 sees it, the same answer on every rank.

    Each rank looks the chosen folder up in its own `output_dir`; if any rank does not see it
    complete there (output folders that are not shared between nodes), every rank stops.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return last_complete_checkpoint(output_dir)
    choice = [last_complete_checkpoint(output_dir) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(choice, src=0)
    resume, skipped = choice[0]
    if resume is None:
        return None, skipped
    mine = Path(output_dir) / resume.name
    sees = [None] * dist.get_world_size()
    dist.all_gather_object(sees, is_complete_checkpoint(mine))
    blind = [rank for rank, seen in enumerate(sees) if not seen]
    if blind:
        raise UsageError(f"--output_dir: rank 0 resumes from {resume.name}, which rank(s) "
                         f"{', '.join(map(str, blind))} cannot see in {output_dir}; the output "
                         f"folder must be on a filesystem shared by every node")
    return mine, skipped


# ---- chapters/05_script.ipynb, cell 37 ----
def run_is_complete(output_dir: str | Path, checkpoint: Path, training_args) -> bool:
    """True when `checkpoint` is the last step of this run and its final results were saved."""
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    planned = training_args.max_steps if training_args.max_steps > 0 else state["max_steps"]
    return state["global_step"] >= planned and (Path(output_dir) / "all_results.json").exists()


def check_checkpoint_matches(checkpoint: Path, model) -> None:
    """Refuse to resume a checkpoint of another model shape into this one."""
    saved = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    keys = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")
    different = [key for key in keys if saved.get(key) != getattr(model.config, key)]
    if different:
        raise UsageError(f"--output_dir: {checkpoint} holds another model ({', '.join(different)} "
                         f"differ); choose a new --output_dir")


# ---- chapters/05_script.ipynb, cell 39 ----
def check_output_dir(output_dir: str | Path) -> None:
    """Refuse an output folder that holds anything this script did not write."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir: {path} exists and is not a directory")
    foreign = sorted(p.name for p in path.glob("*")
                     if p.name not in OUTPUT_NAMES and not CHECKPOINT_RE.match(p.name))
    if foreign:
        raise UsageError(f"--output_dir: {path} holds files this script did not write "
                         f"({', '.join(foreign[:3])}); choose an empty or new directory")


# ---- chapters/05_script.ipynb, cell 43 ----
logger = logging.getLogger("pretrain")


def log_batch_arithmetic(training_args, n_train: int | None, block_size: int) -> None:
    """Log world size, effective batch, tokens per optimizer step and the number of steps."""
    args = training_args
    per_step = args.world_size * args.per_device_train_batch_size * args.gradient_accumulation_steps
    logger.info("world size %d x per-device batch %d x grad accumulation %d = %d sequences "
                "x %d tokens = %s tokens per optimizer step", args.world_size,
                args.per_device_train_batch_size, args.gradient_accumulation_steps, per_step,
                block_size, f"{per_step * block_size:,}")
    if args.max_steps > 0:
        total = args.max_steps
    else:
        total = math.ceil(math.ceil(n_train / (args.world_size * args.per_device_train_batch_size))
                          / args.gradient_accumulation_steps * args.num_train_epochs)
    logger.info("train blocks %s, optimizer steps %s",
                "streamed" if n_train is None else f"{n_train:,}", f"{total:,}")


# ---- chapters/05_script.ipynb, cell 46 ----
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
        logger.warning("W&B: no API key found, logging offline to %s/wandb (`wandb sync` later)",
                       training_args.output_dir)


# ---- chapters/05_script.ipynb, cell 48 ----
PEAK_BF16_TFLOPS = {  # dense bf16 tensor-core peak of one device, from the vendors' data sheets
    "B200": 2250, "H200": 989, "H200 NVL": 835, "H100": 989, "H100 NVL": 835, "H100 PCIe": 756,
    "A100": 312, "L40S": 362, "L40": 181, "L4": 121, "RTX 4090": 165, "RTX 3090": 71,
    # parts sold in China: H800/A800 compute like H100/A100 (less interconnect), H20/L20 less
    "H800": 989, "H800 PCIe": 756, "A800": 312, "H20": 148, "L20": 119.5,
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


# ---- chapters/05_script.ipynb, cell 52 ----
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_checked_tokenizer(model_args):
    """The tokenizer named by the arguments; a name that does not load is a UsageError."""
    try:
        return load_tokenizer(model_args.tokenizer_name,
                              trust_remote_code=model_args.trust_remote_code)
    except (OSError, ValueError) as err:
        raise UsageError(f"--tokenizer_name: cannot load {model_args.tokenizer_name!r} "
                         f"({str(err).splitlines()[0]})") from err


def load_model_and_tokenizer(model_args):
    """The tokenizer and model named by the arguments; a name that does not load is a UsageError."""
    trust = model_args.trust_remote_code
    tokenizer = load_checked_tokenizer(model_args)
    pretrained = model_args.model_name_or_path
    flag, name = ("--model_name_or_path", pretrained) if pretrained else (
        "--config_name", model_args.config_name)
    try:
        model = build_model(config_name=model_args.config_name, model_name_or_path=pretrained,
                            dtype=DTYPES[model_args.dtype], trust_remote_code=trust)
    except (OSError, ValueError, StrictDataclassError, AssertionError) as err:
        # transformers checks a config with huggingface_hub's strict dataclasses (the reason is on
        # the last line), nn.Embedding asserts that pad_token_id lies inside the vocab
        lines = str(err).strip().splitlines()
        reason = lines[-1].strip() if isinstance(err, StrictDataclassError) else lines[0]
        raise UsageError(f"{flag}: cannot load {name!r} ({reason})") from err
    return model, tokenizer


# ---- chapters/05_script.ipynb, cell 54 ----
def save_results(trainer: Trainer, result, eval_ds, tokenizer, report: dict, title: str) -> dict:
    """Save model, tokenizer, metrics, packing report and loss curve; return all metrics."""
    trainer.save_model()
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    metrics = dict(result.metrics)
    if eval_ds is not None:
        eval_metrics = trainer.evaluate()
        extra = lm_metrics(eval_metrics["eval_loss"], bytes_per_token(eval_ds, tokenizer))
        eval_metrics["eval_perplexity"] = extra["perplexity"]
        eval_metrics["eval_bits_per_byte"] = extra["bits_per_byte"]
        trainer.save_metrics("eval", eval_metrics)  # also merged into all_results.json
        metrics.update(eval_metrics)
    if trainer.is_world_process_zero():
        out = Path(trainer.args.output_dir)
        (out / "packing_report.json").write_text(json.dumps(report, indent=2) + "\n")
        plot_loss_curve(trainer.state.log_history, out / "loss_curve.png", title=title)
    return metrics


def log_results(metrics: dict, output_dir: str) -> None:
    """Log the final eval numbers and where the run's files are."""
    if "eval_loss" in metrics:
        logger.info("eval loss %.4f | perplexity %.2f | bits per byte %.4f", metrics["eval_loss"],
                    metrics["eval_perplexity"], metrics["eval_bits_per_byte"])
    logger.info("model, tokenizer, metrics and loss_curve.png are in %s", output_dir)


# ---- chapters/05_script.ipynb, cell 56 ----
PREPROCESSING_TIMEOUT = timedelta(hours=24)  # how long ranks wait for the data, not --ddp_timeout


@contextmanager
def preprocessing_first(training_args):
    """`main_process_first` for data preparation: each node's first process prepares the data
    (and fills the cache) while the others wait on a gloo group whose timeout is
    `PREPROCESSING_TIMEOUT`, so a first tokenization longer than `--ddp_timeout` does not kill
    the job."""
    if not (dist.is_available() and dist.is_initialized()):
        yield
        return
    group = dist.new_group(backend="gloo", timeout=PREPROCESSING_TIMEOUT)
    first = training_args.local_process_index == 0
    if not first:
        dist.barrier(group=group)
    yield
    if first:
        dist.barrier(group=group)
    dist.destroy_process_group(group)


def prepare_tokenized(model_args, data_args, training_args) -> dict:
    """A `--tokenized_path` that does not exist yet: filter, split, tokenize and pack the corpus
    in this one process, save it there, and train nothing. Returns the packing report."""
    path = data_args.tokenized_path
    if training_args.world_size > 1:
        raise UsageError(f"--tokenized_path {path} does not exist: prepare it with one process "
                         f"first (python code/pretrain.py --tokenized_path {path} ...)")
    tokenizer = load_checked_tokenizer(model_args)
    raw_ds = load_train_data(expand_train_files(data_args.train_files), streaming=False)
    train_ds, eval_ds, report = build_datasets(raw_ds, tokenizer, data_args, training_args.seed)
    del raw_ds  # unmaps the JSON's Arrow cache: the save below holds only the blocks' pages
    save_prepared(path, train_ds, eval_ds, report, num_proc=data_args.preprocessing_num_workers)
    logger.info("saved %d training and %d eval blocks of %d to %s: launch the training with the "
                "same --tokenized_path", train_ds.num_rows, 0 if eval_ds is None else
                eval_ds.num_rows, data_args.block_size, path)
    return report


def load_tokenized(data_args, tokenizer) -> tuple[Dataset, Dataset | None, dict]:
    """The blocks saved by `prepare_tokenized`, memory-mapped, checked against this run."""
    path = data_args.tokenized_path
    try:
        train_ds, eval_ds, report = load_prepared(path)
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"--tokenized_path: {path} was not saved by --tokenized_path "
                         f"({str(err).splitlines()[0]})") from err
    if report["block_size"] != data_args.block_size:
        raise UsageError(f"--block_size {data_args.block_size}: {path} holds blocks of "
                         f"{report['block_size']}; prepare another --tokenized_path")
    if report["eos_id"] != tokenizer.eos_token_id:
        raise UsageError(f"--tokenizer_name: {path} was tokenized with EOS id {report['eos_id']}, "
                         f"this tokenizer's is {tokenizer.eos_token_id}")
    return train_ds, eval_ds, report


# ---- chapters/05_script.ipynb, cell 58 ----
def loader_state_file(checkpoint: Path, rank: int) -> Path:
    """Where `StreamPosition` keeps rank `rank`'s data-loader state in `checkpoint`."""
    return checkpoint / f"dataloader_rank{rank}.pt"


class StreamPosition(TrainerCallback):
    """Streams: save each rank's data-loader state into every checkpoint, load it on resume."""

    def __init__(self, resume: Path | None):
        self.resume = resume

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        if self.resume is not None:
            saved = torch.load(loader_state_file(self.resume, args.process_index))
            train_dataloader.load_state_dict(saved)
            logger.info("the stream continues where %s left it", self.resume.name)

    def on_step_end(self, args, state, control, train_dataloader=None, **kwargs):
        if control.should_save:  # before the Trainer's save, whose last file marks it complete
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(train_dataloader.state_dict(), loader_state_file(folder, args.process_index))


def check_stream_checkpoint(checkpoint: Path, world_size: int) -> None:
    """A stream resumes only with the data-loader state of each of this run's ranks."""
    saved = len(list(checkpoint.glob("dataloader_rank*.pt")))
    if saved != world_size:
        raise UsageError(f"--streaming: {checkpoint.name} holds the stream position of {saved} "
                         f"process(es) and this run has {world_size}; resume with the same "
                         f"number of processes, or start a new --output_dir")


# ---- chapters/05_script.ipynb, cell 60 ----
def train(argv: list[str] | None = None) -> dict | None:
    """The whole job: parse, check the inputs, build model and data, train, evaluate, save.

    Returns all metrics, or None when a SIGTERM stopped training early (after a checkpoint).
    """
    model_args, data_args, training_args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if training_args.should_log else logging.ERROR)
    if data_args.tokenized_path and data_args.streaming:
        raise UsageError("--tokenized_path holds blocks ready for training: drop --streaming")
    if data_args.tokenized_path and not os.path.exists(data_args.tokenized_path):
        return prepare_tokenized(model_args, data_args, training_args)
    check_output_dir(training_args.output_dir)
    train_files = [] if data_args.tokenized_path else expand_train_files(data_args.train_files)
    if data_args.streaming and training_args.max_steps <= 0:
        raise UsageError("--streaming needs --max_steps: a stream has no length to count epochs by")
    if data_args.validation_split_percentage <= 0 and training_args.eval_strategy != "no":
        raise UsageError("--validation_split_percentage 0 leaves nothing to evaluate: "
                         "add --eval_strategy no")
    resume, skipped = agree_on_checkpoint(training_args.output_dir)  # rank 0 decides
    for folder in skipped:
        logger.warning("skipping incomplete checkpoint %s (a save was interrupted)", folder)
    if model_args.trust_remote_code:
        logger.warning("--trust_remote_code is on: Python code from the model repository will run")

    set_seed(training_args.seed)  # the same initial weights in every process and every run
    model, tokenizer = load_model_and_tokenizer(model_args)
    check_model_fits(model, tokenizer, data_args.block_size)
    if resume:
        check_checkpoint_matches(resume, model)
        if run_is_complete(training_args.output_dir, resume, training_args):
            logger.info("the run finished at %s: nothing to do", resume.name)
            metrics = json.loads((Path(training_args.output_dir) / "all_results.json").read_text())
            log_results(metrics, training_args.output_dir)
            return metrics
        if data_args.streaming:
            check_stream_checkpoint(resume, training_args.world_size)
        training_args = keep_step_size(resume, training_args, data_args.block_size)
        if training_args.deepspeed and saved_world_size(resume) != training_args.world_size:
            with training_args.main_process_first(local=False, desc="universal checkpoint"):
                convert_to_universal(resume)  # rank 0 converts, the others find it done
            training_args.hf_deepspeed_config.config.setdefault("checkpoint", {})[
                "load_universal"] = True
    if data_args.tokenized_path:
        train_ds, eval_ds, report = load_tokenized(data_args, tokenizer)
        if eval_ds is None and training_args.eval_strategy != "no":
            raise UsageError(f"--tokenized_path: {data_args.tokenized_path} has no eval split: "
                             f"add --eval_strategy no")
    else:
        with preprocessing_first(training_args):
            raw_ds = load_train_data(train_files, data_args.streaming)
            train_ds, eval_ds, report = build_datasets(raw_ds, tokenizer, data_args,
                                                       training_args.seed)
    logger.info("model: %.2fM parameters in %s | packing: %s", model.num_parameters() / 1e6,
                model.dtype, report)
    log_batch_arithmetic(training_args, None if data_args.streaming else train_ds.num_rows,
                         data_args.block_size)
    if resume:
        logger.info("resuming from %s", resume)

    prepare_tracking(training_args)
    training_args.enable_jit_checkpoint = False  # StopOnSigterm handles SIGTERM at any world size
    stopper = StopOnSigterm()
    callbacks = [stopper]
    if data_args.streaming:
        training_args.accelerator_config.dispatch_batches = False  # each rank reads its own part
        training_args.ignore_data_skip = True  # StreamPosition restores the position instead
        callbacks.append(StreamPosition(resume))
        # torchdata 0.11's StatefulDataLoader calls torch.set_vital, deprecated in torch 2.13
        warnings.filterwarnings("ignore", message="'set_vital' is deprecated")
        if train_ds.num_shards < training_args.world_size:
            logger.warning("the stream has %d file(s) for %d processes: each process reads all of "
                           "it; split the corpus into at least %d files", train_ds.num_shards,
                           training_args.world_size, training_args.world_size)
    trainer = Trainer(model=model, args=training_args, train_dataset=train_ds,
                      eval_dataset=eval_ds, processing_class=tokenizer,
                      data_collator=lm_collator, callbacks=callbacks)
    # torchdata's StatefulDataLoader (the Trainer's AcceleratorConfig has no field for it)
    trainer.accelerator.dataloader_config.use_stateful_dataloader = data_args.streaming
    peak = peak_flops(training_args.device, model_args.peak_tflops)
    throughput = ThroughputCallback(flops_per_token(model, data_args.block_size), peak)
    trainer.callback_handler.callbacks.insert(0, throughput)  # first: its numbers reach the logs
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if stopper.stopped and trainer.state.global_step < trainer.state.max_steps:
        trainer.accelerator.wait_for_everyone()
        logger.warning("stopped at step %d on SIGTERM; rerun the same command to continue",
                       trainer.state.global_step)
        return None
    metrics = save_results(trainer, result, eval_ds, tokenizer, report,
                           title=Path(model_args.model_name_or_path or model_args.config_name).name)
    log_results(metrics, training_args.output_dir)
    return metrics


# ---- chapters/05_script.ipynb, cell 62 ----
def main(argv: list[str] | None = None) -> None:
    """Run `train`; bad input ends in one `pretrain.py: error: ...` line and exit status 2,
    a SIGTERM in exit status 143 once its checkpoint is saved."""
    try:
        metrics = train(argv)
    except UsageError as err:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"pretrain.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()  # else gloo's threads can abort the exit (pytorch#190489)
    if metrics is None:
        sys.exit(143)


# ---- chapters/05_script.ipynb, cell 90 ----
def saved_world_size(checkpoint: Path) -> int:
    """Processes that saved `checkpoint`: the Trainer writes one `rng_state_<rank>.pth` per rank,
    a lone `rng_state.pth` for one process."""
    return len(list(checkpoint.glob("rng_state_*.pth"))) or 1


def keep_step_size(checkpoint: Path, training_args, block_size: int):
    """`training_args` with the checkpoint's sequences per optimizer step on this world size.

    The Trainer finds its place in the data by counting optimizer steps, so a step must hold as
    many sequences as before: another world size or micro-batch is made up by gradient
    accumulation. The checkpoint's step size is its tokens seen / (steps x block size).
    """
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    args = training_args
    per_micro_step = args.world_size * args.per_device_train_batch_size
    per_step, rest = divmod(state.get("num_input_tokens_seen", 0),
                            state["global_step"] * block_size)
    saved_world = saved_world_size(checkpoint)
    if per_step == per_micro_step * args.gradient_accumulation_steps:
        if saved_world != args.world_size:
            logger.info("%s was saved by %d process(es), this run has %d; %d sequences per "
                        "optimizer step as before", checkpoint.name, saved_world, args.world_size,
                        per_step)
        return args
    if rest or per_step % per_micro_step or per_step == 0:
        raise UsageError(f"--output_dir: {checkpoint.name} trained {per_step} sequences per "
                         f"optimizer step, which {args.world_size} process(es) x micro-batch "
                         f"{args.per_device_train_batch_size} cannot make; choose a micro-batch "
                         f"that divides it, or start a new --output_dir")
    logger.info("%s was saved by %d process(es), this run has %d: gradient accumulation %d -> %d "
                "keeps %d sequences per optimizer step", checkpoint.name, saved_world,
                args.world_size, args.gradient_accumulation_steps, per_step // per_micro_step,
                per_step)
    return dataclasses.replace(args, gradient_accumulation_steps=per_step // per_micro_step)


def convert_to_universal(checkpoint: Path) -> None:
    """Add DeepSpeed's universal form to a ZeRO checkpoint: it loads at any world size.

    DeepSpeed writes `latest_universal` last; without it, a conversion cut short is redone.
    """
    if (checkpoint / "latest_universal").exists():
        return
    tag = (checkpoint / "latest").read_text().strip()
    shutil.rmtree(checkpoint / f"{tag}_universal", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder",
                    str(checkpoint / tag), "--output_folder", str(checkpoint / f"{tag}_universal"),
                    "--inject_missing_state"], check=True, capture_output=True)


# ---- chapters/05_script.ipynb, cell 94 ----
class StopOnSigterm(TrainerCallback):
    """On SIGTERM, every rank stops after the same optimizer step, with one checkpoint saved.

    A scheduler signals each rank at its own moment; the flag is all-reduced (max) after every
    step, so the ranks agree on the step at which they save and stop.
    """

    def __init__(self):
        self.received, self.stopped, self.previous = False, False, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.previous = signal.signal(signal.SIGTERM, self.handle)

    def handle(self, signum, frame):
        self.received = True

    def on_step_end(self, args, state, control, **kwargs):
        flag = torch.tensor(float(self.received), device=args.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            self.stopped = control.should_save = control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        signal.signal(signal.SIGTERM, self.previous)

if __name__ == "__main__":
    main()
