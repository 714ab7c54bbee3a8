"""One epoch of training, model-agnostic past the forward/logits pair.

In `all_positions` mode a sample is a window with a target at every position from its `loss_from` on; in
`prefix` mode (the notebook's) it is one prefix with one target, the item after it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext

import torch

from core.batching import batch_indices, gather_windows, length_batches
from core.errors import RecsysError
from core.losses import TargetLoss, full_softmax
from core.tensors import TrainingSamples


class DivergedError(RecsysError):
    """The training loss became NaN or infinite."""


def autocast_for(device: torch.device, bf16: bool):
    """bf16 autocast on a GPU when asked for; a no-op context on the CPU."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, samples: TrainingSamples, *,
                batch_size: int, generator: torch.Generator, bf16: bool = False, by_length: bool = False,
                after_step: Callable[[], None] | None = None, loss: TargetLoss = full_softmax) -> float:
    """One pass over the samples in shuffled batches; returns the mean training loss per target (`loss`,
    core.losses: the full softmax's cross-entropy unless a sampled loss is given).

    by_length: batches of samples of similar length (core.batching.length_batches). Their number of targets
    then varies with the length, so each batch's summed loss is divided by the epoch's mean targets per
    batch rather than by its own count: every target weighs the same in every batch, as in random batches."""
    model.train()
    items = samples.items
    total_loss = torch.zeros((), device=items.device)
    total_targets = 0
    if by_length:
        batches = length_batches(samples.lengths.cpu(), batch_size, generator)
        targets_per_batch = samples.n_targets() / len(samples) * batch_size
    else:
        batches = batch_indices(len(samples), batch_size, generator)
    for batch in batches:
        batch = batch.to(items.device)
        start, length = samples.starts[batch], samples.lengths[batch]
        width = int(length.max())
        inputs = gather_windows(items, start, length, width)  # (B, T)
        with autocast_for(items.device, bf16):
            hidden = model(inputs)  # (B, T, H)
            if samples.mode == "all_positions":
                targets = gather_windows(items, start + 1, length, width)  # (B, T), 0 past the end
                valid = targets > 0
                if samples.loss_from is not None:
                    valid &= torch.arange(width, device=items.device) >= samples.loss_from[batch, None]
                targets = targets[valid]  # (M,)
                summed = loss(model, hidden[valid], inputs[valid], targets)
            else:
                at_end = torch.arange(len(batch), device=items.device), length - 1
                targets = items[start + length]
                summed = loss(model, hidden[at_end], inputs[at_end], targets)
        batch_mean = summed.detach() / len(targets)
        objective = summed / targets_per_batch if by_length else summed / len(targets)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        total_loss += batch_mean.detach() * len(targets)
        total_targets += len(targets)
    mean_loss = total_loss.item() / max(total_targets, 1)
    if not math.isfinite(mean_loss):
        raise DivergedError(f"training loss became {mean_loss}; try a lower lr")
    return mean_loss
