"""The script under SIGTERM, messy real corpora, no network, and wandb without a login."""

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time

import pytest

import pretrain
from helpers import (
    ASSETS,
    ROOT,
    losses,
    run_script,
    same_losses,
    signal_once_training,
    start_script,
    train_in_process,
)
from llm_pretrain.checks import expand_train_files
from llm_pretrain.data import keep_text_records, load_corpus
from llm_pretrain.model import HUB_TIMEOUT
from llm_pretrain.resume import is_complete_checkpoint

CORPUS_LINES = (ASSETS / "corpus" / "seq_monkey_sample.jsonl").read_text().splitlines()
QUICK = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--eval_strategy", "no",
         "--save_strategy", "no", "--validation_split_percentage", "0", "--block_size", "32"]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_rerun_matches(tmp_path):
    # the run stops at the step after the signal; it is sized to leave several seconds of
    # training after its first logged step (~5 s on 2 cores) for the signal to land in
    args = ["--max_steps", "12", "--per_device_train_batch_size", "16", "--logging_steps", "1",
            "--save_steps", "1000", "--eval_strategy", "no", "--warmup_steps", "2"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    proc = start_script("--output_dir", cut, *args)
    log = signal_once_training(proc)
    assert proc.wait(timeout=120) == 143
    assert "stopped at step" in log
    checkpoints = list(cut.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "trainer_state.json").exists()
    assert 1 <= int(checkpoints[0].name.split("-")[1]) < 12
    assert not (cut / "all_results.json").exists(), "a stopped run is not reported as finished"
    for out in (cut, full):  # the rerun of the same command, and an uninterrupted run (in-process)
        assert train_in_process("--output_dir", out, *args)
    assert same_losses(losses(cut), losses(full))


@pytest.mark.slow
def test_sigterm_with_save_strategy_no_stops_without_a_checkpoint(tmp_path):
    """A run that saves nothing (a benchmark, bench/gpu_mfu.sh) is not made to write ~25 GB
    when a `timeout` or the scheduler stops it."""
    out = tmp_path / "out"
    proc = start_script("--output_dir", out, "--max_steps", "200", "--logging_steps", "1",
                        "--save_strategy", "no", "--eval_strategy", "no")
    log = signal_once_training(proc)
    assert proc.wait(timeout=120) == 143
    assert "on SIGTERM; no checkpoint (--save_strategy no)" in log
    assert not list(out.glob("checkpoint-*"))


@pytest.mark.slow
def test_sigterm_to_every_process_with_loader_workers_still_saves(tmp_path):
    """The scheduler's SIGTERM also reaches the data-loader workers: they must not die and turn
    the rank's orderly stop into a crash (`DataLoader worker ... exited unexpectedly`)."""
    out = tmp_path / "out"
    stepd = [sys.executable, str(ROOT / "tests" / "stepd.py"), sys.executable, "-u"]
    proc = start_script("--output_dir", out, "--max_steps", "200", "--logging_steps", "1",
                        "--dataloader_num_workers", "2", "--eval_strategy", "no", launcher=stepd)
    log = signal_once_training(proc)
    assert proc.wait(timeout=120) == 143, log[-3000:]
    assert re.search(r"stepd: SIGTERM to [3-9] processes", log), log[-2000:]
    assert "exited unexpectedly" not in log
    checkpoints = list(out.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and is_complete_checkpoint(checkpoints[0])


@pytest.mark.slow
def test_two_runs_with_the_same_seed_are_identical(tmp_path):
    def run(name, *extra):
        out = tmp_path / name
        assert train_in_process("--output_dir", out, *QUICK, "--logging_steps", "1", *extra)
        return losses(out)

    first = run("a")
    assert run("b") == first and len(first) == 2
    assert run("c", "--seed", "7") != first


def corpus(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def jsonl(records) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"


GOOD = "\n".join(CORPUS_LINES[:60]) + "\n"
MESSY = {  # name: (file contents, records the packing report must say were skipped)
    "utf8_bom.jsonl": ("\ufeff" + GOOD, 0),
    "windows_crlf.jsonl": (GOOD.replace("\n", "\r\n"), 0),
    "json_array.json": (json.dumps([json.loads(x) for x in CORPUS_LINES[:60]]), 0),
    "null_numbers_lists_empty.jsonl": (
        GOOD + jsonl([{"text": None}, {"text": 42}, {"text": ["a"]}] + [{"text": ""}] * 5), 8),
    "a_10mb_document_and_long_lines.jsonl": (
        jsonl([{"text": "九九八十一。" * 600_000}, {"text": "x" * 2_000_000}]), 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", MESSY)
def test_messy_but_valid_corpora_train_and_report_what_was_skipped(name, tmp_path):
    data, skipped = MESSY[name]
    path = corpus(tmp_path, name, data.encode("utf-8"))
    out = tmp_path / "out"
    assert train_in_process("--train_files", path, "--output_dir", out, *QUICK) is not None
    report = json.loads((out / "packing_report.json").read_text())
    assert report["skipped_records"] == skipped
    assert report["tokens_in"] == report["tokens_kept"] + report["tokens_dropped"] > 0


@pytest.mark.parametrize("streaming", [False, True])
def test_kept_records_are_decoded_text(tmp_path, streaming):
    """A non-string `text` makes datasets load the column as JSON, whose Arrow values are
    JSON-encoded ("\"...\""): the kept records must be the texts themselves."""
    data, _ = MESSY["null_numbers_lists_empty.jsonl"]
    raw = load_corpus([corpus(tmp_path, "messy.jsonl", data.encode())], streaming)
    kept = keep_text_records(raw)
    texts = [json.loads(line)["text"] for line in CORPUS_LINES[:60]]
    assert [r["text"] for r in kept] == texts
    first = next(iter(kept.with_format("arrow").iter(batch_size=1)))
    assert first.column("text").to_pylist() == texts[:1]  # what tokenize_batch reads


def test_duplicate_train_files_are_read_once(tmp_path):
    path = corpus(tmp_path, "c.jsonl", GOOD.encode())
    assert expand_train_files([path, path, str(tmp_path / "*.jsonl")]) == [path]


def test_a_csv_file_is_a_one_line_error(tmp_path, capsys):
    path = corpus(tmp_path, "data.csv", b"text,label\nhello,1\n")
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--train_files", path, "--output_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    expected = "data.csv:1: not valid JSON (Expecting value, column 1)"
    assert capsys.readouterr().err.strip().endswith(expected)


def hub_down_run(tmp_path, endpoint: str) -> tuple[float, subprocess.CompletedProcess]:
    """The script with a Hub name, online mode, an empty cache and the Hub at `endpoint`."""
    env = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
           "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf")}  # nothing to fall back on
    start = time.monotonic()
    done = run_script("--config_name", "Qwen/Qwen2.5-1.5B", "--output_dir", tmp_path / "out",
                      env=env)
    return time.monotonic() - start, done


def check_one_line(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"did not answer within {HUB_TIMEOUT} s" in done.stderr
    assert "pretrain.py: error: --tokenizer_name" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "pretrain.py: error: --config_name: cannot load 'Qwen/Qwen2.5-1.5B'")


@pytest.mark.slow
def test_a_hub_that_refuses_is_one_line_within_20_seconds(tmp_path):
    elapsed, done = hub_down_run(tmp_path, "http://127.0.0.1:9")  # nothing listens on port 9
    check_one_line(done)
    assert elapsed < 20


@pytest.mark.slow
def test_a_hub_that_never_answers_is_one_line_within_20_seconds(tmp_path):
    with socket.socket() as server:  # accepts connections (the kernel's backlog), never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        elapsed, done = hub_down_run(tmp_path, f"http://127.0.0.1:{server.getsockname()[1]}")
    check_one_line(done)
    assert elapsed < 20  # the interpreter's start and imports, then the probe's HUB_TIMEOUT


@pytest.mark.slow
def test_wandb_without_login_runs_offline(tmp_path):
    out = tmp_path / "out"
    # no ~/.netrc, no API key, none of the user's W&B settings
    env = {**{k: None for k in os.environ if k.startswith("WANDB_")}, "HOME": str(tmp_path),
           "WANDB_SILENT": "true"}
    done = run_script("--output_dir", out, *QUICK, "--report_to", "wandb", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "logging offline" in done.stderr
    assert list((out / "wandb").glob("offline-run-*")), "the offline run is kept for `wandb sync`"


@pytest.mark.slow
def test_trust_remote_code_is_off_by_default_and_announced_when_on(tmp_path, caplog):
    model_args = pretrain.parse_args(["--output_dir", str(tmp_path)])[0]
    assert model_args.trust_remote_code is False
    with caplog.at_level(logging.WARNING):
        train_in_process("--output_dir", tmp_path / "out", "--trust_remote_code", *QUICK)
    assert "--trust_remote_code is on" in caplog.text
