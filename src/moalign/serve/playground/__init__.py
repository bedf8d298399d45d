"""The playground: a web page served by `moalign serve` itself where a user moves one slider per
objective and watches the answer change (streamed from ``/v1/chat/completions``).

`mount_playground(app, svc)` adds:

* ``GET /`` and ``GET /playground``: the page (``index.html``), and its script and style sheet
  under ``/playground/assets/``. Package data: no build step, nothing fetched from elsewhere.
  These paths are open without the API key (`PAGE_PATHS`); the page holds no data, it asks
  for the key and sends it with every API call.
* ``GET /playground/search``: the run's searched weights and Pareto front for the page's plot
  (`moalign.serve.playground.search`).
* ``GET /score`` and ``POST /score`` when the server scores objectives (``--score``), see
  `moalign.serve.scoring`.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from moalign.serve.errors import ApiError
from moalign.serve.playground.search import search_points
from moalign.serve.scoring import Scoring, add_scoring_routes
from moalign.serve.service import Service

ASSETS = {"playground.js": "text/javascript; charset=utf-8",
          "playground.css": "text/css; charset=utf-8"}
PAGE_ROUTES = ("/", "/playground")
PAGE_PATHS = frozenset({*PAGE_ROUTES, *(f"/playground/assets/{name}" for name in ASSETS)})

# The page runs only its own script and talks only to the serving origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def asset_text(name: str) -> str:
    """A shipped file of the page (``index.html``, ``playground.js``, ``playground.css``)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def _page(name: str, media_type: str) -> Response:
    return Response(asset_text(name), media_type=media_type, headers=SECURITY_HEADERS)


def mount_playground(app: FastAPI, svc: Service) -> None:
    """Add the page, its assets, ``/playground/search`` and the scoring routes to `app`."""
    scoring = Scoring.from_specs(getattr(svc.cfg, "score", None))
    if scoring.scorers and getattr(svc.cfg, "warmup", True):
        scoring.score("Hello.", ["Hello, how can I help?"])  # loads what scorers load lazily
    add_scoring_routes(app, scoring)
    app.state.scoring = scoring

    async def page() -> Response:
        return _page("index.html", "text/html; charset=utf-8")

    for path in PAGE_ROUTES:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=path == "/",
                          summary="The playground page (no API key needed to load it)")

    @app.get("/playground/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise ApiError(404, f"no playground asset {name!r}; the page uses "
                                f"{sorted(ASSETS)}", "not_found")
        return _page(name, ASSETS[name])

    @app.get("/playground/search", summary="The run's searched weights and Pareto front")
    async def search() -> dict[str, Any]:
        return await asyncio.to_thread(search_points, svc.cfg.run_dir, svc.objectives)
