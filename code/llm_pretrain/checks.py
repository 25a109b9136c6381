# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
"""Bad input as one line: `UsageError`, and the checks that find it before any work starts."""

import glob
import json
import os

import pyarrow as pa
from datasets import Dataset
from transformers import HfArgumentParser

__all__ = [
    "UsageError",
    "ArgumentParser",
    "expand_train_files",
    "find_bad_record",
    "check_utf8",
    "check_model_fits",
]


# ---- chapters/05_script.ipynb, cell 58 ----
class UsageError(Exception):
    """Bad input on the command line or in the files it names: one line, exit status 2."""


class ArgumentParser(HfArgumentParser):
    """`HfArgumentParser` whose errors raise `UsageError` instead of printing the whole usage."""

    def error(self, message: str):
        raise UsageError(message)


# ---- chapters/05_script.ipynb, cell 59 ----
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


# ---- chapters/05_script.ipynb, cell 61 ----
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
                return f'{path}:{lineno}: a record without a "text" field'
    return None


# ---- chapters/05_script.ipynb, cell 62 ----
def check_utf8(raw_ds: Dataset) -> None:
    """Validate the `text` column's UTF-8, one record batch of the cache files at a time, read
    rather than memory-mapped: the process does not keep the whole corpus resident."""
    for cache in raw_ds.cache_files:
        with pa.OSFile(cache["filename"]) as source:
            for batch in pa.ipc.open_stream(source):
                batch.column("text").validate(full=True)


# ---- chapters/05_script.ipynb, cell 68 ----
def check_model_fits(model, tokenizer, block_size: int) -> None:
    """The tokenizer's ids and the block length must fit the model."""
    config = model.config
    if len(tokenizer) > config.vocab_size:
        raise UsageError(
            f"--tokenizer_name: the tokenizer has {len(tokenizer):,} tokens but the "
            f"model's vocab_size is {config.vocab_size:,}"
        )
    if block_size > config.max_position_embeddings:
        raise UsageError(
            f"--block_size {block_size} exceeds the model's max_position_embeddings "
            f"({config.max_position_embeddings})"
        )
    if block_size < 2:
        raise UsageError(f"--block_size must be at least 2, got {block_size}")
