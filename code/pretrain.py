# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
r"""Pretrain a causal language model (Qwen2 architecture) with the Hugging Face Trainer.

    python code/pretrain.py                        # tiny Qwen2, bundled corpus, CPU, ~1 minute
    torchrun --nproc_per_node 2 code/pretrain.py   # the same job in 2 processes (DDP)
    bash code/pretrain.sh                          # DeepSpeed ZeRO-2 on every visible GPU
    bash code/pretrain.sh --config_name Qwen/Qwen2.5-1.5B --tokenizer_name Qwen/Qwen2.5-1.5B \
        --train_files data/*.jsonl --block_size 2048 --bf16 true --per_device_train_batch_size 4 \
        --learning_rate 3e-4 --adam_beta2 0.95 --output_dir runs/qwen2.5-1.5b
    sbatch code/pretrain.slurm ...                 # several nodes: one pretrain.sh per node

Every `TrainingArguments` flag works too. Read top to bottom: arguments -> checks -> model ->
data -> Trainer -> train -> evaluate -> save; the rare cases live in the `llm_pretrain` package
beside this file, one module per concern. Rerunning a command resumes from the newest complete
checkpoint; SIGTERM saves one checkpoint and exits with status 143. Generated from chapter 05.
"""

import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import Trainer, TrainingArguments, set_seed

from llm_pretrain.checks import ArgumentParser, UsageError, check_model_fits, expand_train_files
from llm_pretrain.data import lm_collator, load_train_data, save_prepared
from llm_pretrain.metrics import (
    ThroughputCallback,
    batch_arithmetic,
    bytes_per_token,
    flops_per_token,
    lm_metrics,
    peak_flops,
    plot_loss_curve,
    prepare_tracking,
)
from llm_pretrain.model import load_checked_tokenizer, load_model_and_tokenizer
from llm_pretrain.paths import CORPUS_FILE, TINY_CONFIG_DIR, TOKENIZER_DIR
from llm_pretrain.prepare import StreamTrainer, build_datasets, load_tokenized, preprocessing_first
from llm_pretrain.resume import (
    StopOnSigterm,
    StreamPosition,
    check_output_dir,
    choose_checkpoint,
    finished_results,
    resume_settings,
)


# ---- chapters/05_script.ipynb, cell 5 ----
# --- arguments ------------------------------------------------------------------------------
@dataclass
class ModelArguments:
    """Which model to train and how its weights are held."""

    config_name: str | None = field(
        default=str(TINY_CONFIG_DIR), metadata={"help": "Config (Hub name or folder) to train."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Pretrained weights to continue from (overrides config)."}
    )
    tokenizer_name: str = field(default=str(TOKENIZER_DIR), metadata={"help": "Tokenizer."})
    dtype: str = field(
        default="float32",
        metadata={
            "help": "Weights' dtype (float32 + --bf16 true: mixed precision).",
            "choices": ["float32", "bfloat16", "float16"],
        },
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Run the repo's own code."})
    peak_tflops: float | None = field(
        default=None,
        metadata={"help": "Peak bf16 TFLOP/s of one device for MFU (known GPUs: looked up)."},
    )


# ---- chapters/05_script.ipynb, cell 6 ----
@dataclass
class DataTrainingArguments:
    """Which corpus to read and how to cut it into training blocks."""

    train_files: list[str] = field(
        default_factory=lambda: [str(CORPUS_FILE)],
        metadata={"help": 'JSON-lines files (or globs) with one {"text": ...} per line.'},
    )
    block_size: int = field(default=128, metadata={"help": "Tokens per training sequence."})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes that tokenize and pack (datasets' num_proc)."}
    )
    validation_split_percentage: float = field(
        default=5.0,
        metadata={"help": "Percent of the documents held out for evaluation (0: none)."},
    )
    streaming: bool = field(default=False, metadata={"help": "Read the corpus as a stream."})
    shuffle_buffer: int = field(default=0, metadata={"help": "Streaming: shuffle buffer (0: off)."})
    tokenized_path: str | None = field(
        default=None, metadata={"help": "Packed corpus; a new folder is prepared, then reused."}
    )


# ---- chapters/05_script.ipynb, cell 8 ----
# Defaults of the bundled tiny CPU job; every one can be overridden on the command line.
TRAINING_DEFAULTS = dict(
    output_dir="runs/pretrain-tiny",
    per_device_train_batch_size=16,
    learning_rate=1e-3,
    lr_scheduler_type="cosine",
    warmup_steps=20,
    weight_decay=0.1,
    num_train_epochs=1,
    logging_steps=10,
    eval_strategy="steps",
    eval_steps=50,
    save_steps=50,
    save_total_limit=2,
    report_to="none",
    seed=42,
    disable_tqdm=True,
    log_on_each_node=False,  # several nodes: rank 0 logs, not the first process of every node
    use_cpu=not torch.cuda.is_available(),  # also what makes multi-process CPU runs distributed
    include_num_input_tokens_seen=True,  # = "all": the token count behind tokens/s and MFU
    ddp_find_unused_parameters=False,  # torchrun/DDP: every weight gets a gradient, skip the search
)
# --per_device_eval_batch_size defaults to the training micro-batch (parse_args): evaluation
# holds the fp32 logits of a whole batch, 16 x 2048 x 151,936 x 4 bytes = 20 GB at batch 16.


# ---- chapters/05_script.ipynb, cell 10 ----
# --- arguments, checked -------------------------------------------------------------------
def preparing(data_args) -> bool:
    """True when this run only prepares the data: `--tokenized_path` names a new folder."""
    return bool(data_args.tokenized_path) and not os.path.exists(data_args.tokenized_path)


def check_args(data_args, training_args) -> None:
    """Refuse flags that contradict each other and files that are not there, before any work.

    Expands the `--train_files` globs in place, so every later step sees the same list."""
    if data_args.tokenized_path and data_args.streaming:
        raise UsageError("--tokenized_path holds blocks ready for training: drop --streaming")
    if not data_args.tokenized_path or preparing(data_args):
        data_args.train_files = expand_train_files(data_args.train_files)
    if preparing(data_args) and training_args.world_size > 1:
        raise UsageError(
            f"--tokenized_path {data_args.tokenized_path} does not exist: prepare it "
            f"with one process first (python code/pretrain.py --tokenized_path ...)"
        )
    if preparing(data_args):
        return  # a preparation writes only --tokenized_path
    check_output_dir(training_args.output_dir)
    if data_args.streaming and training_args.max_steps <= 0:
        raise UsageError("--streaming needs --max_steps: a stream has no length to count epochs by")
    if data_args.validation_split_percentage <= 0 and training_args.eval_strategy != "no":
        raise UsageError(
            "--validation_split_percentage 0 leaves nothing to evaluate: add --eval_strategy no"
        )


def parse_args(argv: list[str] | None = None):
    """Model, data and training arguments from the command line, on the tiny-job defaults."""
    parser = ArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    parser.set_defaults(**TRAINING_DEFAULTS)
    try:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except json.JSONDecodeError as err:
        raise UsageError(f"--deepspeed: the config is not valid JSON ({err})") from err
    except (ValueError, OSError) as err:
        raise UsageError(str(err).splitlines()[0]) from err
    given = {arg.split("=")[0] for arg in (sys.argv[1:] if argv is None else argv)}
    if "--per_device_eval_batch_size" not in given:
        training_args.per_device_eval_batch_size = training_args.per_device_train_batch_size
    check_args(data_args, training_args)  # flags that contradict each other: one line, exit 2
    return model_args, data_args, training_args


# ---- chapters/05_script.ipynb, cell 15 ----
logger = logging.getLogger("pretrain")


# --- data -----------------------------------------------------------------------------------
def prepare_data(model_args, data_args, training_args) -> dict:
    """Filter, split, tokenize and pack the corpus once into a new `--tokenized_path`, in one
    process, and train nothing; later runs load the blocks memory-mapped. Returns the report."""
    path = data_args.tokenized_path
    tokenizer = load_checked_tokenizer(model_args)
    raw_ds = load_train_data(data_args.train_files, streaming=False)
    train_ds, eval_ds, report = build_datasets(raw_ds, tokenizer, data_args, training_args.seed)
    del raw_ds  # unmaps the JSON's Arrow cache: the save below holds only the blocks' pages
    save_prepared(path, train_ds, eval_ds, report, num_proc=data_args.preprocessing_num_workers)
    logger.info(f"saved {report['blocks']} training blocks to {path}: train with it as input")
    return report


def load_data(data_args, training_args, tokenizer):
    """Train blocks, eval blocks and the packing report: saved ones, or prepared now."""
    if data_args.tokenized_path:
        return load_tokenized(data_args, tokenizer, need_eval=training_args.eval_strategy != "no")
    with preprocessing_first(training_args):  # the first process of each node fills the cache
        raw_ds = load_train_data(data_args.train_files, data_args.streaming)
        return build_datasets(raw_ds, tokenizer, data_args, training_args.seed)


# ---- chapters/05_script.ipynb, cell 18 ----
# --- derived settings and library internals -------------------------------------------------
def derive_settings(data_args, training_args) -> None:
    """The training settings that follow from the others, set in this one place."""
    training_args.enable_jit_checkpoint = False  # StopOnSigterm handles SIGTERM at any world size
    if data_args.streaming:
        training_args.accelerator_config.dispatch_batches = False  # each rank reads its own part
        training_args.ignore_data_skip = True  # StreamPosition restores the position instead
        # torchdata 0.11's StatefulDataLoader calls torch.set_vital, deprecated in torch 2.13
        warnings.filterwarnings("ignore", message="'set_vital' is deprecated")


def adjust_trainer(trainer: Trainer, throughput: ThroughputCallback, streaming: bool) -> None:
    """The two places where the script reaches past the Trainer's public arguments (checked
    against transformers 5.24 and accelerate 1.15)."""
    # Callbacks passed as Trainer(callbacks=...) run after its TensorBoard and W&B callbacks,
    # which would write each log line before tokens/s is added: run the throughput one first.
    trainer.callback_handler.callbacks.insert(0, throughput)
    # torchdata's StatefulDataLoader (exact stream resume): accelerate has the switch, the
    # Trainer's AcceleratorConfig has no field for it.
    trainer.accelerator.dataloader_config.use_stateful_dataloader = streaming


# ---- chapters/05_script.ipynb, cell 19 ----
# --- train ----------------------------------------------------------------------------------
def train(model_args, data_args, training_args) -> dict | None:
    """Build model and data, train, evaluate and save; return all metrics (None when a SIGTERM
    stopped the run early, after its checkpoint)."""
    derive_settings(data_args, training_args)
    resume = choose_checkpoint(training_args.output_dir)  # newest complete one; rank 0 decides
    set_seed(training_args.seed)  # the same initial weights in every process and every run
    model, tokenizer = load_model_and_tokenizer(model_args)
    check_model_fits(model, tokenizer, data_args.block_size)
    if resume:
        if metrics := finished_results(training_args.output_dir, resume, training_args):
            return metrics  # the run had already finished: nothing to do
        training_args = resume_settings(resume, model, data_args, training_args)
    train_ds, eval_ds, report = load_data(data_args, training_args, tokenizer)
    logger.info(f"model: {model.num_parameters() / 1e6:.2f}M parameters in {model.dtype}")
    logger.info(f"packing: {report}")
    n_train = None if data_args.streaming else train_ds.num_rows  # a stream has no length
    logger.info(batch_arithmetic(training_args, n_train, data_args.block_size))
    prepare_tracking(training_args)

    stopper = StopOnSigterm()  # a SIGTERM ends the run with one checkpoint all ranks agree on
    callbacks = [stopper, StreamPosition(resume)] if data_args.streaming else [stopper]
    trainer_class = StreamTrainer if data_args.streaming else Trainer  # streams: no short step
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=lm_collator,
        callbacks=callbacks,
    )
    peak = peak_flops(training_args.device, model_args.peak_tflops)  # None on a CPU: no MFU
    throughput = ThroughputCallback(flops_per_token(model, data_args.block_size), peak)
    adjust_trainer(trainer, throughput, data_args.streaming)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if stopper.stopped and trainer.state.global_step < trainer.state.max_steps:
        trainer.accelerator.wait_for_everyone()
        saved = training_args.save_strategy != "no"  # --save_strategy no: nothing to continue from
        then = (
            "rerun the same command to continue" if saved else "no checkpoint (--save_strategy no)"
        )
        logger.warning(f"stopped at step {trainer.state.global_step} on SIGTERM; {then}")
        return None
    title = Path(model_args.model_name_or_path or model_args.config_name).name
    return save_results(trainer, result, eval_ds, tokenizer, report, title)


# ---- chapters/05_script.ipynb, cell 21 ----
# --- evaluate and save ----------------------------------------------------------------------
def save_results(trainer: Trainer, result, eval_ds, tokenizer, report: dict, title: str) -> dict:
    """Save model, tokenizer, metrics, packing report and loss curve; return all metrics."""
    trainer.save_model()
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    metrics = dict(result.metrics)
    if eval_ds is not None:
        eval_metrics = trainer.evaluate()
        extra = lm_metrics(eval_metrics["eval_loss"], bytes_per_token(eval_ds, tokenizer))
        eval_metrics.update(
            eval_perplexity=extra["perplexity"], eval_bits_per_byte=extra["bits_per_byte"]
        )
        trainer.save_metrics("eval", eval_metrics)  # also merged into all_results.json
        metrics.update(eval_metrics)
    if trainer.is_world_process_zero():
        out = Path(trainer.args.output_dir)
        (out / "packing_report.json").write_text(json.dumps(report, indent=2) + "\n")
        plot_loss_curve(trainer.state.log_history, out / "loss_curve.png", title=title)
        evaluated = f"eval loss {metrics['eval_loss']:.4f}; " if "eval_loss" in metrics else ""
        logger.info(f"{evaluated}model, metrics and loss_curve.png are in {out}")
    return metrics


# ---- chapters/05_script.ipynb, cell 23 ----
# --- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Prepare the data or train; bad input ends in one `pretrain.py: error: ...` line and exit
    status 2, a SIGTERM in exit status 143 once its checkpoint is saved."""
    try:
        model_args, data_args, training_args = parse_args(argv)
        level = logging.INFO if training_args.should_log else logging.ERROR  # rank 0 only
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level)
        if preparing(data_args):
            metrics = prepare_data(model_args, data_args, training_args)  # the packing report
        else:
            metrics = train(model_args, data_args, training_args)
    except UsageError as err:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"pretrain.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # rank 0 writes the results last: all leave the group together
        dist.destroy_process_group()  # else gloo's threads can abort the exit (pytorch#190489)
    if metrics is None:
        sys.exit(143)


if __name__ == "__main__":
    main()
