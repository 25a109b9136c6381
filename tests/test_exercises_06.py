"""Chapter 06's exercises check themselves, as tests/test_exercises.py checks chapters 00-05."""

import pytest
import torch
from test_exercises import NOT_ANSWERED, one_line, reveals
from transformers import AutoConfig, AutoModelForCausalLM

from llm_pretrain import exercises
from llm_pretrain.exercises import EXERCISES, grade
from llm_pretrain.metrics import PEAK_BF16_TFLOPS, flops_per_token
from llm_pretrain.paths import QWEN_CONFIG_DIR, TINY_CONFIG_DIR

# The reference answers, worked out independently of the checkers.
REFERENCE = {
    "06.1": 20.80,  # 1e12 / (16 x 0.40 x 989e12 / 11.376e9) s = 1.797e6 s
    "06.2": "ACE",
}
ALSO_RIGHT = {
    "06.1": [20.8, 21, 20.3, 1.797e6 / 86_400],  # 20.3: 1.5e9 for the parameter count
    "06.2": ["eca", "A, C, E", ["E", "C", "A"], "a c e"],
}
WRONG = {
    "06.1": [18.87, 16.94, 8.32, 332.8, 499.3, 1.797e6, 0],  # T=2048, 6N only, MFU 1, 1 GPU, h, s
    "06.2": ["AC", "AE", "CE", "ACDE", "ABCE", "B", "D", "ABCDE"],
}
WRONG_TYPE = {
    "06.1": ["20.8", [1, 2], True, {"value": 1}, float("nan")],
    "06.2": [2, 1.0, ["A", 1], "", "AZ"],
}


def test_chapter_06_registers_exactly_its_exercises():
    assert {key for key in EXERCISES if key.startswith("06.")} == set(REFERENCE)


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
def test_reference_answer_passes(exercise_id, capsys):
    for answer in [REFERENCE[exercise_id], *ALSO_RIGHT[exercise_id]]:
        assert grade(exercise_id, answer) is True, answer
        assert one_line(capsys).startswith("✅ 正确"), answer


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
def test_wrong_answers_fail_without_revealing(exercise_id, capsys):
    for answer in WRONG[exercise_id]:
        assert grade(exercise_id, answer) is False, answer
        line = one_line(capsys)
        assert line.startswith("❌ 再想想：") and len(line) > len("❌ 再想想：") + 4, line
        assert not reveals(line, REFERENCE[exercise_id]), line


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
def test_no_answer_and_wrong_types(exercise_id, capsys):
    assert grade(exercise_id, None) is False
    assert one_line(capsys) == NOT_ANSWERED
    for answer in WRONG_TYPE[exercise_id]:
        assert grade(exercise_id, answer) is False, answer
        line = one_line(capsys)
        assert line.startswith("❌ 再想想："), line
        assert not reveals(line, REFERENCE[exercise_id]), line


def test_traps_name_the_mistake(capsys):
    for answer, word in [(18.87, "4096"), (16.94, "注意力"), (8.32, "MFU"), (332.8, "16"),
                         (499.3, "小时")]:
        assert grade("06.1", answer) is False
        assert word in one_line(capsys), answer


@pytest.mark.parametrize("config_dir", [QWEN_CONFIG_DIR, TINY_CONFIG_DIR], ids=["qwen", "tiny"])
@pytest.mark.parametrize("seq_len", [128, 2048, 4096])
def test_flops_per_token_matches_the_package(config_dir, seq_len):
    """The checker counts FLOPs from config.json alone, as metrics.flops_per_token does on a model
    (chapter 05; chapter 06 prints 10.32 GFLOPs per token for Qwen2.5-1.5B at T = 2048)."""
    config = AutoConfig.from_pretrained(config_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    expected = flops_per_token(model, seq_len)
    assert exercises.train_flops_per_token(config.to_dict(), seq_len) == expected
    if config_dir == QWEN_CONFIG_DIR and seq_len == 2048:
        assert round(expected / 1e9, 2) == 10.32
    untied = AutoConfig.from_pretrained(config_dir, tie_word_embeddings=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(untied)
    assert exercises.train_flops_per_token(untied.to_dict(), seq_len) == flops_per_token(
        model, seq_len)


def test_the_peak_is_the_package_table_s():
    assert exercises.H200_PEAK_FLOPS == PEAK_BF16_TFLOPS["H200"] * 1e12
