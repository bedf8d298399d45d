"""Train one SCST expert under `accelerate launch` (DDP or FSDP).

    accelerate launch --config_file configs/accelerate/ddp.yaml scripts/train_expert_accelerate.py \
        --objective reflection --out-dir runs/experts/reflection max_steps=200 batch_size=16
    ACCELERATE_USE_CPU=true accelerate launch --config_file configs/accelerate/ddp.yaml \
        --num_processes 2 scripts/train_expert_accelerate.py --config scst.yaml --objective empathy

`--config` is an SCST YAML (`moalign.emorl.scst.SCSTConfig`), trailing `key=value` pairs
override it. `batch_size` is the global prompt batch (split between processes); the main process
writes the run directory, other ranks write scratch folders under `<out_dir>/.ranks/`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--objective", help="objective to train the expert for (name or kind:value)")
    p.add_argument("--config", help="SCST config YAML")
    p.add_argument("--policy", help="base policy: bundled id, local folder or HF id")
    p.add_argument("--out-dir", help="run directory (default: the config's out_dir)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the SCST config")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace):  # -> SCSTConfig
    """The `moalign train-expert` convention: --config YAML, the flags, then key=value."""
    from moalign.commands import command_config
    from moalign.emorl.scst import SCSTConfig

    return command_config(SCSTConfig, args.config, args.overrides,
                          objectives=[args.objective] if args.objective else None,
                          policy=args.policy, out_dir=args.out_dir, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from moalign.core.errors import USER_ERRORS
    from moalign.emorl.scst import train_scst
    from moalign.scale import accelerate_ddp as acc

    args = parse_args(argv)
    try:
        cfg = acc.process_config(build_config(args), args.resume)
        summary = train_scst(cfg, resume=args.resume)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    acc.wait_for_everyone()
    if acc.is_main_process():
        print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
