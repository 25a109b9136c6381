"""tokens/s and MFU: the FLOPs formula, the peak table, the callback clock, the script logs."""

import json
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from helpers import ASSETS, train_in_process
from llm_pretrain import metrics
from llm_pretrain.data import lm_collator, load_corpus, prepare_lm_dataset
from llm_pretrain.metrics import (
    ThroughputCallback,
    flops_per_token,
    lookup_peak_tflops,
    peak_flops,
)
from llm_pretrain.model import build_model, load_tokenizer
from llm_pretrain.paths import CORPUS_FILE, TINY_CONFIG_DIR, TOKENIZER_DIR


def meta_model(config_dir, **overrides):
    config = AutoConfig.from_pretrained(config_dir, **overrides)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def test_flops_per_token_of_qwen_1_5b():
    model = meta_model(ASSETS / "qwen2.5-1.5b")
    # tied embeddings: the output projection counts, the input lookup does not: N = all weights
    assert flops_per_token(model, 2048) == 6 * 1_543_714_304 + 12 * 28 * 1536 * 2048


def test_flops_per_token_without_tied_embeddings():
    tied = meta_model(ASSETS / "tiny-qwen2")
    untied = meta_model(ASSETS / "tiny-qwen2", tie_word_embeddings=False)
    embedding = untied.get_input_embeddings().weight.numel()
    assert untied.num_parameters() == tied.num_parameters() + embedding
    assert flops_per_token(untied, 128) == flops_per_token(tied, 128)


@pytest.mark.parametrize("name,tflops", [
    ("NVIDIA H200", 989), ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756),
    ("NVIDIA H100 NVL", 835), ("NVIDIA H200 NVL", 835),
    ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA L40S", 362), ("NVIDIA L40", 181),
    ("NVIDIA GeForce RTX 4090", 165), ("Tesla T4", None),
    ("NVIDIA H800", 989), ("NVIDIA H800 PCIe", 756), ("NVIDIA A800-SXM4-80GB", 312),
    ("NVIDIA H20", 148), ("NVIDIA L20", 119.5),  # "H20" is also inside "H200": longest wins
])
def test_peak_table(name, tflops):
    assert lookup_peak_tflops(name) == tflops


def test_peak_flops_on_cpu():
    assert peak_flops(torch.device("cpu")) is None
    assert peak_flops(torch.device("cpu"), 2.5) == 2.5e12


def test_callback_rate_leaves_out_evaluation_and_saving(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 30.0, 31.0])  # step, step, [eval + save], step
    monkeypatch.setattr(metrics.time, "perf_counter", lambda: next(clock))
    callback = ThroughputCallback(flops_per_token=1e6, peak_flops=4e9)
    args = SimpleNamespace(world_size=2, include_num_input_tokens_seen="all")
    state = SimpleNamespace(num_input_tokens_seen=0, log_history=[{}])
    callback.on_train_begin(args, state, None)
    for event in ["begin", "end", "begin", "end", "eval", "begin", "end"]:
        if event == "begin":
            callback.on_step_begin(args, state, None)
        elif event == "end":
            state.num_input_tokens_seen += 1000
            callback.on_step_end(args, state, None)
        else:
            callback.on_evaluate(args, state, None)
            callback.on_save(args, state, None)
    logs = {"loss": 1.0}
    callback.on_log(args, state, None, logs=logs)
    # 3000 tokens in 3 s of steps (the 27 s of evaluation and saving do not count)
    assert logs == {"loss": 1.0, "tokens_per_second": 1000.0, "mfu": 0.125}
    assert state.log_history[-1] == {"tokens_per_second": 1000.0, "mfu": 0.125}
    eval_logs = {"eval_loss": 2.0}
    callback.on_log(args, state, None, logs=eval_logs)
    assert eval_logs == {"eval_loss": 2.0}


@pytest.mark.slow
def test_script_logs_throughput_to_history_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert train_in_process("--output_dir", out, "--max_steps", "6", "--logging_steps", "2",
                            "--per_device_train_batch_size", "4", "--eval_steps", "3",
                            "--save_strategy", "no", "--report_to", "tensorboard",
                            "--peak_tflops", "0.5")
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    train_logs = [h for h in history if "loss" in h]
    assert [h["step"] for h in train_logs] == [2, 4, 6]
    fpt = flops_per_token(build_model(config_name=TINY_CONFIG_DIR), 128)
    for h in train_logs:
        assert h["tokens_per_second"] > 0
        assert h["mfu"] == pytest.approx(h["tokens_per_second"] * fpt / 0.5e12, rel=1e-3, abs=1e-4)
    assert train_logs[-1]["num_input_tokens_seen"] == 6 * 4 * 128
    tags = set()
    for path in (out / "runs").rglob("events.out.tfevents.*"):
        tags |= set(EventAccumulator(str(path)).Reload().Tags()["scalars"])
    assert {"train/tokens_per_second", "train/mfu", "train/loss"} <= tags


@pytest.mark.slow
def test_callback_starts_over_with_every_training_run(tmp_path):
    """A second trainer.train() (a re-run notebook cell) must not report negative rates."""
    from transformers import Trainer, TrainingArguments

    tokenizer = load_tokenizer(TOKENIZER_DIR)
    raw = load_corpus([CORPUS_FILE]).select(range(200))
    blocks, _ = prepare_lm_dataset(raw, tokenizer, 32)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, logging_steps=2,
                             per_device_train_batch_size=4, report_to="none", use_cpu=True,
                             include_num_input_tokens_seen="all", save_strategy="no",
                             disable_tqdm=True)
    trainer = Trainer(model=build_model(config_name=TINY_CONFIG_DIR), args=args,
                      train_dataset=blocks, data_collator=lm_collator)
    trainer.callback_handler.callbacks.insert(0, ThroughputCallback())
    for _ in range(2):
        trainer.train()
        rates = [h["tokens_per_second"] for h in trainer.state.log_history if "loss" in h]
        assert len(rates) == 2 and min(rates) > 0


def test_no_rate_without_token_counting():
    callback = ThroughputCallback()
    args = SimpleNamespace(world_size=1, include_num_input_tokens_seen="no")
    state = SimpleNamespace(num_input_tokens_seen=0, log_history=[{}])
    callback.on_train_begin(args, state, None)
    callback.on_step_begin(args, state, None)
    callback.on_step_end(args, state, None)
    logs = {"loss": 1.0}
    callback.on_log(args, state, None, logs=logs)
    assert logs == {"loss": 1.0}


def test_flops_per_token_counts_zero3_partitioned_weights():
    model = build_model(config_name=TINY_CONFIG_DIR)
    full = flops_per_token(model, 128)
    for p in model.parameters():  # what ZeRO-3 leaves on each rank: an empty shard + ds_numel
        p.ds_numel = p.numel()
        p.data = torch.empty(0)
    assert flops_per_token(model, 128) == full
