# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks instead.
"""Tokenizer and model: loaded by name or folder, with the dtype said out loud."""

import logging
from pathlib import Path

import torch
from httpx2 import TransportError
from huggingface_hub import constants, model_info
from huggingface_hub.errors import HfHubHTTPError, StrictDataclassError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from llm_pretrain.checks import UsageError

__all__ = [
    "load_tokenizer",
    "build_model",
    "DTYPES",
    "HUB_TIMEOUT",
    "use_cache_if_hub_is_down",
    "load_checked_tokenizer",
    "load_model_and_tokenizer",
]


# ---- chapters/02_model.ipynb, cell 3 ----
def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False):
    """Load a tokenizer by Hub name or local folder with `AutoTokenizer`."""
    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)


# ---- chapters/02_model.ipynb, cell 10 ----
def build_model(
    config_name: str | Path | None = None,
    model_name_or_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """A causal LM: pretrained weights if `model_name_or_path`, else fresh from `config_name`.

    `dtype` is explicit on purpose: transformers 5 builds in the config's dtype (bf16 for Qwen2.5)
    and loads pretrained weights with `dtype="auto"`; mixed precision wants fp32 master weights.
    """
    if model_name_or_path:
        return AutoModelForCausalLM.from_pretrained(
            model_name_or_path, dtype=dtype, trust_remote_code=trust_remote_code
        )
    config = AutoConfig.from_pretrained(config_name, trust_remote_code=trust_remote_code)
    return AutoModelForCausalLM.from_config(
        config, dtype=dtype, trust_remote_code=trust_remote_code
    )


# ---- chapters/05_script.ipynb, cell 100 ----
logger = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
HUB_TIMEOUT = 5  # seconds the Hub (HF_ENDPOINT) has to answer before only the cache is used


def use_cache_if_hub_is_down(*names: str | None) -> None:
    """If a name is not a local folder and the Hub does not answer within `HUB_TIMEOUT`, use only
    the local cache from now on: huggingface_hub would retry for half a minute to minutes."""
    remote = [name for name in names if name and not Path(name).exists()]
    if not remote or constants.HF_HUB_OFFLINE:
        return
    try:
        model_info(remote[0], timeout=HUB_TIMEOUT)
    except HfHubHTTPError:
        return  # the Hub answered; a wrong or gated name is reported by the loader
    except TransportError as err:  # refused, unreachable, or connected but silent
        logger.warning(
            "the Hub at %s did not answer within %d s (%s): using the local cache only",
            constants.ENDPOINT,
            HUB_TIMEOUT,
            type(err).__name__,
        )
        constants.HF_HUB_OFFLINE = True


def load_checked_tokenizer(model_args):
    """The tokenizer named by the arguments; a name that does not load is a UsageError."""
    use_cache_if_hub_is_down(
        model_args.tokenizer_name, model_args.config_name, model_args.model_name_or_path
    )
    try:
        return load_tokenizer(
            model_args.tokenizer_name, trust_remote_code=model_args.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise UsageError(
            f"--tokenizer_name: cannot load {model_args.tokenizer_name!r} "
            f"({str(err).splitlines()[0]})"
        ) from err


def load_model_and_tokenizer(model_args):
    """The tokenizer and model named by the arguments; a name that does not load is a UsageError."""
    trust = model_args.trust_remote_code
    if trust:
        logger.warning("--trust_remote_code is on: Python code from the model repository will run")
    tokenizer = load_checked_tokenizer(model_args)
    pretrained = model_args.model_name_or_path
    flag, name = (
        ("--model_name_or_path", pretrained)
        if pretrained
        else ("--config_name", model_args.config_name)
    )
    try:
        model = build_model(
            config_name=model_args.config_name,
            model_name_or_path=pretrained,
            dtype=DTYPES[model_args.dtype],
            trust_remote_code=trust,
        )
    except (OSError, ValueError, StrictDataclassError, AssertionError) as err:
        # transformers checks a config with huggingface_hub's strict dataclasses (the reason is on
        # the last line), nn.Embedding asserts that pad_token_id lies inside the vocab
        lines = str(err).strip().splitlines()
        reason = lines[-1].strip() if isinstance(err, StrictDataclassError) else lines[0]
        raise UsageError(f"{flag}: cannot load {name!r} ({reason})") from err
    return model, tokenizer
