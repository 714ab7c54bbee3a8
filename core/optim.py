"""The optimiser: Adam; with a sampled loss, fused Adam, or lazy Adam for the item tables (item_updates).

A sampled loss touches the embeddings and output weights of a few thousand items per batch. Dense Adam still
updates every row of both tables at every step, which at 30K items was two thirds of a sampled step's time
(torch.profiler, issue 21). With row-sparse gradients (LSTMRecommender.sparse_item_grads), torch's SparseAdam
updates only the rows a batch touched, with their own moment estimates (the "lazy Adam" of large-vocabulary
models); the other weights, the output bias included, keep plain Adam with weight decay. SparseAdam has no
weight decay: the item tables then go without it.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from core.losses import resolve_item_updates

log = logging.getLogger(__name__)


def fused_adam(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """torch's fused Adam kernel where this torch has it for these tensors (CPU from torch 2.4), else plain Adam.
    At Beauty's 12K items it made a sampled step 1.3-1.5x faster (every item row updated in one pass); the full
    softmax's step did not measurably gain, so the full loss keeps plain Adam and its published figures."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


class LazyItemAdam:
    """Adam for the dense weights and SparseAdam for the row-sparse item tables, stepped together."""

    def __init__(self, dense: list[torch.nn.Parameter], sparse: list[torch.nn.Parameter], lr: float,
                 weight_decay: float):
        self.optimizers = [fused_adam(dense, lr, weight_decay), torch.optim.SparseAdam(sparse, lr=lr)]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {"lazy_item_adam": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for optimizer, saved in zip(self.optimizers, state["lazy_item_adam"]):
            optimizer.load_state_dict(saved)


def lazy_item_updates(item_updates: str, n_items: int, checkpoint: Mapping[str, Any] | None = None) -> bool:
    """Whether a sampled loss's item tables get lazy Adam: item_updates (auto by catalogue size), except that a
    resumed run keeps the optimiser its checkpoint holds (runs saved before item_updates existed were lazy)."""
    lazy = resolve_item_updates(item_updates, n_items) == "lazy"
    if checkpoint is not None:
        lazy = "lazy_item_adam" in checkpoint["optimizer"]
    log.info("item tables: %s Adam", "lazy" if lazy else "dense")
    return lazy


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, sparse_items: bool,
                    fused: bool = False) -> torch.optim.Optimizer | LazyItemAdam:
    """Adam over every weight (fused: torch's fused kernel where available); sparse_items: lazy Adam for the
    item embedding and output weights (sampled losses)."""
    if not sparse_items:
        if fused:
            return fused_adam(list(model.parameters()), lr, weight_decay)
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.sparse_item_grads(True)
    sparse = [model.embedding.weight, model.output.weight]
    dense = [p for p in model.parameters() if all(p is not q for q in sparse)]
    return LazyItemAdam(dense, sparse, lr, weight_decay)
