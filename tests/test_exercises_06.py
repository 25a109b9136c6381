"""What chapter 06's exercises add to tests/test_exercises.py: their hints and their FLOP count."""

import pytest
import torch
from test_exercises import one_line
from transformers import AutoConfig, AutoModelForCausalLM

from llm_pretrain import exercises
from llm_pretrain.exercises import grade
from llm_pretrain.metrics import PEAK_BF16_TFLOPS, flops_per_token
from llm_pretrain.paths import QWEN_CONFIG_DIR, TINY_CONFIG_DIR


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
