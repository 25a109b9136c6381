"""code/pretrain.py end to end: python and pretrain.sh (DeepSpeed ZeRO-2) on one CPU machine.

torchrun, and both launchers across two hosts: tests/test_cluster.py."""

import json

import pytest
import torch

from helpers import LAUNCHER, ROOT, SHORT, check_outputs, run_script

# in the environment of the plain python run; neither may appear in its logs or files
SECRETS = {"HF_TOKEN": "hf_s3cr3tT0k3nValue", "AWS_SECRET_ACCESS_KEY": "aws/s3cr3t+key"}


@pytest.fixture(scope="module")
def python_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("python") / "run"
    tmp = tmp_path_factory.mktemp("tmpdir")
    # importing torch._dynamo makes torch's compile cache, by default under TMPDIR: not ours
    cache = tmp_path_factory.mktemp("torchinductor")
    done = run_script("--output_dir", out, "--report_to", "tensorboard", *SHORT,
                      env={"TMPDIR": str(tmp), "TORCHINDUCTOR_CACHE_DIR": str(cache), **SECRETS})
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(tmp.iterdir()), "no temporary files are left behind"
    return out, done.stdout + done.stderr


@pytest.mark.slow
def test_no_secret_from_the_environment_is_printed(python_run):
    out, log = python_run
    written = log + "".join(p.read_text(errors="ignore") for p in out.rglob("*")
                            if p.is_file() and p.suffix == ".json")
    for value in SECRETS.values():
        assert value not in written


@pytest.mark.slow
def test_python_run_writes_model_metrics_report_and_curve(python_run):
    out, log = python_run
    check_outputs(out, log, world_size=1)
    assert list((out / "runs").rglob("events.out.tfevents.*")), "TensorBoard events"


@pytest.mark.slow
def test_saved_model_and_tokenizer_load_back(python_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = python_run
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer) == 4096


@pytest.mark.slow
def test_deepspeed_launcher_two_cpu_processes_from_another_directory(tmp_path):
    out = tmp_path / "run"
    env = {"MASTER_PORT": "29562", "OMP_NUM_THREADS": None}  # pretrain.sh picks the threads
    done = run_script("--output_dir", out, *SHORT, launcher=["bash"], script=LAUNCHER,
                      cwd=tmp_path, env=env)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    check_outputs(out, log, world_size=2)
    assert (out / "checkpoint-8" / "global_step8").is_dir(), "a DeepSpeed (ZeRO) checkpoint"
    # the course's ds_config_zero2.json, found from pretrain.sh's own folder, not the cwd's
    saved = torch.load(out / "checkpoint-8" / "global_step8" / "mp_rank_00_model_states.pt",
                       weights_only=False)["ds_config"]
    ours = json.loads((ROOT / "ds_config_zero2.json").read_text())
    for key in ("zero_optimization", "data_types"):
        assert saved[key] == ours[key], key
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
