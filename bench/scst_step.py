"""Benchmark: one SCST step of moalign versus TRL's GRPOTrainer configured the same way.

Both sides: the same model (float32, CPU by default), the same prompts in the same chat format,
`--batch` prompts per step × `--n` samples per prompt (TRL: num_generations), `--new-tokens`
new tokens (TRL: max_completion_length; EOS is suppressed on both sides with min_new_tokens so
every sample decodes the full length), temperature 1, top_k 0, top_p 1, the same LoRA (r=8,
alpha=32, dropout 0.05, all linear layers but the head), AdamW at the same lr, grad clip 2,
no KL/reference model (TRL beta=0), base dropout disabled, no gradient checkpointing (TRL turns
it on by default), one optimizer step per batch, and the same python reward function.
A step = sample + score + log-probs + backward + optimizer step.

Order A-B-A: half the moalign steps, the TRL steps, the other half of the moalign steps (so a
machine whose load drifts does not favour one side); each side's first `--warmup` steps are not
timed. Prints the median step time of each and the ratio moalign/TRL (target ≤ 1.0).

    .venv/bin/pip install "trl==1.16.0"           # not a moalign dependency
    .venv/bin/python bench/scst_step.py            # bundled SmolLM2-135M-Instruct
    .venv/bin/python bench/scst_step.py --tiny     # random tiny Llama: a quick run

On a loaded CPU machine pass `--threads 1` (and OMP_NUM_THREADS=1): oversubscribed OpenMP
threads slowed every step ~10× in our runs. Note: TRL 1.16 always scores log-probs with its
chunked fused-LM-head kernel (`fused_lm_head=True`), which dominates its CPU step time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

TOPICS = ("my job", "my sister", "sleep", "exams", "moving house", "my dog", "money", "friends",
          "my health", "my partner", "school", "my parents")
SYSTEM = "You are a helpful assistant."


def prompts(k: int) -> list[str]:
    return [f"I keep worrying about {TOPICS[i % len(TOPICS)]} and I can't stop thinking about it."
            for i in range(k)]


def you_fraction(texts: list[str]) -> list[float]:
    """The shared reward: share of response words equal to 'you'."""
    out = []
    for t in texts:
        words = [w.strip(".,!?;:'\"").lower() for w in t.split()]
        out.append(sum(w == "you" for w in words) / max(len(words), 1))
    return out


def moalign_reward(prompts: list[str], responses: list[str]) -> list[float]:
    return you_fraction(responses)


def trl_reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return you_fraction(texts)


def model_folder(tiny: bool, tmp: Path) -> str:
    """A local model folder both frameworks load the same way."""
    from moalign.models import SMOLLM2, resolve_model, tiny_causal_lm

    if not tiny:
        return resolve_model(SMOLLM2)
    policy = tiny_causal_lm(0)
    policy.model.save_pretrained(tmp / "tiny")
    policy.tokenizer.save_pretrained(tmp / "tiny")
    return str(tmp / "tiny")


def moalign_steps(path: str, args: argparse.Namespace, out: Path, n_steps: int,
                  state: dict[str, Any]) -> list[float]:
    """Run `n_steps` SCST steps (building the run once); return each step's seconds."""
    from moalign.emorl.scst import SCSTConfig, build_run, scst_step

    if "run" not in state:
        cfg = SCSTConfig(policy=path, objectives=[{"kind": "python", "function": moalign_reward,
                                                   "name": "you"}],
                         data=[*prompts(64)], val_data=prompts(2), batch_size=args.batch,
                         n_samples=args.n, max_new_tokens=args.new_tokens, lr=args.lr,
                         out_dir=str(out / "moalign"), device="cpu", progress=False)
        run = build_run(cfg)
        run.policy.model.generation_config.min_new_tokens = args.new_tokens  # no early EOS
        state["run"] = run
    run = state["run"]
    times = []
    for _ in range(n_steps):
        batch = [run.train_prompts[i] for i in run.cursor.take(args.batch)]
        t0 = time.perf_counter()
        scst_step(run, batch)
        times.append(time.perf_counter() - t0)
    return times


def trl_steps(path: str, args: argparse.Namespace, out: Path) -> list[float]:
    """Train TRL's GRPOTrainer for warmup + steps; return each optimizer step's seconds."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from moalign.models import lora_config

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            self.times.append(time.perf_counter() - self.t0)

    total = args.warmup + args.steps
    data = Dataset.from_dict({"prompt": [[{"role": "system", "content": SYSTEM},
                                          {"role": "user", "content": p}]
                                         for p in prompts(args.batch * total)]})
    config = GRPOConfig(
        output_dir=str(out / "trl"), per_device_train_batch_size=args.batch * args.n,
        num_generations=args.n, max_completion_length=args.new_tokens, learning_rate=args.lr,
        max_grad_norm=2.0, beta=0.0, temperature=1.0, top_k=0, top_p=1.0,
        loss_type="dr_grpo", scale_rewards="none", disable_dropout=True, max_steps=total,
        gradient_accumulation_steps=1, num_iterations=1, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, weight_decay=0.0, lr_scheduler_type="constant",
        warmup_steps=0, shuffle_dataset=False, seed=0, dataloader_num_workers=0,
        gradient_checkpointing=False,  # TRL's default is True; moalign does not recompute
        generation_kwargs={"min_new_tokens": args.new_tokens},
    )
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=trl_reward, args=config,
                          train_dataset=data, processing_class=tok,
                          peft_config=lora_config(8, 32, 0.05), callbacks=[timer])
    trainer.train()
    return timer.times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="random tiny Llama instead of SmolLM2")
    ap.add_argument("--batch", type=int, default=4, help="prompts per step")
    ap.add_argument("--n", type=int, default=3, help="samples per prompt (num_generations)")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per side")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = model_folder(args.tiny, tmp)
        state: dict[str, Any] = {}
        first = args.steps // 2
        ours = moalign_steps(path, args, tmp, args.warmup + first, state)[args.warmup:]
        theirs = trl_steps(path, args, tmp)[args.warmup:]
        ours += moalign_steps(path, args, tmp, args.steps - first, state)
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"model={'tiny-llama' if args.tiny else 'smollm2-135m-instruct'} batch={args.batch} "
          f"n={args.n} new_tokens={args.new_tokens} steps={args.steps} warmup={args.warmup} "
          f"threads={torch.get_num_threads()}")
    print(f"moalign step seconds: {[round(t, 3) for t in ours]}")
    print(f"TRL GRPO step seconds: {[round(t, 3) for t in theirs]}")
    print(f"median step: moalign {m_ours:.3f} s, TRL {m_theirs:.3f} s, "
          f"ratio moalign/TRL = {m_ours / m_theirs:.3f} (target <= 1.0)")


if __name__ == "__main__":
    main()
