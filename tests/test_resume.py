"""Interrupted runs: SIGKILL at any moment, rerun the same command, get the same losses."""

import json
import logging
import signal
import subprocess
import time
from collections.abc import Sequence

import pytest
from transformers import AutoModelForCausalLM

import pretrain
from helpers import losses, run_script, same_losses, start_script, train_in_process
from llm_pretrain.data import lm_collator, load_corpus, prepare_lm_dataset, split_documents
from llm_pretrain.model import build_model, load_tokenizer
from llm_pretrain.paths import CORPUS_FILE, TINY_CONFIG_DIR, TOKENIZER_DIR
from llm_pretrain.prepare import build_datasets
from llm_pretrain.resume import (
    convert_to_universal,
    is_complete_checkpoint,
    last_complete_checkpoint,
    step_size_hint,
)

ARGS = ["--max_steps", "12", "--per_device_train_batch_size", "8", "--logging_steps", "1",
        "--save_steps", "3", "--save_total_limit", "3", "--eval_strategy", "no",
        "--warmup_steps", "2"]


def train(out, *extra: str) -> None:
    """The same command as `run_script("--output_dir", out, *ARGS)`, run in this process."""
    assert train_in_process("--output_dir", out, *ARGS, *extra)


def finish(out) -> str:
    done = run_script("--output_dir", out, *ARGS)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    train(out)
    return out


@pytest.fixture(scope="module")
def uninterrupted(finished_run):
    return losses(finished_run)


def kill_when(out, ready, delay: float = 0.0, extra: Sequence[str] = ()) -> None:
    """Start the run and SIGKILL it `delay` seconds after `ready(out)` holds."""
    proc = start_script("--output_dir", out, *ARGS, *extra, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not ready(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def has(name):
    return lambda out: (out / name).exists()


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["early", "mid-epoch", "during a save", "after a save"])
def test_killed_run_resumes_with_the_uninterrupted_losses(moment, uninterrupted, tmp_path,
                                                          caplog):
    out = tmp_path / "run"
    ready, delay = {
        "early": (lambda out: True, 4.0),  # while the model and the data are being prepared
        "mid-epoch": (has("checkpoint-3/trainer_state.json"), 0.3),  # between two saves
        "during a save": (has("checkpoint-6/model.safetensors"), 0.0),
        "after a save": (has("checkpoint-9/trainer_state.json"), 0.0),
    }[moment]
    kill_when(out, ready, delay)
    if moment == "during a save":  # make sure the newest folder is a half-written one
        newest = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        (newest / "trainer_state.json").unlink(missing_ok=True)
    for checkpoint in out.glob("checkpoint-*"):  # every checkpoint counted as saved must load
        if is_complete_checkpoint(checkpoint):
            AutoModelForCausalLM.from_pretrained(checkpoint)
    with caplog.at_level(logging.WARNING):
        train(out)
    if moment == "during a save":
        assert "skipping incomplete checkpoint" in caplog.text
    assert same_losses(losses(out), uninterrupted)


def test_complete_checkpoints_are_the_only_ones_resumed(tmp_path):
    for step, state in [(4, {"global_step": 4}), (8, None), (12, "truncated")]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state == "truncated":
            (folder / "trainer_state.json").write_text('{"global_step": 1')
        elif state:
            (folder / "trainer_state.json").write_text(json.dumps(state))
    (tmp_path / "checkpoint-x").mkdir()
    resume, skipped = last_complete_checkpoint(tmp_path)
    assert resume.name == "checkpoint-4"
    assert [p.name for p in skipped] == ["checkpoint-12", "checkpoint-8"]
    assert last_complete_checkpoint(tmp_path / "missing") == (None, [])


@pytest.mark.slow
def test_finished_run_rerun_changes_nothing(finished_run, uninterrupted):
    before = {p: p.read_bytes() for p in finished_run.rglob("*") if p.is_file()}
    assert "the run finished at checkpoint-12: nothing to do" in finish(finished_run)
    after = {p: p.read_bytes() for p in finished_run.rglob("*") if p.is_file()}
    assert after == before and losses(finished_run) == uninterrupted


@pytest.mark.slow
def test_notebook_path_and_script_agree(tmp_path):
    """Chapter 04's calls and the script's give the same first batch and the same losses."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    seed, steps = 42, 4
    tokenizer = load_tokenizer(TOKENIZER_DIR)
    train_docs, _ = split_documents(load_corpus([CORPUS_FILE]), 5.0)
    notebook_train, _ = prepare_lm_dataset(train_docs, tokenizer, 128)
    set_seed(seed)
    model = build_model(config_name=TINY_CONFIG_DIR, dtype=torch.float32)
    args = TrainingArguments(output_dir=str(tmp_path / "nb"), per_device_train_batch_size=16,
                             learning_rate=1e-3, lr_scheduler_type="cosine", warmup_steps=2,
                             weight_decay=0.1, max_steps=steps, logging_steps=1, seed=seed,
                             use_cpu=True, report_to="none", save_strategy="no",
                             disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=notebook_train,
                      processing_class=tokenizer, data_collator=lm_collator)
    first_batch = next(iter(trainer.get_train_dataloader()))["input_ids"]
    trainer.train()
    notebook = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]

    out = tmp_path / "script"
    assert train_in_process("--output_dir", out, "--max_steps", steps, "--logging_steps", "1",
                            "--warmup_steps", "2", "--eval_strategy", "no",
                            "--save_strategy", "no")
    assert losses(out) == notebook
    script_args = pretrain.parse_args(["--output_dir", str(tmp_path / "x")])
    train_ds, _, _ = build_datasets(load_corpus([CORPUS_FILE]), tokenizer, script_args[1], seed)
    script_trainer = Trainer(model=model, args=args, train_dataset=train_ds,
                             data_collator=lm_collator)
    script_batch = next(iter(script_trainer.get_train_dataloader()))["input_ids"]
    assert int(first_batch.sum()) == int(script_batch.sum())
    assert torch.equal(first_batch, script_batch)


STREAM = ["--streaming", "true"]


@pytest.mark.slow
def test_streamed_corpus_resumes_exactly(tmp_path):
    """A stream has no random access: resume must re-find its position in the stream."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    kill_when(cut, has("checkpoint-6/trainer_state.json"), extra=STREAM)
    for out in (full, cut):  # the uninterrupted run, then the rerun of the killed one
        train(out, *STREAM)
    assert same_losses(losses(cut), losses(full))
    assert (cut / "checkpoint-6" / "dataloader_rank0.pt").is_file()  # the stream's position
    report = json.loads((full / "packing_report.json").read_text())
    assert report["streaming"] is True and report["eval"]["documents"] == 100


def test_a_step_size_no_micro_batch_makes_names_what_would_work():
    """4 nodes of 8 GPUs trained 128 sequences per step; 3 nodes cannot split them."""
    assert step_size_hint(8, 2, 3) == "choose --per_device_train_batch_size 1 or 2 or 4"
    assert step_size_hint(128, 24, 4) == (
        "no micro-batch splits 128 sequences over 24 processes: resume on 16 or 32 processes, "
        "or start a new --output_dir with a global batch 24 processes can make, e.g. 96 or 192 "
        "sequences at micro-batch 4")


def test_a_failed_universal_conversion_shows_the_converters_error(tmp_path):
    checkpoint = tmp_path / "checkpoint-3"
    (checkpoint / "global_step3").mkdir(parents=True)  # a ZeRO folder with no files in it
    (checkpoint / "latest").write_text("global_step3")
    with pytest.raises(RuntimeError) as failed:
        convert_to_universal(checkpoint)
    message = str(failed.value)
    assert message.startswith("DeepSpeed's universal conversion of checkpoint-3 failed:\n")
    assert "Error" in message.split("\n", 1)[1], "the converter's stderr, not only its status"
    assert not (checkpoint / "latest_universal").exists()
