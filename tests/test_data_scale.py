"""Data at corpus scale: --tokenized_path, preparation slower than --ddp_timeout, a stream that
every rank reads in its own part and resumes from its saved position."""

import json
import shutil

import pytest
import torch

import pretrain
from helpers import (
    ROOT,
    SCRIPT,
    SHORT,
    TORCHRUN,
    check_outputs,
    losses,
    run_script,
    same_losses,
    train_in_process,
)
from llm_pretrain.data import load_prepared


def torchrun(*args, env: dict | None = None, script=SCRIPT):
    """Two processes on this machine, as an engineer starts them."""
    return run_script(*args, launcher=[*TORCHRUN, "--standalone", "--nproc_per_node", "2"],
                      script=script, env=env)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The bundled corpus prepared once, as `python code/pretrain.py --tokenized_path DIR` does."""
    path = tmp_path_factory.mktemp("tokenized") / "seq-monkey-128"
    (path.parent / "seq-monkey-128.partial").mkdir()  # a preparation that was cut short
    report = pretrain.prepare_data(*pretrain.parse_args(
        ["--tokenized_path", str(path), "--preprocessing_num_workers", "2"]))
    assert report["documents"] + report["eval"]["documents"] == 4000
    return path


@pytest.mark.slow
def test_prepared_folder_holds_blocks_report_and_no_labels(prepared):
    assert sorted(p.name for p in prepared.parent.iterdir()) == ["seq-monkey-128"]
    assert sorted(p.name for p in prepared.iterdir()) == [
        "dataset_dict.json", "eval", "packing_report.json", "train"]
    train, held_out, report = load_prepared(prepared)
    assert train.column_names == held_out.column_names == ["input_ids"]  # labels: the collator's
    assert report["documents"] + report["eval"]["documents"] == 4000
    assert (train.num_rows, held_out.num_rows) == (report["blocks"], report["eval"]["blocks"])
    # one int32 per token on disk, plus the list offsets: a labels column would double it
    arrow = sum(p.stat().st_size for p in (prepared / "train").glob("*.arrow"))
    assert 4.0 < arrow / report["tokens_kept"] < 4.2


@pytest.mark.slow
def test_tokenized_path_feeds_two_ranks_that_tokenize_nothing(prepared, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "datasets-cache"
    done = torchrun("--tokenized_path", str(prepared), "--output_dir", str(out), *SHORT,
                    env={"HF_DATASETS_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr[-3000:]
    check_outputs(out, done.stdout + done.stderr, world_size=2)
    assert not list(cache.rglob("*.arrow")), "a run that reads the corpus fills the cache"
    report = json.loads((out / "packing_report.json").read_text())
    assert report == json.loads((prepared / "packing_report.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("extra,expected", [
    (["--block_size", "64"],
     "--block_size 64: {path} holds blocks of 128; prepare another --tokenized_path"),
    (["--streaming", "true", "--max_steps", "4"],
     "--tokenized_path holds blocks ready for training: drop --streaming"),
])
def test_tokenized_path_refuses_what_does_not_match(prepared, tmp_path, capsys, extra, expected):
    before = {p: p.stat().st_mtime_ns for p in prepared.rglob("*")}
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--tokenized_path", str(prepared), "--output_dir", str(tmp_path / "o"),
                       *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pretrain.py: error: {expected.format(path=prepared)}"]
    assert {p: p.stat().st_mtime_ns for p in prepared.rglob("*")} == before


def test_a_folder_not_saved_by_tokenized_path_is_refused(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    with pytest.raises(SystemExit):
        pretrain.main(["--tokenized_path", str(tmp_path / "data"), "--output_dir",
                       str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"pretrain.py: error: --tokenized_path: {tmp_path / 'data'} was not saved by")


# On GPUs, --ddp_timeout bounds every collective (NCCL); with use_cpu, transformers 5.24 does not
# pass it on and gloo keeps its 30 minutes. The wrapper opens the process group itself with the
# short timeout (accelerate then uses it as it is), so a wait of 12 s exceeds it here too.
SLOW_RANK_ZERO = """
import datetime, os, time
import torch.distributed as dist
import llm_pretrain.prepare
import pretrain

dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=6))

build = llm_pretrain.prepare.build_datasets


def slow_build(*args, **kwargs):
    if os.environ["RANK"] == "0":
        time.sleep({seconds})  # a first tokenization of a large corpus
    return build(*args, **kwargs)


# the module's name, and the one the script imported from it
llm_pretrain.prepare.build_datasets = pretrain.build_datasets = slow_build
pretrain.main()
"""


@pytest.mark.slow
def test_stream_in_parts_survives_slow_preparation_and_resumes_exactly(tmp_path):
    """Two ranks, a corpus in two files: each rank keeps every second document; rank 0
    prepares for longer than --ddp_timeout; killed after a checkpoint, the same command goes on
    from the saved positions with the losses of the uninterrupted run."""
    lines = (ROOT / "assets" / "corpus" / "seq_monkey_sample.jsonl").read_text().splitlines(True)
    parts = [tmp_path / "part-0.jsonl", tmp_path / "part-1.jsonl"]
    parts[0].write_text("".join(lines[:2000]))
    parts[1].write_text("".join(lines[2000:]))
    wrapper = tmp_path / "slow_rank_zero.py"
    wrapper.write_text(SLOW_RANK_ZERO.format(seconds=12))
    out = tmp_path / "run"
    args = ["--streaming", "true", "--train_files", *map(str, parts), "--output_dir", str(out),
            "--max_steps", "6", "--save_steps", "3", "--logging_steps", "1", "--eval_strategy",
            "no", "--per_device_train_batch_size", "4"]

    first = torchrun(*args, script=wrapper)
    assert first.returncode == 0, first.stderr[-3000:]
    uninterrupted = losses(out)
    states = [torch.load(out / "checkpoint-3" / f"dataloader_rank{r}.pt") for r in (0, 1)]
    # each rank's loader holds a datasets stream of its own share (accelerate's shard of the
    # equal shares), whose position the loader saves; a rank reading the whole stream would
    # have no dataset_state. Equal shares: both ranks are at the same place in their own.
    assert all(s["dataset_state"] is not None for s in states)
    assert states[0]["dataset_state"] == states[1]["dataset_state"]

    shutil.rmtree(out / "checkpoint-6")  # the job died after checkpoint-3
    (out / "all_results.json").unlink()
    second = torchrun(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "the stream continues where checkpoint-3 left it" in second.stderr
    assert same_losses(losses(out), uninterrupted) and len(uninterrupted) == 6


@pytest.mark.slow
def test_stream_resumes_only_with_every_rank_s_saved_position(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--streaming", "true", "--output_dir", str(out), "--max_steps", "4", "--save_steps",
            "2", "--eval_strategy", "no", "--per_device_train_batch_size", "4"]
    assert train_in_process(*args)
    (out / "all_results.json").unlink()
    shutil.rmtree(out / "checkpoint-4")
    (out / "checkpoint-2" / "dataloader_rank0.pt").rename(out / "checkpoint-2" / "moved.pt")
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "pretrain.py: error: --streaming: checkpoint-2 holds the stream position of 0 "
        "process(es) and this run has 1; resume with the same number of processes, or start a "
        "new --output_dir")
