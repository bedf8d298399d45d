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
from collections.abc import Sequence

import typer

from moalign import __version__
from moalign.core.errors import USER_ERRORS

app = typer.Typer(
    name="moalign",
    help="Multi-objective RL fine-tuning of language models (EMORL experts + aggregation, MOLMA).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"moalign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version,
                                       is_eager=True, help="Print the version and exit.")
          ) -> None:
    """Multi-objective RL fine-tuning of language models (EMORL experts + aggregation, MOLMA)."""


COMMAND_MODULES = (
    "moalign.commands.scoring",
    "moalign.commands.training",
    "moalign.commands.ensemble",
    "moalign.commands.molma",
    "moalign.commands.study",
    "moalign.commands.serve",
)


def load_commands(modules: Sequence[str] = COMMAND_MODULES) -> None:
    """Import the command modules (each registers its commands on `app`). A module that fails to
    import is an error naming it: a missing command must never vanish from `moalign --help`."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ImportError(f"moalign command module {name!r} failed to import: "
                              f"{type(e).__name__}: {e}") from e


load_commands()


def main() -> None:
    """Entry point: user errors (bad config, missing file) print one clear line, exit code 2."""
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
