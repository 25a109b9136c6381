"""The course's data path with the real Qwen2.5 tokenizer (skipped when ../shared/data lacks it)."""

from transformers import AutoConfig

from helpers import ASSETS


def test_real_qwen_tokenizer_ids_and_defaults(qwen_tokenizer):
    tok = qwen_tokenizer
    assert len(tok) == 151_665
    assert tok.eos_token_id == 151_643 == tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok("Hello, world")["input_ids"] == [9707, 11, 1879]
    assert tok("你好")["input_ids"] == [108386]
    assert tok.eos_token_id not in tok("一段文本")["input_ids"]  # no EOS added by default


def test_a_word_the_course_tokenizer_never_saw(qwen_tokenizer, tiny_tokenizer):
    """Exercise 00.2: byte by byte for the course tokenizer, 3 tokens for Qwen2.5's."""
    word = "模型预训练"
    assert len(tiny_tokenizer(word)["input_ids"]) == len(word.encode()) == 15
    assert len(qwen_tokenizer(word)["input_ids"]) == 3


def test_model_vocab_is_larger_than_the_tokenizer(qwen_tokenizer):
    config = AutoConfig.from_pretrained(ASSETS / "qwen2.5-1.5b")
    assert config.vocab_size == 151_936 > len(qwen_tokenizer)
    assert config.eos_token_id == qwen_tokenizer.eos_token_id
