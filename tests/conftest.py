import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
# every chapter and solution notebook, as a fresh clone has them
NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)
QWEN_TOKENIZER = ROOT.parent / "shared" / "data" / "qwen2.5-tokenizer"


def load_module(name: str):
    """code/<name>.py loaded by path (`code` is also a standard-library module name)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "code" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pretrain():
    return load_module("pretrain")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ASSETS / "tokenizer")


@pytest.fixture(scope="session")
def tokenized_corpus(pretrain, tiny_tokenizer):
    """The bundled corpus, tokenized with chapter 03's `tokenize_function` (EOS after each)."""
    raw = pretrain.load_corpus([pretrain.CORPUS_FILE])
    return raw.map(pretrain.tokenize_function, batched=True, remove_columns=["text"],
                   fn_kwargs={"tokenizer": tiny_tokenizer})


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """The real Qwen2.5 tokenizer from ../shared/data, when it is there."""
    if not (QWEN_TOKENIZER / "tokenizer.json").exists():
        pytest.skip(f"{QWEN_TOKENIZER} not present")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(QWEN_TOKENIZER)


def same_losses(resumed: list[tuple[int, float]], reference: list[tuple[int, float]]) -> bool:
    """Per-step losses of a resumed run against an uninterrupted one.

    The steps must match exactly and the losses to 1e-6 relative: reloaded weights can sit at
    other memory alignments, and MKL's CPU kernels may then round differently in the 7th digit.
    """
    return [s for s, _ in resumed] == [s for s, _ in reference] and all(
        abs(a - b) <= 1e-6 * abs(b) for (_, a), (_, b) in zip(resumed, reference, strict=True))


def losses(output_dir: Path) -> list[tuple[int, float]]:
    """(step, train loss) pairs a run logged, from its trainer_state.json."""
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [(h["step"], h["loss"]) for h in state["log_history"] if "loss" in h]
