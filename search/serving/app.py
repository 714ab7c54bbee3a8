"""The HTTP side of `python -m search.serve`: a Ray Serve deployment that loads the model once per replica,
checks each request (search.serving.queries) and scores concurrent requests in one forward pass (@serve.batch).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from core.artifact import SavedModel, load_model
from core.recommend import recommend_batch
from search.serving.queries import (
    Query,
    RequestError,
    query_from_body,
    query_from_params,
)
from search.storage import is_uri, local_copy

log = logging.getLogger("ray.serve")
MAX_BODY_BYTES = 1 << 20
MAX_BATCH_SIZE, BATCH_WAIT_MS = 32, 2.0  # defaults of --max-batch-size and --batch-wait-ms


def model_card(folder: str | Path, saved: SavedModel) -> dict[str, Any]:
    """What GET /model answers: the search, the config, the data fingerprint and the test metrics."""
    folder = Path(folder)
    folder = folder.parent if folder.is_file() else folder
    metrics_path = folder / "metrics.json"
    return {
        "search": saved.info.get("experiment", folder.parent.name),
        "model": str(folder.resolve()),
        "config": saved.config.to_dict(),
        "data_fingerprint": saved.info.get("data_fingerprint"),
        "items": len(saved.catalog),
        "customers": len(saved.user_ids),
        "test_metrics": json.loads(metrics_path.read_text()) if metrics_path.is_file() else None,
    }


async def read_body(request: Request) -> bytes:
    """The request's body, refused (413) beyond MAX_BODY_BYTES; by its declared length when it has one."""
    too_large = RequestError(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise too_large
    return body


@serve.deployment(name="recommender", max_ongoing_requests=64)
class Recommender:
    """One replica: the model loaded once, requests checked one by one and scored in batches."""

    def __init__(self, folder: str, threads: int = 1, max_batch_size: int = MAX_BATCH_SIZE,
                 batch_wait_s: float = BATCH_WAIT_MS / 1000):
        torch.set_num_threads(threads)
        local = local_copy(folder)  # a model at a URI is fetched by each replica, on its own node
        self.saved = load_model(local)
        self.card = model_card(local, self.saved)
        if is_uri(folder):
            self.card["model"] = folder
        catalog = self.saved.catalog
        self.item_numbers = catalog["item_number"].tolist()  # JSON numbers for integer ids, strings for text ids
        self.descriptions = list(zip(catalog["description_1"], catalog["description_2"]))
        self.rank.set_max_batch_size(max_batch_size)
        self.rank.set_batch_wait_timeout_s(batch_wait_s)

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            route = (request.method, request.url.path.rstrip("/") or "/")
            if route == ("GET", "/recommend"):
                return JSONResponse(await self.rank(query_from_params(request.query_params, self.saved)))
            if route == ("POST", "/recommend"):
                return JSONResponse(await self.rank(query_from_body(await read_body(request), self.saved)))
            if route == ("GET", "/healthz"):
                return JSONResponse({"status": "ok", "search": self.card["search"]})
            if route == ("GET", "/model"):
                return JSONResponse(self.card)
            known = {"/recommend", "/healthz", "/model"}
            raise RequestError(405 if route[1] in known else 404,
                               f"no route {route[0]} {route[1]}; the routes are GET /recommend?customer=ID&k=5, "
                               "POST /recommend {\"items\": [...], \"k\": 5}, GET /healthz, GET /model")
        except RequestError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        except Exception:  # a bug, not a bad request: log it here, answer without the traceback
            log.exception("request %s %s failed", request.method, request.url.path)
            return JSONResponse({"error": "internal error (logged by the server)"}, status_code=500)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_MS / 1000)
    async def rank(self, queries: list[Query]) -> list[dict[str, Any]]:
        """Score a batch of checked queries in one forward pass."""
        tops = recommend_batch(self.saved.model, [q.history for q in queries], [q.k for q in queries],
                               self.saved.config.max_seq_len, [q.exclude_seen for q in queries])
        return [self.answer(query, ids, scores) for query, (ids, scores) in zip(queries, tops)]

    def answer(self, query: Query, ids: Any, scores: Any) -> dict[str, Any]:
        rows = []
        for rank, (item_id, score) in enumerate(zip(ids.tolist(), scores.tolist()), start=1):
            description_1, description_2 = self.descriptions[item_id - 1]
            rows.append({"rank": rank, "item_number": self.item_numbers[item_id - 1],
                         "description_1": description_1, "description_2": description_2, "score": score})
        return {"customer": query.customer, "k": query.k, "include_seen": not query.exclude_seen,
                "recommendations": rows}


def build_app(folder: str | Path, replicas: int = 1, threads: int = 1, max_batch_size: int = MAX_BATCH_SIZE,
              batch_wait_ms: float = BATCH_WAIT_MS) -> serve.Application:
    """The Serve application: `replicas` copies of the model, each with `threads` torch threads and CPUs."""
    deployment = Recommender.options(num_replicas=replicas, ray_actor_options={"num_cpus": threads},
                                     max_ongoing_requests=max(64, 2 * max_batch_size))
    location = str(folder) if is_uri(folder) else str(Path(folder).resolve())
    return deployment.bind(location, threads, max_batch_size, batch_wait_ms / 1000)
