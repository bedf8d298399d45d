"""`moalign serve RUN_DIR`: an HTTP server answering generation requests with per-request objective
weights (EMORL §4.1), natively (`POST /generate`) and OpenAI-compatible (`/v1/...`). The server
lives in `moalign.serve`; heavy imports stay in the body.

Options follow the convention of `moalign.commands`: a `ServeConfig` from ``--config``, the flags
below as shortcuts, then ``key=value`` overrides (``moalign serve RUN max_queue=64``)."""

from __future__ import annotations

import dataclasses

import typer

from moalign.cli import app
from moalign.commands import ConfigOption, EnsembleArgument, command_config, shortcut


@app.command("serve")
def serve_cmd(
    run_dir: EnsembleArgument,
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of "
                                                 "ServeConfig."),
    host: str | None = shortcut(help="Interface to bind (127.0.0.1; 0.0.0.0 exposes it)."),
    port: int | None = shortcut(help="TCP port (8000)."),
    max_batch: int | None = shortcut(help="Sequences decoded together at most (8)."),
    max_wait_ms: float | None = shortcut(help="How long to wait for more requests to batch (10)."),
    max_new_tokens_limit: int | None = shortcut(help="Largest max_new_tokens a request may ask for "
                                                "(256)."),
    default_max_new_tokens: int | None = shortcut(help="max_new_tokens when a request gives none "
                                                  "(64)."),
    context_tokens: int | None = shortcut(help="Prompt + max_new_tokens limit in tokens (0: the "
                                          "model's context)."),
    max_body_bytes: int | None = shortcut(help="Larger request bodies get HTTP 413 (1048576)."),
    max_prompts_per_request: int | None = shortcut(help="Most prompts in one request (16)."),
    max_queue: int | None = shortcut(help="Queued requests beyond this get HTTP 503 (1024)."),
    device: str | None = shortcut(help="cpu, cuda, cuda:1, or auto (default)."),
    threads: int | None = shortcut(help="torch CPU threads for generation (0: torch's default)."),
    api_key: str | None = shortcut(help="Require 'Authorization: Bearer KEY' on every route but "
                                   "/health and the docs (default: the MOALIGN_API_KEY environment "
                                   "variable; none: open)."),
    warmup: bool | None = shortcut("--warmup/--no-warmup", help="One tiny generation before "
                                   "accepting requests (on)."),
    score: str | None = shortcut(help="Objectives that score each answer in the playground and on "
                                 "POST /score, e.g. reflection,empathy,fluency."),
    log_level: str | None = shortcut(help="uvicorn log level (info)."),
    config: ConfigOption = None,
) -> None:
    """Serve the ensemble over HTTP: POST /generate with {"prompt": ..., "weights": {...}}, and
    the OpenAI-compatible /v1/models, /v1/completions and /v1/chat/completions."""
    from moalign.serve.config import ServeConfig
    from moalign.serve.startup import check_adapters, read_manifest

    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    shortcuts = {k: v for k, v in locals().items() if k in fields}  # each flag names its field
    cfg = command_config(ServeConfig, config, overrides, **{**shortcuts, "run_dir": run_dir})
    check_adapters(read_manifest(cfg.run_dir), cfg.run_dir)  # a bad manifest: one line, at once
    import uvicorn

    from moalign.serve import create_app

    typer.echo(f"loading the ensemble of {cfg.run_dir} ...")
    web = create_app(**dataclasses.asdict(cfg))
    svc = web.state.service
    objectives = ", ".join(svc.objectives)
    auth = "API key required" if cfg.resolved_api_key() else "no API key (open)"
    typer.echo(f"serving model {svc.model_name!r}, objectives [{objectives}], on "
               f"http://{cfg.host}:{cfg.port} ({auth}; docs: http://{cfg.host}:{cfg.port}/docs)")
    typer.echo(f"playground: open http://{cfg.host}:{cfg.port}/ in a browser")
    uvicorn.run(web, host=cfg.host, port=cfg.port, log_level=cfg.log_level,
                **cfg.uvicorn_options())
