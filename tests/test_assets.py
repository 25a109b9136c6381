"""The bundled offline assets: real configs, a deterministic corpus, a reproducible tokenizer."""

import json
import math
import subprocess
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from helpers import ASSETS, ROOT

CORPUS = ASSETS / "corpus" / "seq_monkey_sample.jsonl"


def meta_model(path):
    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        return config, AutoModelForCausalLM.from_config(config)


def test_qwen25_config_has_the_published_parameter_count():
    config, model = meta_model(ASSETS / "qwen2.5-1.5b")
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    assert config.hidden_size == 1536 and config.intermediate_size == 8960
    assert config.num_hidden_layers == 28
    assert (config.num_attention_heads, config.num_key_value_heads) == (12, 2)
    assert config.vocab_size == 151_936 and config.tie_word_embeddings
    assert total == 1_543_714_304
    assert total - embedding == 1_310_340_608


def test_tiny_config_is_the_same_architecture_at_a_few_million_parameters(tiny_tokenizer):
    config, model = meta_model(ASSETS / "tiny-qwen2")
    qwen = AutoConfig.from_pretrained(ASSETS / "qwen2.5-1.5b")
    assert config.architectures == qwen.architectures == ["Qwen2ForCausalLM"]
    assert config.model_type == qwen.model_type
    assert config.vocab_size == len(tiny_tokenizer)
    assert config.eos_token_id == tiny_tokenizer.eos_token_id
    assert 3e6 <= sum(p.numel() for p in model.parameters()) <= 10e6


def test_corpus_is_seq_monkey_jsonl_mostly_chinese_and_over_1mb():
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line) for line in lines]
    assert all(list(d) == ["text"] and isinstance(d["text"], str) and d["text"] for d in docs)
    assert CORPUS.stat().st_size >= 1_000_000
    text = "".join(d["text"] for d in docs)
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    assert cjk > 2 * latin > 0
    chinese_docs = sum(any("\u4e00" <= ch <= "\u9fff" for ch in d["text"]) for d in docs)
    assert 0.6 < chinese_docs / len(docs) < 0.95
    lengths = sorted(len(d["text"]) for d in docs)
    assert lengths[0] < 100 and lengths[-1] > 10 * lengths[len(lengths) // 2]  # varied lengths


def test_corpus_loads_with_datasets_json():
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(CORPUS), split="train")
    assert ds.num_rows == 4000 and ds.column_names == ["text"]


def run_tool(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args],
                          capture_output=True, text=True)


def test_corpus_generator_reproduces_the_committed_file():
    result = run_tool("make_corpus.py", "--check")
    assert result.returncode == 0, result.stderr


def test_tokenizer_trainer_reproduces_the_committed_files_byte_for_byte():
    result = run_tool("train_tokenizer.py", "--check")
    assert result.returncode == 0, result.stderr


def test_tokenizer_is_qwen_style(tiny_tokenizer):
    tok = tiny_tokenizer
    assert len(tok) == 4096
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert tok.convert_tokens_to_ids(specials) == [4093, 4094, 4095]
    assert tok.bos_token is None
    text = "小明有12个苹果。Hello, world!\n"
    ids = tok(text)["input_ids"]
    assert tok.eos_token_id not in ids  # no EOS is added by default, as in Qwen2.5
    assert tok.decode(ids) == text
    assert tok.decode(tok("🦙 ünïcödé")["input_ids"]) == "🦙 ünïcödé"  # byte level: nothing unknown
    text = "九九八十一。" * 20
    chars_per_token = len(text) / len(tok(text)["input_ids"])
    assert chars_per_token > 1.5  # merges learned from the corpus


def test_untrained_tiny_model_loss_is_about_ln_vocab(tiny_tokenizer):
    config = AutoConfig.from_pretrained(ASSETS / "tiny-qwen2")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    batch = tiny_tokenizer(["一天早上，小明约小红一起去公园散步。"], return_tensors="pt")
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss.item()
    assert abs(loss - math.log(config.vocab_size)) < 0.5
