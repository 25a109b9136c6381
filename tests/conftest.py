"""Fixtures of the test files; what they import (paths, running the script, the checks of a
finished run) is in tests/helpers.py."""

import pytest

from helpers import ASSETS, QWEN_TOKENIZER


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ASSETS / "tokenizer")


@pytest.fixture(scope="session")
def tokenized_corpus(tiny_tokenizer):
    """The bundled corpus, tokenized with chapter 03's `tokenize_function` (EOS after each)."""
    from llm_pretrain.data import load_corpus, tokenize_function
    from llm_pretrain.paths import CORPUS_FILE

    raw = load_corpus([CORPUS_FILE])
    return raw.map(tokenize_function, batched=True, remove_columns=["text"],
                   fn_kwargs={"tokenizer": tiny_tokenizer})


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """The real Qwen2.5 tokenizer from ../shared/data, when it is there."""
    if not (QWEN_TOKENIZER / "tokenizer.json").exists():
        pytest.skip(f"{QWEN_TOKENIZER} not present")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(QWEN_TOKENIZER)
