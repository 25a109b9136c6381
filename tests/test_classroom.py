"""The classroom explorers: their functions give the chapters' numbers, and the widgets build and
react without a browser."""

import json
import math

import matplotlib
import pytest
from transformers import AutoConfig

from helpers import ASSETS, ROOT
from llm_pretrain import classroom
from llm_pretrain.data import load_corpus, prepare_lm_dataset
from llm_pretrain.paths import CORPUS_FILE

matplotlib.use("Agg")
QWEN = dict(layers=28, hidden=1536, heads=12, kv_heads=2, vocab=151936, seq_len=2048,
            micro_batch=4, precision="bf16 mixed", n_gpus=8, zero_stage=2, checkpointing=True)


@pytest.fixture(scope="module")
def qwen_config():
    return AutoConfig.from_pretrained(ASSETS / "qwen2.5-1.5b")


def stored_outputs(notebook: str) -> str:
    nb = json.loads((ROOT / "chapters" / notebook).read_text(encoding="utf-8"))
    return "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c["outputs"])


def test_qwen_preset_reproduces_the_chapter(qwen_config):
    report = classroom.memory_report(qwen_config, **QWEN)
    assert report.startswith("parameters: 1.544 B")
    assert "total           22.2 GB per GPU" in report
    assert report in stored_outputs("01_config.ipynb")  # the chapter printed the same text
    single = classroom.memory_report(qwen_config, **{**QWEN, "n_gpus": 1})
    assert "total           41.1 GB per GPU" in single
    assert "fits: 24 GB no  40 GB no  80 GB yes" in single


def test_zero_stages_and_precision(qwen_config):
    n = 1_543_714_304
    def memory(**kw):
        return classroom.training_memory_gb(qwen_config, micro_batch=1, seq_len=16, **kw)
    stage0, stage3 = memory(n_gpus=8, zero_stage=0), memory(n_gpus=8, zero_stage=3)
    assert stage0["weights"] + stage0["grads"] + stage0["optimizer"] == pytest.approx(16 * n / 1e9)
    assert stage3["weights"] + stage3["grads"] + stage3["optimizer"] == pytest.approx(2 * n / 1e9)
    fp32 = memory(precision="fp32")
    assert (fp32["weights"], fp32["grads"], fp32["optimizer"]) == pytest.approx(
        (4 * n / 1e9, 4 * n / 1e9, 8 * n / 1e9))
    assert memory(gradient_checkpointing=True)["activations"] < memory()["activations"] / 10


@pytest.mark.slow
def test_memory_model_matches_a_measured_forward_and_backward(qwen_config, tmp_path):
    """One more sequence costs what the calculator says (within 15%): a 1-layer, 64-wide Qwen2 with
    the full 151,936 vocab, whose batch-dependent memory is nearly all logits, measured in two
    fresh processes at micro-batch 1 and 2. One fp32 copy of the logits is a third of it."""
    narrow = classroom.logits_probe_config(qwen_config)
    narrow.save_pretrained(tmp_path)
    measured = (classroom.peak_memory_gb(tmp_path, 2, 256)
                - classroom.peak_memory_gb(tmp_path, 1, 256))
    one, two = (classroom.training_memory_gb(narrow, b, 256, precision="fp32") for b in (1, 2))
    predicted = sum(two[part] - one[part] for part in ("activations", "logits"))
    assert measured == pytest.approx(predicted, rel=0.15)
    one_copy = 4 * 256 * 151_936 / 1e9
    assert measured > 2.5 * one_copy


def test_impossible_head_counts_are_explained(qwen_config):
    assert "multiple" in classroom.memory_report(qwen_config, **{**QWEN, "heads": 7})
    assert "multiple" in classroom.memory_report(qwen_config, **{**QWEN, "kv_heads": 5})


def test_memory_explorer_builds_and_reacts(qwen_config, capsys):
    explorer = classroom.memory_explorer(qwen_config)
    controls = {w.description: w for w in explorer.children[:-1]}
    assert len(controls) == 11 and controls["layers"].value == 28
    capsys.readouterr()
    controls["layers"].value = 14
    assert "parameters: 0." in capsys.readouterr().out  # about half of 1.54B


@pytest.fixture(scope="module")
def doc_lengths(tokenized_corpus):
    raw = load_corpus([CORPUS_FILE])
    return [len(ids) for ids in tokenized_corpus["input_ids"]], raw


@pytest.mark.parametrize("block_size,batch_size", [(128, 1000), (512, 10), (2048, 4000)])
def test_packing_stats_match_prepare_lm_dataset(tiny_tokenizer, doc_lengths, block_size,
                                                batch_size):
    lengths, raw = doc_lengths
    _, report = prepare_lm_dataset(raw, tiny_tokenizer, block_size, batch_size=batch_size)
    stats = classroom.packing_stats(lengths, block_size, batch_size)
    for key in ["documents", "tokens_in", "blocks", "tokens_dropped", "dropped_percent"]:
        assert stats[key] == report[key], key


def test_packing_picture_and_explorer(doc_lengths, capsys):
    lengths, _ = doc_lengths
    figure = classroom.draw_packing(lengths, 128, n_blocks=6)
    bars = figure.axes[0].collections
    assert len(bars) > 6 and {round(b.get_paths()[0].vertices[:, 1].mean()) for b in bars} == set(
        range(6))
    explorer = classroom.packing_explorer(lengths)
    block_size = explorer.children[0]
    capsys.readouterr()
    block_size.value = 2048
    expected = classroom.packing_stats(lengths, 2048, 1000)["blocks"]  # checked above
    assert f"blocks: {expected:,}," in capsys.readouterr().out


def test_lr_curves_show_the_warmuplr_trap():
    curves = classroom.lr_curves(total_steps=262, warmup_steps=20, peak_lr=1e-3)
    trainer, deepspeed = curves["Trainer cosine"], curves["DeepSpeed WarmupLR"]
    assert len(trainer) == len(deepspeed) == 262
    assert trainer[10] == pytest.approx(1e-3 * 10 / 20)  # linear warm-up
    assert deepspeed[10] == pytest.approx(1e-3 * math.log(10) / math.log(20))  # log warm-up
    assert trainer[20] == deepspeed[20] == pytest.approx(1e-3)
    assert trainer[-1] < 1e-6 and deepspeed[-1] == pytest.approx(1e-3)  # cosine decays, not it
    linear = classroom.lr_curves(100, 10, "linear")["Trainer linear"]
    assert linear[55] == pytest.approx(1e-3 * 45 / 90)


def test_lr_explorer_builds_and_reacts(capsys):
    explorer = classroom.lr_explorer()
    controls = {w.description: w for w in explorer.children[:-1]}
    assert set(controls) == {"warm-up", "total", "type"}
    capsys.readouterr()
    controls["type"].value = "constant_with_warmup"
    assert "Trainer constant_with_warmup: last step 1.00e-03" in capsys.readouterr().out
