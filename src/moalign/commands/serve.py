"""`moalign serve RUN_DIR`: an HTTP server answering generation requests with per-request objective
weights (EMORL §4.1). The server lives in `moalign.scale.serve`; heavy imports stay in the body."""

from __future__ import annotations

from pathlib import Path

import typer

from moalign.cli import app


@app.command("serve")
def serve_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory holding ensemble.json."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 exposes it)."),
    port: int = typer.Option(8000, help="TCP port."),
    max_batch: int = typer.Option(8, help="Sequences decoded together at most."),
    max_wait_ms: float = typer.Option(10.0, help="How long to wait for more requests to batch."),
    max_new_tokens_limit: int = typer.Option(256, help="Largest max_new_tokens a request may "
                                                       "ask for."),
    default_max_new_tokens: int = typer.Option(64, help="max_new_tokens when a request gives "
                                                        "none."),
    max_prompt_chars: int = typer.Option(4000, help="Longest prompt accepted (characters)."),
    max_prompts_per_request: int = typer.Option(16, help="Most prompts in one request."),
    max_queue: int = typer.Option(1024, help="Queued requests beyond this get HTTP 503."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:1, or auto."),
    threads: int = typer.Option(0, help="torch CPU threads for generation (0: default)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve the ensemble over HTTP: POST /generate with {"prompt": ..., "weights": {...}}."""
    import uvicorn

    from moalign.scale.serve import ServeConfig, create_app

    ServeConfig(run_dir=str(run_dir), host=host, port=port, max_batch=max_batch,
                max_wait_ms=max_wait_ms, max_new_tokens_limit=max_new_tokens_limit,
                default_max_new_tokens=default_max_new_tokens,
                max_prompt_chars=max_prompt_chars,
                max_prompts_per_request=max_prompts_per_request, max_queue=max_queue,
                device=device, threads=threads).validate()
    typer.echo(f"loading the ensemble of {run_dir} ...")
    web = create_app(run_dir, max_batch, max_wait_ms, max_new_tokens_limit, max_prompt_chars,
                     default_max_new_tokens=default_max_new_tokens,
                     max_prompts_per_request=max_prompts_per_request, max_queue=max_queue,
                     device=device, threads=threads)
    objectives = ", ".join(web.state.service.objectives)
    typer.echo(f"serving objectives [{objectives}] on http://{host}:{port} "
               f"(docs: http://{host}:{port}/docs)")
    uvicorn.run(web, host=host, port=port, log_level=log_level)
