"""The `moalign` command line: a thin typer app; each command lives in `moalign.commands.*`.

Command modules import their heavy dependencies (torch, transformers) inside the command body so
that `moalign --help` stays instant.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

import typer

app = typer.Typer(
    name="moalign",
    help="Multi-objective RL fine-tuning of language models (EMORL experts + aggregation, MOLMA).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

COMMAND_MODULES = (
    "moalign.commands.scoring",
    "moalign.commands.training",
    "moalign.commands.ensemble",
    "moalign.commands.molma",
    "moalign.commands.study",
    "moalign.commands.serve",
)

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as _e:
        if _e.name != _name:
            raise


def main() -> None:
    """Entry point: user errors (bad config, missing file) print one clear line, exit code 2."""
    from moalign.core.errors import USER_ERRORS

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    # PEFT 0.21 still reads `is_gradient_checkpointing`, deprecated by transformers 5: not ours
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                            category=FutureWarning)
    try:
        app()
    except USER_ERRORS as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
