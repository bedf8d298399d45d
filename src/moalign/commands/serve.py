"""`moalign serve RUN_DIR`: an HTTP server answering generation requests with per-request objective
weights (EMORL §4.1). The server lives in `moalign.scale.serve`; heavy imports stay in the body.

Options follow the convention of `moalign.commands`: a `ServeConfig` from ``--config``, the flags
below as shortcuts, then ``key=value`` overrides (``moalign serve RUN max_queue=64``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from moalign.cli import app
from moalign.commands import CONFIG_HELP, command_config


@app.command("serve")
def serve_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory holding ensemble.json."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of "
                                                 "ServeConfig."),
    host: str | None = typer.Option(None, help="Interface to bind (127.0.0.1; 0.0.0.0 exposes "
                                    "it)."),
    port: int | None = typer.Option(None, help="TCP port (8000)."),
    max_batch: int | None = typer.Option(None, help="Sequences decoded together at most (8)."),
    max_wait_ms: float | None = typer.Option(None, help="How long to wait for more requests to "
                                             "batch (10)."),
    max_new_tokens_limit: int | None = typer.Option(None, help="Largest max_new_tokens a "
                                                    "request may ask for (256)."),
    default_max_new_tokens: int | None = typer.Option(None, help="max_new_tokens when a request "
                                                      "gives none (64)."),
    max_prompt_chars: int | None = typer.Option(None, help="Longest prompt accepted, in "
                                                "characters (4000)."),
    max_prompts_per_request: int | None = typer.Option(None, help="Most prompts in one request "
                                                       "(16)."),
    max_queue: int | None = typer.Option(None, help="Queued requests beyond this get HTTP 503 "
                                         "(1024)."),
    device: str | None = typer.Option(None, help="cpu, cuda, cuda:1, or auto (default)."),
    threads: int | None = typer.Option(None, help="torch CPU threads for generation (0: "
                                       "torch's default)."),
    log_level: str | None = typer.Option(None, help="uvicorn log level (info)."),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
) -> None:
    """Serve the ensemble over HTTP: POST /generate with {"prompt": ..., "weights": {...}}."""
    import uvicorn

    from moalign.scale.serve import ServeConfig, create_app

    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    shortcuts = {k: v for k, v in locals().items() if k in fields}  # each flag names its field
    cfg = command_config(ServeConfig, config, overrides, **{**shortcuts, "run_dir": run_dir})
    typer.echo(f"loading the ensemble of {cfg.run_dir} ...")
    web = create_app(**dataclasses.asdict(cfg))
    objectives = ", ".join(web.state.service.objectives)
    typer.echo(f"serving objectives [{objectives}] on http://{cfg.host}:{cfg.port} "
               f"(docs: http://{cfg.host}:{cfg.port}/docs)")
    uvicorn.run(web, host=cfg.host, port=cfg.port, log_level=cfg.log_level)
