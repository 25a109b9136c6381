"""code/pretrain.py end to end: python, torchrun and the DeepSpeed launcher on the CPU."""

import json
import math
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, losses

SCRIPT = ROOT / "code" / "pretrain.py"
# A short run: 8 optimizer steps of 4 x 128 tokens, a checkpoint every 4 steps, and 1% of the
# blocks (45) held out, so that each of the three evaluations takes a fraction of a second.
SHORT = ["--max_steps", "8", "--per_device_train_batch_size", "4", "--logging_steps", "1",
         "--eval_steps", "4", "--save_steps", "4", "--warmup_steps", "2",
         "--validation_split_percentage", "1"]
# in the environment of the plain python run; neither may appear in its logs or files
SECRETS = {"HF_TOKEN": "hf_s3cr3tT0k3nValue", "AWS_SECRET_ACCESS_KEY": "aws/s3cr3t+key"}
BATCH_LINE = re.compile(r"world size (\d+) x per-device batch (\d+) x grad accumulation (\d+) = "
                        r"(\d+) sequences x (\d+) tokens = ([\d,]+) tokens per optimizer step")


def run(cmd: list[str], cwd=ROOT, **env) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL)


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
    assert report["documents"] == 4000 and report["block_size"] == 128 and report["eos_id"] == 4093
    assert report["tokens_in"] == report["tokens_kept"] + report["tokens_dropped"]
    assert report["tokens_kept"] == report["blocks"] * 128
    steps = losses(out)
    assert [s for s, _ in steps] == list(range(1, 9))
    assert steps[-1][1] < steps[0][1] - 1.0, "the loss must fall"
    found = BATCH_LINE.findall(log)
    assert len(found) == 1, "the start-up arithmetic is logged once, by rank 0"
    world, batch, accum, seqs, block, tokens = found[0]
    assert (int(world), int(batch), int(accum), int(block)) == (world_size, 4, 1, 128)
    assert int(seqs) == world_size * 4 and int(tokens.replace(",", "")) == world_size * 4 * 128
    assert "optimizer steps 8" in log


@pytest.fixture(scope="module")
def python_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("python") / "run"
    tmp = tmp_path_factory.mktemp("tmpdir")
    # importing torch._dynamo makes torch's compile cache, by default under TMPDIR: not ours
    cache = tmp_path_factory.mktemp("torchinductor")
    done = run([sys.executable, str(SCRIPT), "--output_dir", str(out), "--report_to",
                "tensorboard", *SHORT], TMPDIR=str(tmp), TORCHINDUCTOR_CACHE_DIR=str(cache),
               **SECRETS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(tmp.iterdir()), "no temporary files are left behind"
    return out, done.stdout + done.stderr


def test_no_secret_from_the_environment_is_printed(python_run):
    out, log = python_run
    written = log + "".join(p.read_text(errors="ignore") for p in out.rglob("*")
                            if p.is_file() and p.suffix == ".json")
    for value in SECRETS.values():
        assert value not in written


def test_python_run_writes_model_metrics_report_and_curve(python_run):
    out, log = python_run
    check_outputs(out, log, world_size=1)
    assert list((out / "runs").rglob("events.out.tfevents.*")), "TensorBoard events"


def test_saved_model_and_tokenizer_load_back(python_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = python_run
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer) == 4096


def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "run"
    done = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", "29561", str(SCRIPT), "--output_dir", str(out), "--report_to",
                "tensorboard", *SHORT])
    assert done.returncode == 0, done.stderr[-3000:]
    check_outputs(out, done.stdout + done.stderr, world_size=2)
    events = list((out / "runs").rglob("events.out.tfevents.*"))  # ...<host>.<pid>.<n>
    assert events and len({p.name.split(".")[-2] for p in events}) == 1, "rank 0 logs alone"


def test_deepspeed_launcher_two_cpu_processes_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # pretrain.sh picks the thread count
    out = tmp_path / "run"
    done = run(["bash", str(ROOT / "code" / "pretrain.sh"), "--output_dir", str(out), *SHORT],
               cwd=tmp_path, MASTER_PORT="29562")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    check_outputs(out, log, world_size=2)
    assert (out / "checkpoint-8" / "global_step8").is_dir(), "a DeepSpeed (ZeRO) checkpoint"
    assert "ds_config_zero2.json" in log
    # accelerate warns when it has to choose the threads itself (2 per process on 2 cores: too many)
    assert "OMP_NUM_THREADS/MKL_NUM_THREADS unset" not in log


def test_deepspeed_config_has_no_traps():
    config = json.loads((ROOT / "ds_config_zero2.json").read_text())
    assert config["zero_optimization"]["stage"] == 2
    assert config["bf16"]["enabled"] == "auto" and config["fp16"]["enabled"] == "auto"
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu",
                "gradient_accumulation_steps", "gradient_clipping"):
        assert config[key] == "auto", key
    assert "scheduler" not in config, "WarmupLR would replace the Trainer's LR schedule"
    assert "optimizer" not in config, "an optimizer block makes DeepSpeed JIT-build FusedAdam"
