"""Train the bundled byte-level BPE tokenizer on the bundled corpus, Qwen2.5 style.

The pipeline copies Qwen2's design: NFC normalization, Qwen2's pre-tokenizer regex followed by
byte-level mapping (so every UTF-8 byte sequence is representable and nothing is ever unknown),
BPE merges, and the special tokens appended after the learned vocabulary, as in Qwen2.5
(`<|endoftext|>` is eos and pad; no BOS/EOS is added by the tokenizer itself).

    python tools/train_tokenizer.py            # writes assets/tokenizer/
    python tools/train_tokenizer.py --check    # exit 1 if the committed files differ
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "assets" / "corpus" / "seq_monkey_sample.jsonl"
OUT = ROOT / "assets" / "tokenizer"
VOCAB_SIZE = 4096  # learned tokens + special tokens
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    with CORPUS.open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )


def saved_files(tokenizer: PreTrainedTokenizerFast) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files differ")
    args = parser.parse_args()
    files = saved_files(train())
    if args.check:
        stale = [name for name, data in files.items()
                 if not (OUT / name).exists() or (OUT / name).read_bytes() != data]
        if stale:
            sys.exit(f"{OUT} is stale ({', '.join(stale)}): run python tools/train_tokenizer.py")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (OUT / name).write_bytes(data)
    print(f"wrote {OUT}: {', '.join(files)} ({VOCAB_SIZE} tokens)")


if __name__ == "__main__":
    main()
