# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
"""Where the course's files are: the package lives in `code/llm_pretrain/` of the course folder."""

from pathlib import Path

import llm_pretrain

__all__ = [
    "ROOT",
    "ASSETS_DIR",
    "QWEN_CONFIG_DIR",
    "TINY_CONFIG_DIR",
    "TOKENIZER_DIR",
    "CORPUS_FILE",
]


# ---- chapters/01_config.ipynb, cell 3 ----
ROOT = Path(llm_pretrain.__file__).resolve().parents[2]  # code/llm_pretrain/__init__.py -> course
ASSETS_DIR = ROOT / "assets"
QWEN_CONFIG_DIR = ASSETS_DIR / "qwen2.5-1.5b"  # the published Qwen2.5-1.5B config.json
TINY_CONFIG_DIR = ASSETS_DIR / "tiny-qwen2"  # same architecture, 4.2M parameters
TOKENIZER_DIR = ASSETS_DIR / "tokenizer"  # byte-level BPE, 4,096 tokens
CORPUS_FILE = ASSETS_DIR / "corpus" / "seq_monkey_sample.jsonl"
