"""One epoch of training and a full-ranking evaluation; model-agnostic past the forward/logits pair.

Samples are (start, length) pairs into the flat item tensor (see core.data). In `all_positions` mode a
sample is a window with a target at every position; in `prefix` mode (the notebook's) it is one
prefix with one target, the item after it.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from core.batching import batch_indices, concat_ranges, gather_windows
from core.errors import RecsysError
from core.metrics import metric_sums, target_ranks

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (B, T) items, (B,) lengths -> (B, N + 1)


class DivergedError(RecsysError):
    """The training loss became NaN or infinite."""


def autocast_for(device: torch.device, bf16: bool):
    """bf16 autocast on a GPU when asked for; a no-op context on the CPU."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, items: torch.Tensor,
                starts: torch.Tensor, lengths: torch.Tensor, *, mode: str, batch_size: int,
                generator: torch.Generator, bf16: bool = False, loss_from: torch.Tensor | None = None) -> float:
    """One pass over the samples in shuffled batches; returns the mean cross-entropy per target.

    In all_positions mode, `loss_from` (per window) marks the first position with a loss; the ones
    before are context only (see core.data.training_windows)."""
    model.train()
    total_loss = torch.zeros((), device=items.device)
    total_targets = 0
    for batch in batch_indices(len(starts), batch_size, generator):
        batch = batch.to(items.device)
        start, length = starts[batch], lengths[batch]
        width = int(length.max())
        inputs = gather_windows(items, start, length, width)  # (B, T)
        with autocast_for(items.device, bf16):
            hidden = model(inputs)  # (B, T, H)
            if mode == "all_positions":
                targets = gather_windows(items, start + 1, length, width)  # (B, T), 0 past the end
                valid = targets > 0
                if loss_from is not None:
                    valid &= torch.arange(width, device=items.device) >= loss_from[batch, None]
                logits, targets = model.logits(hidden[valid]), targets[valid]  # (M, N + 1), (M,)
            else:
                last = hidden[torch.arange(len(batch), device=items.device), length - 1]  # (B, H)
                logits, targets = model.logits(last), items[start + length]
        loss = F.cross_entropy(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach() * len(targets)
        total_targets += len(targets)
    mean_loss = total_loss.item() / max(total_targets, 1)
    if not math.isfinite(mean_loss):
        raise DivergedError(f"training loss became {mean_loss}; try a lower lr")
    return mean_loss


def model_scorer(model: torch.nn.Module, bf16: bool = False) -> Scorer:
    """Scores of the model (put in eval mode) after reading each (right-padded) history."""
    model.eval()

    def score(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with autocast_for(inputs.device, bf16):
            hidden = model(inputs)
            last = hidden[torch.arange(len(inputs), device=inputs.device), lengths - 1]  # (B, H)
            return model.logits(last).float()
    return score


@torch.no_grad()
def evaluate(scorer: Scorer, items: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor,
             history_first: torch.Tensor, *, ks: tuple[int, ...], exclude_seen: bool, batch_size: int,
             with_loss: bool = False) -> dict[str, float]:
    """Mean HR/MRR/NDCG at every K (and cross-entropy if asked) over targets items[start + length].

    Every item is a candidate except padding and, with exclude_seen, the items in the customer's whole
    history before the target (items[history_first:start + length]), not only the model's window.
    """
    sums: dict[str, torch.Tensor] = defaultdict(float)
    for batch in batch_indices(len(starts), batch_size):
        batch = batch.to(items.device)
        start, length = starts[batch], lengths[batch]
        target_pos = start + length
        targets = items[target_pos]
        scores = scorer(gather_windows(items, start, length, int(length.max())), length)  # (B, N + 1)
        if with_loss:
            sums["loss"] += F.cross_entropy(scores, targets, reduction="sum")
        scores[:, 0] = float("-inf")
        if exclude_seen:
            first = history_first[batch]
            rows, index = concat_ranges(first, target_pos - first)
            scores[rows, items[index]] = float("-inf")
        for name, value in metric_sums(target_ranks(scores, targets), ks).items():
            sums[name] += value
    n = max(len(starts), 1)
    return {name: float(value) / n for name, value in sums.items()}
