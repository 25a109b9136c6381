"""Bad input: one `pretrain.py: error: ...` line, exit status 2, nothing on disk touched."""

import json
import re
import sys

import nbformat
import pytest
from transformers import TrainingArguments

import pretrain
from helpers import ASSETS, LAUNCHER, ROOT, SCRIPT, run_script
from llm_pretrain.checks import ArgumentParser
from llm_pretrain.data import keep_text_records

CORPUS = ASSETS / "corpus" / "seq_monkey_sample.jsonl"
# flags of the launchers and tools that appear on the same command lines
OTHER_FLAGS = {"--nproc_per_node", "--master_port", "--num_gpus", "--include", "--hostfile",
               "--check", "--local-dir", "--logdir", "--shutdown-timeout",
               "--requeue", "--signal", "--mem", "--exclusive", "--cpus-per-task",  # sbatch
               "--label", "--kill-on-bad-exit"}  # srun


def write(path, data: bytes | str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def tiny_config(tmp_path, **changes) -> str:
    """The tiny config with some fields changed, as a folder for --config_name."""
    config = json.loads((ASSETS / "tiny-qwen2" / "config.json").read_text())
    config.update(changes)
    write(tmp_path / "changed_config" / "config.json", json.dumps(config))
    return str(tmp_path / "changed_config")


def tiny_config_with_vocab(tmp_path, vocab_size: int) -> str:
    return tiny_config(tmp_path, vocab_size=vocab_size, bos_token_id=0, eos_token_id=0,
                       pad_token_id=0)


def corpus(tmp, name, data):
    return ["--train_files", write(tmp / name, data)]


# case: (arguments made in a temporary folder, what the error line must say)
BAD_INPUTS = {
    "missing file": (lambda t: ["--train_files", str(t / "nope.jsonl")],
                     "nope.jsonl does not exist"),
    "empty file": (lambda t: corpus(t, "empty.jsonl", b""), "empty.jsonl is empty"),
    "directory": (lambda t: ["--train_files", str(t)], "is a directory"),
    "glob matching nothing": (lambda t: ["--train_files", str(t / "*.jsonl")], "matches no file"),
    "malformed JSON line": (lambda t: corpus(t, "bad.jsonl", '{"text": "a"}\n{"text": oops}\n'),
                            "bad.jsonl:2: not valid JSON"),
    "no text field": (lambda t: corpus(t, "notext.jsonl", '{"content": "a"}\n'),
                      'notext.jsonl:1: a record without a "text" field'),
    "undecodable bytes": (lambda t: corpus(t, "l1.jsonl", '{"text": "café"}\n'.encode("latin-1")),
                          "l1.jsonl:1: not valid UTF-8"),
    "corpus smaller than a block": (
        lambda t: corpus(t, "small.jsonl", '{"text": "你好"}\n')
        + ["--validation_split_percentage", "0", "--eval_strategy", "no"],
        "too little text for blocks of 128: 0 training and 0 eval block(s)"),
    "no document held out": (lambda t: corpus(t, "one.jsonl", '{"text": "你好"}\n'),
                             "--validation_split_percentage 5.0: no document of this corpus"),
    "block size too long for the model": (lambda t: ["--block_size", "4096"],
                                          "exceeds the model's max_position_embeddings (2048)"),
    "tokenizer larger than the model vocab": (
        lambda t: ["--config_name", tiny_config_with_vocab(t, 1000)],
        "the tokenizer has 4,096 tokens but the model's vocab_size is 1,000"),
    "config whose layer_types disagree with its layers": (
        lambda t: ["--config_name", tiny_config(t, num_hidden_layers=5)],
        "`num_hidden_layers` (5) must be equal to the number of `layer_types` (4)"),
    "config with pad_token_id outside the vocab": (
        lambda t: ["--config_name", tiny_config(t, pad_token_id=5000)],
        "Padding_idx must be within num_embeddings"),
    "malformed deepspeed config": (lambda t: ["--deepspeed", write(t / "ds.json", "{not json")],
                                   "--deepspeed: the config is not valid JSON"),
    "missing deepspeed config": (lambda t: ["--deepspeed", str(t / "none.json")],
                                 "existing deepspeed config"),
    "unknown flag": (lambda t: ["--evaluation_strategy", "steps"], "--evaluation_strategy"),
    "bad dtype": (lambda t: ["--dtype", "int8"], "invalid choice: 'int8'"),
    "hub name while offline": (lambda t: ["--config_name", "Qwen/Qwen2.5-1.5B"],
                               "--config_name: cannot load 'Qwen/Qwen2.5-1.5B'"),
    "streaming without max_steps": (lambda t: ["--streaming", "true"],
                                    "--streaming needs --max_steps"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_leaves_files_alone(case, tmp_path, capsys):
    make_args, expected = BAD_INPUTS[case]
    out = tmp_path / "out"
    write(out / "all_results.json", "results of an earlier run")
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--output_dir", str(out), *make_args(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("pretrain.py: error: ") and expected in err, err
    assert (out / "all_results.json").read_text() == "results of an earlier run"
    assert sorted(p.name for p in out.iterdir()) == ["all_results.json"]


def test_output_dir_with_foreign_files_is_refused(tmp_path, capsys):
    write(tmp_path / "notes.txt", "mine")
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--output_dir", str(tmp_path), "--max_steps", "1"])
    assert exit_info.value.code == 2
    assert "holds files this script did not write (notes.txt)" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_error_from_a_real_process_has_no_traceback(tmp_path):
    done = run_script("--train_files", tmp_path / "missing.jsonl")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"pretrain.py: error: --train_files: {tmp_path / 'missing.jsonl'} does not exist")


def test_bad_process_count_for_the_launcher_is_one_line(tmp_path):
    out = tmp_path / "run"
    env = {"NUM_PROCS": "two", "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    done = run_script("--output_dir", out, launcher=["bash"], script=LAUNCHER, env=env)
    assert done.returncode == 2 and not out.exists()
    assert done.stderr.strip() == (
        "pretrain.sh: error: NUM_PROCS (or NUM_GPUS) must be a positive integer, got 'two'")


def test_null_and_empty_texts_are_skipped_and_counted(tmp_path):
    from datasets import load_dataset

    lines = [json.dumps({"text": t}) for t in [None, "", 7, "好"]]
    lines.append(CORPUS.read_text().splitlines()[0])
    raw = load_dataset("json", data_files=write(tmp_path / "mixed.jsonl", "\n".join(lines)),
                       split="train")
    assert keep_text_records(raw).num_rows == 2


def documented_commands() -> str:
    """Every command line that shows a user how to call the script, and the notebooks' calls."""
    texts = [LAUNCHER.read_text(), (ROOT / "README.md").read_text(),
             (ROOT / "assets" / "README.md").read_text(), ast_docstring(SCRIPT.read_text())]
    calls = []
    for nb_path in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            if cell.cell_type == "markdown":
                texts.append(cell.source)
            elif re.search(r'pretrain\.(py|sh)"|run_script\(', cell.source):
                calls.append(cell.source)  # a cell that launches the script: all its flags
    for text in texts:
        lines = text.replace("\\\n", " ").splitlines()
        calls += [line for line in lines if re.search(r"pretrain\.(py|sh)", line)]
    return "\n".join(calls)


def ast_docstring(source: str) -> str:
    import ast

    return ast.get_docstring(ast.parse(source))


def test_every_documented_flag_is_accepted_by_the_parser():
    parser = ArgumentParser((pretrain.ModelArguments, pretrain.DataTrainingArguments,
                             TrainingArguments))
    known = {opt for action in parser._actions for opt in action.option_strings}
    used = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]", documented_commands()))
    unknown = sorted(used - known - OTHER_FLAGS)
    assert not unknown, f"documented but not accepted: {unknown}"
    assert {"--config_name", "--model_name_or_path", "--tokenizer_name", "--train_files",
            "--block_size", "--preprocessing_num_workers", "--trust_remote_code"} <= known


def test_docstring_example_parses():
    docstring = ast_docstring(SCRIPT.read_text())
    example = docstring.split("pretrain.sh --config_name")[-1]
    argv = ["--config_name", *example.split("\n    sbatch")[0].replace("\\\n", " ").split()]
    argv[argv.index("--train_files") + 1] = str(CORPUS)
    model_args, data_args, training_args = pretrain.parse_args(argv)
    assert model_args.config_name == "Qwen/Qwen2.5-1.5B" and data_args.block_size == 2048
    assert training_args.bf16 and training_args.per_device_train_batch_size == 4


def test_eval_batch_follows_the_training_micro_batch_unless_given():
    # at vocab 151,936 an eval batch of 16 next to a training micro-batch of 4 held 4x the logits
    _, _, args = pretrain.parse_args(["--per_device_train_batch_size", "4"])
    assert args.per_device_eval_batch_size == 4
    _, _, args = pretrain.parse_args(["--per_device_train_batch_size=4",
                                      "--per_device_eval_batch_size=2"])
    assert args.per_device_eval_batch_size == 2
    assert args.ddp_find_unused_parameters is False  # what torchrun (DDP) runs need
