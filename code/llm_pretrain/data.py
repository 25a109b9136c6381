# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
"""Documents -> token ids -> blocks: what chapter 03 teaches, as the script uses it.

Words for sizes of data, each with one meaning:
    document      one JSON line's `text` (one record of the corpus)
    map batch     the documents one `map` call sees (`batch_size`, 1,000): packing never crosses it
    piece         a contiguous part of a map-style corpus prepared alone (`prepare.PIECE_DOCUMENTS`)
    block         `block_size` token ids, one training sequence
    record batch  the rows of an Arrow cache file written together (`writer_batch_size`)
    shard         one file of a saved dataset or of a streamed corpus, read by one worker or rank
"""

import json
import shutil
import signal
import zlib
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import (
    Dataset,
    DatasetDict,
    Features,
    IterableDataset,
    Value,
    load_dataset,
    load_from_disk,
)
from datasets.fingerprint import Hasher
from torch.utils.data import get_worker_info
from transformers import default_data_collator

from llm_pretrain.checks import UsageError, check_utf8, find_bad_record

__all__ = [
    "load_corpus",
    "tokenize_function",
    "lm_collator",
    "in_eval_split",
    "split_documents",
    "pack_blocks",
    "tokenize_batch",
    "pack_groups",
    "packed_cache_file",
    "prepare_lm_dataset",
    "save_prepared",
    "load_prepared",
    "stream_blocks",
    "load_train_data",
    "nonempty_text",
    "drop_empty_texts",
    "has_text",
    "keep_text_records",
]


# ---- chapters/03_data.ipynb, cell 3 ----
def load_corpus(
    train_files: list[str | Path], streaming: bool = False
) -> Dataset | IterableDataset:
    """Load JSON-lines files with one `{"text": ...}` per line as a single `train` split.

    Record batches of the Arrow cache hold up to 10,000 documents (the default is 1,000):
    reading a cache file back touches a page of every record batch."""
    return load_dataset(
        "json",
        data_files=[str(f) for f in train_files],
        split="train",
        streaming=streaming,
        writer_batch_size=10_000,
    )


# ---- chapters/03_data.ipynb, cell 8 ----
def tokenize_function(examples: dict, tokenizer) -> dict:
    """Tokenize a batch of documents and end each with EOS, so documents stay apart once packed.

    Qwen-style tokenizers add no BOS/EOS themselves; without the EOS the model would read the
    end of one document straight into the start of the next.
    """
    ids = tokenizer(examples["text"], add_special_tokens=False, return_attention_mask=False)
    ids = ids["input_ids"]
    return {"input_ids": [doc + [tokenizer.eos_token_id] for doc in ids]}


# ---- chapters/03_data.ipynb, cell 19 ----
def lm_collator(features: list[dict]) -> dict[str, torch.Tensor]:
    """Stack equal-length blocks into tensors; `labels` are `input_ids` (the model shifts them).

    Not `DataCollatorForLanguageModeling`: it masks every pad token in the labels, and a Qwen
    tokenizer's pad token is its EOS, so the model would never learn where a document ends.
    In a data-loader worker (`--dataloader_num_workers`), the collator is the course's only code,
    so it also makes the worker ignore SIGTERM: a scheduler signals every process of the job,
    and a worker that died of it would crash the rank while it saves (its main process stops
    on the signal; the workers end when it does).
    """
    if get_worker_info() is not None and signal.getsignal(signal.SIGTERM) != signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once per worker
    batch = default_data_collator(features)
    batch["labels"] = batch["input_ids"].clone()
    return batch


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
    return tuple(
        raw_ds.with_format("arrow")
        .filter(
            in_eval_split, batched=True, **parallel, fn_kwargs={"percent": percent, "side": side}
        )
        .with_format(None)
        for side in ("train", "eval")
    )


# ---- chapters/03_data.ipynb, cell 52 ----
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


# ---- chapters/03_data.ipynb, cell 55 ----
def pack_groups(batch: pa.Table, tokenized: Dataset, group_size: int, block_size: int) -> pa.Table:
    """`pack_blocks` on each group of `group_size` documents of `tokenized` that starts at one of
    the batch's `start` rows: every group is packed alone, whichever process gets it."""
    return pa.concat_tables(
        [
            pack_blocks(tokenized[start : start + group_size], block_size)
            for start in batch.column("start").to_pylist()
        ]
    )


# ---- chapters/03_data.ipynb, cell 58 ----
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


# ---- chapters/03_data.ipynb, cell 61 ----
def prepare_lm_dataset(
    raw_ds: Dataset,
    tokenizer,
    block_size: int,
    num_proc: int | None = None,
    batch_size: int = 1000,
) -> tuple[Dataset, dict]:
    """Tokenize (EOS after every document) and pack into blocks; return blocks and a packing report.

    Packing sees `batch_size` documents at a time, so up to one partial block per group is
    dropped: the report says how many tokens that was. `num_proc` processes tokenize and pack;
    the groups are fixed by document index, so the blocks do not depend on `num_proc`.
    """
    tokenized_ds = raw_ds.with_format("arrow").map(
        tokenize_batch,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        remove_columns=raw_ds.column_names,
        fn_kwargs={"tokenizer": tokenizer},
        desc="tokenize",
    )
    groups = Dataset.from_dict({"start": range(0, tokenized_ds.num_rows, batch_size)})
    lm_ds = (
        groups.with_format("arrow")
        .map(
            # few, large record batches (16 groups per call, up to a million tokens per batch):
            # reading the cache file back touches a page of every record batch
            pack_groups,
            batched=True,
            batch_size=16,
            num_proc=num_proc,
            remove_columns=["start"],
            writer_batch_size=max(1000, 2**20 // block_size),
            fn_kwargs={
                "tokenized": tokenized_ds.with_format("arrow"),
                "group_size": batch_size,
                "block_size": block_size,
            },
            cache_file_name=packed_cache_file(tokenized_ds, block_size, batch_size),
            desc=f"pack into blocks of {block_size}",
        )
        .with_format(None)
    )
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


# ---- chapters/03_data.ipynb, cell 66 ----
def save_prepared(
    path: str | Path,
    train_ds: Dataset,
    eval_ds: Dataset | None,
    report: dict,
    num_proc: int | None = None,
) -> None:
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


# ---- chapters/03_data.ipynb, cell 70 ----
def stream_blocks(stream: IterableDataset, tokenizer, block_size: int) -> IterableDataset:
    """`prepare_lm_dataset` for a stream, lazily: int32 Arrow tokens, packed per map batch."""
    return (
        stream.with_format("arrow")
        .map(
            tokenize_batch,
            batched=True,
            remove_columns=["text"],
            fn_kwargs={"tokenizer": tokenizer},
        )
        .map(pack_blocks, batched=True, fn_kwargs={"block_size": block_size})
        .with_format(None)
    )


# ---- chapters/05_script.ipynb, cell 63 ----
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


# ---- chapters/05_script.ipynb, cell 66 ----
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
        lambda batch: {"text": batch["text"]},
        batched=True,
        remove_columns=others,
        **parallel,
        features=Features({"text": Value("string")}),
    )
