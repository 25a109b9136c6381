"""What the test files share: the course's paths, running the script as a user does, and the
checks of a finished run. (Fixtures live in tests/conftest.py.)

The environment is the course kernel's: the root conftest.py has put it into `os.environ`, with
the venv's `bin` first on PATH, so `python`, `torchrun` and `deepspeed` are the course's.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SCRIPT = ROOT / "code" / "pretrain.py"
LAUNCHER = ROOT / "code" / "pretrain.sh"
# every chapter and solution notebook, as a fresh clone has them
NOTEBOOKS = sorted(p for p in (ROOT / "chapters").rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)
QWEN_TOKENIZER = ROOT.parent / "shared" / "data" / "qwen2.5-tokenizer"

PYTHON = (sys.executable,)
TORCHRUN = (sys.executable, "-m", "torch.distributed.run")
TIMEOUT = 600  # seconds: the longest script run of the suite takes about a tenth of it


def course_env(env: dict | None = None) -> dict:
    """The tests' environment (the course kernel's) with `env` on top; None removes a variable."""
    merged = {**os.environ, **(env or {})}
    return {name: value for name, value in merged.items() if value is not None}


def script_command(*args, launcher: Sequence[str] = PYTHON, script: Path = SCRIPT) -> list[str]:
    """`python code/pretrain.py ARGS`, or the same under another launcher (torchrun, bash)."""
    return [*map(str, launcher), str(script), *map(str, args)]


def run_script(*args, launcher: Sequence[str] = PYTHON, script: Path = SCRIPT,
               env: dict | None = None, cwd: Path = ROOT,
               timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run the script as a user does, in a process of its own: stdout and stderr as text.

        run_script("--output_dir", out, *SHORT)                        # python code/pretrain.py
        run_script(*args, launcher=[*TORCHRUN, "--nproc_per_node", "2"])
        run_script(*args, launcher=["bash"], script=LAUNCHER)           # bash code/pretrain.sh
    """
    return subprocess.run(script_command(*args, launcher=launcher, script=script), cwd=cwd,
                          env=course_env(env), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def start_script(*args, launcher: Sequence[str] = PYTHON, script: Path = SCRIPT,
                 env: dict | None = None, cwd: Path = ROOT,
                 stdout=subprocess.PIPE) -> subprocess.Popen:
    """`run_script` without waiting, for a test that signals the run: stderr goes to stdout, as
    text (pass `stdout=subprocess.DEVNULL` when nobody reads it, or a full pipe stalls the run)."""
    return subprocess.Popen(script_command(*args, launcher=launcher, script=script), cwd=cwd,
                            env=course_env(env), stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT, text=True)


def signal_once_training(proc: subprocess.Popen, send=None) -> str:
    """Wait for a started run's first logged loss, then SIGTERM it (or call `send()`, which
    signals what it chooses); return the run's whole log once it has closed its output."""
    log = []
    for line in proc.stdout:
        log.append(line)
        if "'loss'" in line:
            break
    (send or (lambda: proc.send_signal(signal.SIGTERM)))()
    log.append(proc.stdout.read())
    return "".join(log)


def train_in_process(*argv) -> dict | None:
    """What `python code/pretrain.py ARGV` does, in this process (no interpreter start)."""
    import pretrain

    return pretrain.train(*pretrain.parse_args([str(a) for a in argv]))


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
