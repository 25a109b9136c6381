import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
QWEN_TOKENIZER = ROOT.parent / "shared" / "data" / "qwen2.5-tokenizer"


@pytest.fixture(scope="session")
def pretrain():
    """code/pretrain.py loaded by path (`code` is also a standard-library module name)."""
    spec = importlib.util.spec_from_file_location("pretrain", ROOT / "code" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ASSETS / "tokenizer")


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """The real Qwen2.5 tokenizer from ../shared/data, when it is there."""
    if not (QWEN_TOKENIZER / "tokenizer.json").exists():
        pytest.skip(f"{QWEN_TOKENIZER} not present")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(QWEN_TOKENIZER)
