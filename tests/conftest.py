import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
# every chapter and solution notebook, as a fresh clone has them
NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)
QWEN_TOKENIZER = ROOT.parent / "shared" / "data" / "qwen2.5-tokenizer"
NBVAL_MODULE = pytest.StashKey()  # tests/test_any_cpu.py, when its tests run in this session


def load_module(name: str):
    """code/<name>.py loaded by path (`code` is also a standard-library module name)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "code" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BROWSER = "tests/test_browser.py"
ANY_CPU = "tests/test_any_cpu.py"


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(config, items):
    """The browser tests first, tests/test_any_cpu.py last.

    The nbval runs of test_any_cpu.py (one thread each) start in the background once the browser
    tests are done (`pytest_runtest_setup`): they then share the CPU with tests that mostly wait
    on processes, ports and timeouts, and stay out of the way of the multi-threaded chapter runs
    in the browser, which they would slow down.
    """
    browser = [item for item in items if item.nodeid.startswith(BROWSER)]
    any_cpu = [item for item in items if item.nodeid.startswith(ANY_CPU)]
    others = [item for item in items if item not in browser and item not in any_cpu]
    items[:] = browser + others + any_cpu
    config.stash[NBVAL_MODULE] = any_cpu[0].module if any_cpu else None


def pytest_runtest_setup(item):
    module = item.config.stash.get(NBVAL_MODULE, None)
    if module is not None and not item.nodeid.startswith(BROWSER):
        module.start_nbval_runs()  # once; the first test after the browser ones


def pytest_sessionfinish(session):
    """No nbval run outlives the suite (an interrupted or failed session included)."""
    module = session.config.stash.get(NBVAL_MODULE, None)
    if module is not None:
        module.stop_nbval_runs()


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


# A short run: 8 optimizer steps of 4 x 128 tokens, a checkpoint every 4 steps, and 1% of the
# blocks (45) held out, so that each of the three evaluations takes a fraction of a second.
SHORT = ["--max_steps", "8", "--per_device_train_batch_size", "4", "--logging_steps", "1",
         "--eval_steps", "4", "--save_steps", "4", "--warmup_steps", "2",
         "--validation_split_percentage", "1"]
BATCH_LINE = re.compile(r"world size (\d+) x per-device batch (\d+) x grad accumulation (\d+) = "
                        r"(\d+) sequences x (\d+) tokens = ([\d,]+) tokens per optimizer step")


def check_outputs(out, log: str, world_size: int) -> None:
    """Everything a run must leave in --output_dir, and the start-up arithmetic in its log."""
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                 "trainer_state.json", "train_results.json", "eval_results.json",
                 "all_results.json", "packing_report.json", "loss_curve.png"):
        assert (out / name).is_file(), name
    assert not (out / "pytorch_model.bin").exists(), "weights are saved as safetensors"
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ev = json.loads((out / "eval_results.json").read_text())
    assert ev["eval_perplexity"] == pytest.approx(math.exp(ev["eval_loss"]))
    assert 0 < ev["eval_bits_per_byte"] < ev["eval_loss"] / math.log(2)
    report = json.loads((out / "packing_report.json").read_text())
    assert report["block_size"] == 128 and report["eos_id"] == 4093
    assert report["documents"] + report["eval"]["documents"] == 4000  # split by document
    for side in (report, report["eval"]):
        assert side["tokens_in"] == side["tokens_kept"] + side["tokens_dropped"]
        assert side["tokens_kept"] == side["blocks"] * 128 and side["blocks"] > 0
    steps = losses(out)
    assert [s for s, _ in steps] == list(range(1, 9))
    assert steps[-1][1] < steps[0][1] - 1.0, "the loss must fall"
    found = BATCH_LINE.findall(log)
    assert len(found) == 1, "the start-up arithmetic is logged once, by rank 0"
    world, batch, accum, seqs, block, tokens = found[0]
    assert (int(world), int(batch), int(accum), int(block)) == (world_size, 4, 1, 128)
    assert int(seqs) == world_size * 4 and int(tokens.replace(",", "")) == world_size * 4 * 128
    assert "optimizer steps 8" in log
