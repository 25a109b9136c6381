# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
"""A whole corpus, ready for the Trainer: pieces, held-out blocks, streams, `--tokenized_path`."""

import functools
import itertools
import logging
import math
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from datasets import Dataset, IterableDataset, concatenate_datasets
from datasets.distributed import split_dataset_by_node
from transformers import Trainer

from llm_pretrain.checks import UsageError
from llm_pretrain.data import (
    keep_text_records,
    load_prepared,
    prepare_lm_dataset,
    split_documents,
    stream_blocks,
)

__all__ = [
    "STREAM_EVAL_DOCUMENTS",
    "PIECE_DOCUMENTS",
    "prepare_eval",
    "prepare_piece",
    "merge_reports",
    "rank_shares",
    "equal_shares",
    "build_stream",
    "StreamTrainer",
    "build_datasets",
    "PREPROCESSING_TIMEOUT",
    "preprocessing_first",
    "load_tokenized",
]


# ---- chapters/05_script.ipynb, cell 72 ----
logger = logging.getLogger(__name__)
STREAM_EVAL_DOCUMENTS = 100  # streamed corpora: the first 100 documents on the eval side
# A map-style corpus is prepared this many documents at a time (about 1 GB of seq-monkey text,
# 13 M documents in about 31 GB): each worker process then touches its share of one piece only,
# so the memory a preparation needs follows the piece, not the corpus. Packing groups do not
# cross a piece.
PIECE_DOCUMENTS = 400_000


def prepare_eval(eval_docs: Dataset, tokenizer, data_args) -> tuple[Dataset, dict]:
    """Blocks and packing report of the held-out documents; none held out is a usage error."""
    if eval_docs.num_rows == 0:
        raise UsageError(
            f"--validation_split_percentage {data_args.validation_split_percentage}: "
            f"no document of this corpus is held out; raise it, or use 0"
        )
    return prepare_lm_dataset(
        eval_docs, tokenizer, data_args.block_size, data_args.preprocessing_num_workers
    )


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
    for key in (
        "documents",
        "tokens_in",
        "tokens_kept",
        "tokens_dropped",
        "blocks",
        "skipped_records",
    ):
        if key in merged:
            merged[key] = sum(report[key] for report in reports)
    dropped, tokens = merged["tokens_dropped"], max(merged["tokens_in"], 1)
    merged["dropped_percent"] = round(100 * dropped / tokens, 3)
    if merged.get("eval") is not None:
        merged["eval"] = merge_reports([report["eval"] for report in reports])
    return merged


def rank_shares(ranks: list[int], docs: IterableDataset, world_size: int):
    """The documents of the given ranks' shares: every `world_size`-th one, from every file."""
    for rank in ranks:
        yield from split_dataset_by_node(docs, rank, world_size, strategy="examples")


def equal_shares(docs: IterableDataset, world_size: int) -> IterableDataset:
    """A stream of `world_size` shards with the same number of documents (give or take one).

    accelerate gives each rank one shard. Split by files, a rank with a small file would start
    its next pass while the others are still in their first: its documents would weigh more.
    Here every rank reads every file and keeps every `world_size`-th document, so it tokenizes
    its own share only, however many files there are.
    """
    shares = functools.partial(rank_shares, docs=docs, world_size=world_size)
    return IterableDataset.from_generator(shares, gen_kwargs={"ranks": list(range(world_size))})


def build_stream(raw_ds: IterableDataset, tokenizer, data_args, seed: int):
    """Train blocks read lazily from a stream, eval blocks from its first eval-side documents."""
    block_size, percent = data_args.block_size, data_args.validation_split_percentage
    train_docs, eval_docs = split_documents(keep_text_records(raw_ds), percent)
    eval_ds = eval_report = None
    if percent > 0:
        eval_docs = Dataset.from_list(list(eval_docs.take(STREAM_EVAL_DOCUMENTS)))
        eval_ds, eval_report = prepare_eval(eval_docs, tokenizer, data_args)
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    if world_size > 1:  # one share per rank, equal in documents whatever the files' sizes
        train_docs = equal_shares(train_docs, world_size)
    train_ds = stream_blocks(train_docs, tokenizer, block_size)
    if data_args.shuffle_buffer > 0:
        train_ds = train_ds.shuffle(seed=seed, buffer_size=data_args.shuffle_buffer)
    report = {
        "streaming": True,
        "block_size": block_size,
        "eos_id": tokenizer.eos_token_id,
        "shuffle_buffer": data_args.shuffle_buffer,
        "eval": eval_report,
    }
    return train_ds, eval_ds, report


class StreamTrainer(Trainer):
    """A Trainer whose ranks end each pass over a stream together, with no short step.

    Before each optimizer step the ranks agree (an all-reduce, like `StopOnSigterm`'s flag) on
    how many full micro-batches every one of them could fetch. If any rank's share has run out, no
    rank trains this step: the pass ends for all, and what is left of the others' shares (a few
    blocks with equal shares) waits for the next pass.
    """

    ended = None  # the epoch iterator whose pass has ended

    def get_batch_samples(self, epoch_iterator, num_batches: int, device):
        if epoch_iterator is self.ended:
            return [], None
        batches = list(itertools.islice(epoch_iterator, num_batches))
        blocks = torch.tensor(sum(len(batch["input_ids"]) for batch in batches), device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(blocks, op=dist.ReduceOp.MIN)
        if blocks.item() < num_batches * self.args.per_device_train_batch_size:
            self.ended = epoch_iterator
            return [], None
        # agreed: now the Trainer's own count, itself a collective that every rank must join
        return super().get_batch_samples(iter(batches), num_batches, device)


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
        raise UsageError(
            f"--train_files: too little text for blocks of {data_args.block_size}: "
            f"{train_ds.num_rows} training and "
            f"{0 if eval_ds is None else eval_ds.num_rows} eval block(s)"
        )
    return train_ds, eval_ds, report


# ---- chapters/05_script.ipynb, cell 75 ----
PREPROCESSING_TIMEOUT = timedelta(hours=24)  # how long ranks wait for the data, not --ddp_timeout


@contextmanager
def preprocessing_first(training_args, local: bool = True):
    """`main_process_first` for slow one-time work: each node's first process (with `local`;
    else rank 0 alone) prepares the data and fills the cache, or converts a checkpoint, while
    the others wait on a gloo group whose timeout is `PREPROCESSING_TIMEOUT`, so work longer
    than `--ddp_timeout` does not kill the job."""
    if not (dist.is_available() and dist.is_initialized()):
        yield
        return
    group = dist.new_group(backend="gloo", timeout=PREPROCESSING_TIMEOUT)
    first = (training_args.local_process_index if local else training_args.process_index) == 0
    if not first:
        dist.barrier(group=group)
    yield
    if first:
        dist.barrier(group=group)
    dist.destroy_process_group(group)


def load_tokenized(data_args, tokenizer, need_eval: bool):
    """Train blocks, eval blocks (or None) and packing report that `pretrain.py --tokenized_path`
    saved in a new folder: memory-mapped, checked against this run."""
    path = data_args.tokenized_path
    try:
        train_ds, eval_ds, report = load_prepared(path)
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(
            f"--tokenized_path: {path} was not saved by --tokenized_path "
            f"({str(err).splitlines()[0]})"
        ) from err
    if report["block_size"] != data_args.block_size:
        raise UsageError(
            f"--block_size {data_args.block_size}: {path} holds blocks of "
            f"{report['block_size']}; prepare another --tokenized_path"
        )
    if report["eos_id"] != tokenizer.eos_token_id:
        raise UsageError(
            f"--tokenizer_name: {path} was tokenized with EOS id {report['eos_id']}, "
            f"this tokenizer's is {tokenizer.eos_token_id}"
        )
    if eval_ds is None and need_eval:
        raise UsageError(f"--tokenized_path: {path} has no eval split: add --eval_strategy no")
    return train_ds, eval_ds, report
