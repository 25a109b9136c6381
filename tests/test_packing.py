"""The exported fast packing cuts exactly the blocks of chapter 03's readable group_texts."""

from types import SimpleNamespace

import pyarrow as pa
import pytest

from common import notebook_function  # bench/common.py: `pythonpath` in pyproject.toml
from helpers import ROOT
from llm_pretrain.data import (
    lm_collator,
    load_corpus,
    pack_blocks,
    prepare_lm_dataset,
    split_documents,
    tokenize_batch,
    tokenize_function,
)
from llm_pretrain.paths import CORPUS_FILE
from llm_pretrain.prepare import build_datasets


@pytest.fixture(scope="module")
def group_texts():
    """The teaching version, taken from the chapter 03 cell that defines it."""
    return notebook_function(ROOT / "chapters" / "03_data.ipynb", "group_texts")


@pytest.mark.parametrize("block_size,batch_size", [(16, 7), (128, 1000), (509, 333)])
def test_pack_blocks_equals_group_texts(group_texts, tokenized_corpus, block_size, batch_size):
    kwargs = dict(batched=True, batch_size=batch_size, fn_kwargs={"block_size": block_size})
    slow = tokenized_corpus.map(group_texts, **kwargs)
    fast = tokenized_corpus.with_format("arrow").map(pack_blocks, **kwargs)
    fast = fast.with_format(None)
    assert fast.num_rows == slow.num_rows > 500
    assert fast[:] == slow[:]


def test_pack_blocks_edge_cases(group_texts):
    for docs in ([], [[1, 2]], [[1, 2, 3], [4]], [[1], [2], [3], [4], [5]]):
        table = pa.table({"input_ids": pa.array(docs, pa.list_(pa.int32()))})
        assert pack_blocks(table, 4).to_pydict() == group_texts({"input_ids": docs}, 4)


@pytest.mark.parametrize("batch_size", [1000, 7])
def test_blocks_do_not_depend_on_processes(tiny_tokenizer, group_texts, batch_size):
    """Tokenizing and packing both run in num_proc processes; the blocks stay the same."""
    raw = load_corpus([CORPUS_FILE]).select(range(1500))
    one, report_one = prepare_lm_dataset(raw, tiny_tokenizer, 64, batch_size=batch_size)
    two, report_two = prepare_lm_dataset(raw, tiny_tokenizer, 64, num_proc=2,
                                         batch_size=batch_size)
    assert report_one == report_two and one[:] == two[:]
    assert one.column_names == ["input_ids"] and len(one[0]["input_ids"]) == 64
    # the same as packing each map batch of documents in one process
    docs = raw.map(tokenize_function, batched=True, remove_columns=["text"],
                   fn_kwargs={"tokenizer": tiny_tokenizer})
    slow = docs.map(group_texts, batched=True, batch_size=batch_size, fn_kwargs={"block_size": 64})
    assert slow[:] == one[:]


def test_preparing_again_with_processes_reuses_the_cache(tiny_tokenizer, tmp_path):
    """The second preparation of a cached corpus with 2 processes loads the token and block
    shards of the first. (Block files named after the token shards once made `datasets` take
    them for token shards and fail on the second run.)"""
    from datasets import load_dataset

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(CORPUS_FILE.read_text(encoding="utf-8").splitlines(True)[:600]),
                      encoding="utf-8")
    raw = load_dataset("json", data_files=str(corpus), split="train",
                       cache_dir=str(tmp_path / "cache"))
    first, _ = prepare_lm_dataset(raw, tiny_tokenizer, 64, num_proc=2)
    again, _ = prepare_lm_dataset(raw, tiny_tokenizer, 64, num_proc=2)
    assert again.cache_files == first.cache_files and again[:] == first[:]


def test_collator_labels_are_the_inputs_eos_included(tiny_tokenizer):
    from transformers import DataCollatorForLanguageModeling

    eos = tiny_tokenizer.eos_token_id
    blocks = [{"input_ids": [5, 6, eos, 7]}, {"input_ids": [eos, 8, 9, 10]}]
    batch = lm_collator(blocks)
    assert batch["input_ids"].tolist() == [[5, 6, eos, 7], [eos, 8, 9, 10]]
    assert batch["labels"].tolist() == batch["input_ids"].tolist()
    assert batch["labels"].data_ptr() != batch["input_ids"].data_ptr()
    # the trap lm_collator avoids: pad is EOS, so the library collator hides every EOS
    masked = DataCollatorForLanguageModeling(tiny_tokenizer, mlm=False)(blocks)["labels"]
    assert tiny_tokenizer.pad_token_id == eos and (masked == -100).sum() == 2


def test_documents_split_by_content():
    raw = load_corpus([CORPUS_FILE])
    train, held_out = split_documents(raw, 5.0)
    assert train.num_rows + held_out.num_rows == raw.num_rows == 4000
    assert 150 < held_out.num_rows < 250  # about 5%
    assert not set(train["text"]) & set(held_out["text"]), "duplicates stay on one side"
    two = split_documents(raw, 5.0, num_proc=2)
    assert two[0]["text"] == train["text"] and two[1]["text"] == held_out["text"]
    stream = load_corpus([CORPUS_FILE], streaming=True)
    streamed_train, streamed_eval = split_documents(stream, 5.0)
    assert [d["text"] for d in streamed_eval] == held_out["text"]
    assert [d["text"] for d in streamed_train.take(50)] == train["text"][:50]
    assert split_documents(raw, 0.0)[1].num_rows == 0


def test_streamed_blocks_equal_map_style_blocks(tiny_tokenizer):
    args = SimpleNamespace(streaming=True, block_size=128, validation_split_percentage=0,
                           preprocessing_num_workers=None, shuffle_buffer=0)
    stream, _, _ = build_datasets(load_corpus([CORPUS_FILE], streaming=True), tiny_tokenizer,
                                  args, 42)
    lm_ds, _ = prepare_lm_dataset(load_corpus([CORPUS_FILE]), tiny_tokenizer, 128)
    assert list(stream.take(300)) == lm_ds.select(range(300)).to_list()


def test_shuffle_buffer_reorders_the_same_blocks(tiny_tokenizer):
    def first_blocks(buffer: int) -> list[list[int]]:
        args = SimpleNamespace(streaming=True, block_size=128, validation_split_percentage=0,
                               preprocessing_num_workers=None, shuffle_buffer=buffer)
        stream, _, report = build_datasets(load_corpus([CORPUS_FILE], streaming=True),
                                           tiny_tokenizer, args, 42)
        assert report["shuffle_buffer"] == buffer
        return [b["input_ids"] for b in stream.take(200)]

    plain, shuffled = first_blocks(0), first_blocks(100)
    assert shuffled != plain and shuffled == first_blocks(100)  # seeded: the same order again
    assert all(block in plain for block in shuffled[:50])  # drawn from the first 100 blocks


def test_tokenize_batch_equals_tokenize_function(tiny_tokenizer):
    raw = load_corpus([CORPUS_FILE]).select(range(300))
    kwargs = dict(batched=True, remove_columns=["text"], fn_kwargs={"tokenizer": tiny_tokenizer})
    readable = raw.map(tokenize_function, **kwargs)
    fast = raw.with_format("arrow").map(tokenize_batch, **kwargs).with_format(None)
    assert fast["input_ids"] == readable["input_ids"]
    assert all(ids[-1] == tiny_tokenizer.eos_token_id for ids in fast["input_ids"])


@pytest.mark.slow
def test_a_corpus_larger_than_a_piece_is_prepared_piece_by_piece(tiny_tokenizer):
    """Each piece is filtered, split and packed on its own: its blocks follow the previous
    piece's, every document and token is counted once, and processes change nothing."""
    def args(num_proc):
        return SimpleNamespace(streaming=False, block_size=128, validation_split_percentage=5.0,
                               preprocessing_num_workers=num_proc, shuffle_buffer=0)

    raw = load_corpus([CORPUS_FILE])
    train, held_out, report = build_datasets(raw, tiny_tokenizer, args(None), 42,
                                             piece_documents=1500)
    whole = build_datasets(raw, tiny_tokenizer, args(None), 42)[2]
    assert (report["pieces"], whole["pieces"]) == (3, 1)
    for key in ("documents", "tokens_in", "skipped_records"):
        assert report[key] == whole[key], key
    assert report["eval"]["documents"] == whole["eval"]["documents"]
    assert report["documents"] + report["eval"]["documents"] == 4000
    for side, blocks in ((report, train), (report["eval"], held_out)):
        assert side["tokens_kept"] == side["blocks"] * 128 == blocks.num_rows * 128
        assert side["tokens_in"] == side["tokens_kept"] + side["tokens_dropped"]
    # datasets' contiguous shards of 4,000 documents in 3: 1,334 + 1,333 + 1,333
    first_docs, _ = split_documents(raw.select(range(1334)), 5.0)
    last_docs, _ = split_documents(raw.select(range(2667, 4000)), 5.0)
    first, _ = prepare_lm_dataset(first_docs, tiny_tokenizer, 128)
    last, _ = prepare_lm_dataset(last_docs, tiny_tokenizer, 128)
    assert train.select(range(first.num_rows))[:] == first[:]
    assert train.select(range(train.num_rows - last.num_rows, train.num_rows))[:] == last[:]
    two = build_datasets(raw, tiny_tokenizer, args(2), 42, piece_documents=1500)
    assert two[2] == report and two[0][:] == train[:] and two[1][:] == held_out[:]
