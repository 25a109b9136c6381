# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
"""Resume: complete checkpoints only, one decision for all ranks, another world size, SIGTERM, the
position in a stream."""

import dataclasses
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from llm_pretrain.checks import UsageError
from llm_pretrain.prepare import preprocessing_first

__all__ = [
    "CHECKPOINT_RE",
    "OUTPUT_NAMES",
    "is_complete_checkpoint",
    "last_complete_checkpoint",
    "agree_on_checkpoint",
    "choose_checkpoint",
    "run_is_complete",
    "finished_results",
    "check_checkpoint_matches",
    "check_output_dir",
    "saved_world_size",
    "step_size_hint",
    "keep_step_size",
    "convert_to_universal",
    "resume_settings",
    "StopOnSigterm",
    "loader_state_file",
    "StreamPosition",
    "check_stream_checkpoint",
]


# ---- chapters/05_script.ipynb, cell 77 ----
logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# What a run of this script writes into --output_dir, besides checkpoint-N folders.
OUTPUT_NAMES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "training_args.bin",
    "trainer_state.json",
    "train_results.json",
    "eval_results.json",
    "all_results.json",
    "packing_report.json",
    "loss_curve.png",
    "runs",
    "wandb",
}


# ---- chapters/05_script.ipynb, cell 78 ----
def is_complete_checkpoint(path: Path) -> bool:
    """True once the Trainer wrote `trainer_state.json`, the last file of every checkpoint.

    A SIGTERM save marks its folder with `checkpoint-is-incomplete.txt` until it is done.
    """
    if (path / "checkpoint-is-incomplete.txt").exists():
        return False
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return state.get("global_step") == int(CHECKPOINT_RE.match(path.name).group(1))


def last_complete_checkpoint(output_dir: str | Path) -> tuple[Path | None, list[Path]]:
    """The newest complete checkpoint in `output_dir`, and the incomplete ones newer than it."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if CHECKPOINT_RE.match(p.name)]
    folders.sort(key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)), reverse=True)
    skipped = []
    for folder in folders:
        if is_complete_checkpoint(folder):
            return folder, skipped
        skipped.append(folder)
    return None, skipped


# ---- chapters/05_script.ipynb, cell 81 ----
def agree_on_checkpoint(output_dir: str | Path) -> tuple[Path | None, list[Path]]:
    """`last_complete_checkpoint` as rank 0 sees it, the same answer on every rank.

    Each rank looks the chosen folder up in its own `output_dir`; if any rank does not see it
    complete there (output folders that are not shared between nodes), every rank stops.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return last_complete_checkpoint(output_dir)
    choice = [last_complete_checkpoint(output_dir) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(choice, src=0)
    resume, skipped = choice[0]
    if resume is None:
        return None, skipped
    mine = Path(output_dir) / resume.name
    sees = [None] * dist.get_world_size()
    dist.all_gather_object(sees, is_complete_checkpoint(mine))
    blind = [rank for rank, seen in enumerate(sees) if not seen]
    if blind:
        raise UsageError(
            f"--output_dir: rank 0 resumes from {resume.name}, which rank(s) "
            f"{', '.join(map(str, blind))} cannot see in {output_dir}; the output "
            f"folder must be on a filesystem shared by every node"
        )
    return mine, skipped


def choose_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint this run resumes from (None: a new run), the same on every rank; newer
    incomplete checkpoints are skipped with a warning."""
    resume, skipped = agree_on_checkpoint(output_dir)
    for folder in skipped:
        logger.warning("skipping incomplete checkpoint %s (a save was interrupted)", folder)
    if resume:
        logger.info("resuming from %s", resume)
    return resume


# ---- chapters/05_script.ipynb, cell 84 ----
def run_is_complete(output_dir: str | Path, checkpoint: Path, training_args) -> bool:
    """True when `checkpoint` is the last step of this run and its final results were saved."""
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    planned = training_args.max_steps if training_args.max_steps > 0 else state["max_steps"]
    return state["global_step"] >= planned and (Path(output_dir) / "all_results.json").exists()


def finished_results(output_dir: str | Path, checkpoint: Path, training_args) -> dict | None:
    """The saved metrics of a run that already finished at `checkpoint`; None if it has not."""
    if not run_is_complete(output_dir, checkpoint, training_args):
        return None
    logger.info("the run finished at %s: nothing to do", checkpoint.name)
    return json.loads((Path(output_dir) / "all_results.json").read_text(encoding="utf-8"))


def check_checkpoint_matches(checkpoint: Path, model) -> None:
    """Refuse to resume a checkpoint of another model shape into this one."""
    saved = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    keys = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")
    different = [key for key in keys if saved.get(key) != getattr(model.config, key)]
    if different:
        raise UsageError(
            f"--output_dir: {checkpoint} holds another model ({', '.join(different)} "
            f"differ); choose a new --output_dir"
        )


# ---- chapters/05_script.ipynb, cell 86 ----
def check_output_dir(output_dir: str | Path) -> None:
    """Refuse an output folder that holds anything this script did not write."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir: {path} exists and is not a directory")
    foreign = sorted(
        p.name
        for p in path.glob("*")
        if p.name not in OUTPUT_NAMES and not CHECKPOINT_RE.match(p.name)
    )
    if foreign:
        raise UsageError(
            f"--output_dir: {path} holds files this script did not write "
            f"({', '.join(foreign[:3])}); choose an empty or new directory"
        )


# ---- chapters/05_script.ipynb, cell 107 ----
def saved_world_size(checkpoint: Path) -> int:
    """Processes that saved `checkpoint`: the Trainer writes one `rng_state_<rank>.pth` per rank,
    a lone `rng_state.pth` for one process."""
    return len(list(checkpoint.glob("rng_state_*.pth"))) or 1


def step_size_hint(per_step: int, world_size: int, micro_batch: int) -> str:
    """How to continue a run of `per_step` sequences per optimizer step on `world_size` ranks."""
    micro = [m for m in range(1, per_step + 1) if per_step % (world_size * m) == 0]
    if micro:
        return f"choose --per_device_train_batch_size {' or '.join(map(str, micro[:3]))}"
    divisors = [w for w in range(1, per_step + 1) if per_step % w == 0]
    near = [
        max(w for w in divisors if w < world_size),  # 1 divides anything
        *[w for w in divisors if w > world_size][:1],
    ]
    unit = world_size * micro_batch
    return (
        f"no micro-batch splits {per_step} sequences over {world_size} processes: resume "
        f"on {' or '.join(map(str, near))} processes, or start a new --output_dir with a "
        f"global batch {world_size} processes can make, e.g. {unit} or {2 * unit} sequences "
        f"at micro-batch {micro_batch}"
    )


def keep_step_size(checkpoint: Path, training_args, block_size: int):
    """`training_args` with the checkpoint's sequences per optimizer step on this world size.

    The Trainer finds its place in the data by counting optimizer steps, so a step must hold as
    many sequences as before: another world size or micro-batch is made up by gradient
    accumulation. The checkpoint's step size is its tokens seen / (steps x block size).
    """
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    args = training_args
    per_micro_step = args.world_size * args.per_device_train_batch_size
    per_step, rest = divmod(
        state.get("num_input_tokens_seen", 0), state["global_step"] * block_size
    )
    saved_world = saved_world_size(checkpoint)
    if per_step == per_micro_step * args.gradient_accumulation_steps:
        if saved_world != args.world_size:
            logger.info(
                "%s was saved by %d process(es), this run has %d; %d sequences per "
                "optimizer step as before",
                checkpoint.name,
                saved_world,
                args.world_size,
                per_step,
            )
        return args
    if rest or per_step % per_micro_step or per_step == 0:
        raise UsageError(
            f"--output_dir: {checkpoint.name} trained {per_step} sequences per "
            f"optimizer step, which {args.world_size} process(es) x micro-batch "
            f"{args.per_device_train_batch_size} cannot make; "
            f"{step_size_hint(per_step, args.world_size, args.per_device_train_batch_size)}"
        )
    logger.info(
        "%s was saved by %d process(es), this run has %d: gradient accumulation %d -> %d "
        "keeps %d sequences per optimizer step",
        checkpoint.name,
        saved_world,
        args.world_size,
        args.gradient_accumulation_steps,
        per_step // per_micro_step,
        per_step,
    )
    return dataclasses.replace(args, gradient_accumulation_steps=per_step // per_micro_step)


def convert_to_universal(checkpoint: Path) -> None:
    """Add DeepSpeed's universal form to a ZeRO checkpoint: it loads at any world size.

    DeepSpeed writes `latest_universal` last; without it, a conversion cut short is redone.
    """
    if (checkpoint / "latest_universal").exists():
        return
    tag = (checkpoint / "latest").read_text().strip()
    shutil.rmtree(checkpoint / f"{tag}_universal", ignore_errors=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepspeed.checkpoint.ds_to_universal",
            "--input_folder",
            str(checkpoint / tag),
            "--output_folder",
            str(checkpoint / f"{tag}_universal"),
            "--inject_missing_state",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:  # the converter's own words, not just its exit status
        raise RuntimeError(
            f"DeepSpeed's universal conversion of {checkpoint.name} failed:\n{done.stderr[-3000:]}"
        )


def resume_settings(checkpoint: Path, model, data_args, training_args):
    """Check that `checkpoint` fits this run; return the training arguments that resume it: the
    same sequences per optimizer step at any world size, and DeepSpeed's universal checkpoint
    when the world size changed."""
    check_checkpoint_matches(checkpoint, model)
    if data_args.streaming:
        check_stream_checkpoint(checkpoint, training_args.world_size)
    training_args = keep_step_size(checkpoint, training_args, data_args.block_size)
    if training_args.deepspeed and saved_world_size(checkpoint) != training_args.world_size:
        with preprocessing_first(training_args, local=False):  # a long timeout, as for data
            convert_to_universal(checkpoint)  # rank 0 converts, the others find it done
        # library internals (transformers 5.24): the Trainer hands this config to DeepSpeed
        training_args.hf_deepspeed_config.config.setdefault("checkpoint", {})["load_universal"] = (
            True
        )
    return training_args


# ---- chapters/05_script.ipynb, cell 111 ----
class StopOnSigterm(TrainerCallback):
    """On SIGTERM, every rank stops after the same optimizer step, with one checkpoint saved.

    A scheduler signals each rank at its own moment; the flag is all-reduced (max) after every
    step, so the ranks agree on the step at which they save and stop.
    """

    def __init__(self):
        self.received, self.stopped, self.previous = False, False, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.previous = signal.signal(signal.SIGTERM, self.handle)

    def handle(self, signum, frame):
        self.received = True

    def on_step_end(self, args, state, control, **kwargs):
        flag = torch.tensor(float(self.received), device=args.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            self.stopped = control.should_training_stop = True
            control.should_save = args.save_strategy != "no"  # a run that saves nothing stops

    def on_train_end(self, args, state, control, **kwargs):
        signal.signal(signal.SIGTERM, self.previous)


# ---- chapters/05_script.ipynb, cell 116 ----
def loader_state_file(checkpoint: Path, rank: int) -> Path:
    """Where `StreamPosition` keeps rank `rank`'s data-loader state in `checkpoint`."""
    return checkpoint / f"dataloader_rank{rank}.pt"


class StreamPosition(TrainerCallback):
    """Streams: save each rank's data-loader state into every checkpoint, load it on resume."""

    def __init__(self, resume: Path | None):
        self.resume = resume

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        if self.resume is not None:
            saved = torch.load(loader_state_file(self.resume, args.process_index))
            train_dataloader.load_state_dict(saved)
            logger.info("the stream continues where %s left it", self.resume.name)

    def on_step_end(self, args, state, control, train_dataloader=None, **kwargs):
        if control.should_save:  # before the Trainer's save, whose last file marks it complete
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(train_dataloader.state_dict(), loader_state_file(folder, args.process_index))


def check_stream_checkpoint(checkpoint: Path, world_size: int) -> None:
    """A stream resumes only with the data-loader state of each of this run's ranks."""
    saved = len(list(checkpoint.glob("dataloader_rank*.pt")))
    if saved != world_size:
        raise UsageError(
            f"--streaming: {checkpoint.name} holds the stream position of {saved} "
            f"process(es) and this run has {world_size}; resume with the same "
            f"number of processes, or start a new --output_dir"
        )
