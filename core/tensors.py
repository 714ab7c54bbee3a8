"""From a prepared data set to the tensors one training run needs, on its device.

Training samples and evaluation targets are (start, length) index pairs into the flat item tensor (see
core.samples); batches are gathered from them (core.batching).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.data import PreparedData
from core.errors import ConfigError
from core.samples import eval_targets, history_starts, prefix_samples, training_windows


@dataclass(frozen=True)
class TrainingSamples:
    items: torch.Tensor            # (E,) every event's item id
    starts: torch.Tensor           # (S,) where each sample's input begins in `items`
    lengths: torch.Tensor          # (S,) its input length
    loss_from: torch.Tensor | None  # (S,) all_positions: first position with a loss; None: prefix samples
    mode: str                      # all_positions (a target at every position) or prefix (one at the end)

    def __len__(self) -> int:
        return len(self.starts)

    def n_targets(self) -> int:
        """Targets over all samples: one per position from loss_from on (all_positions), or one per prefix."""
        return len(self) if self.loss_from is None else int((self.lengths - self.loss_from).sum())


@dataclass(frozen=True)
class EvalTargets:
    items: torch.Tensor          # (E,) every event's item id
    starts: torch.Tensor         # (T,) where each target's input begins; the target is items[start + length]
    lengths: torch.Tensor        # (T,) its input length (at most max_seq_len)
    history_first: torch.Tensor  # (T,) where the target's customer's whole history begins (for exclude_seen)

    def __len__(self) -> int:
        return len(self.starts)


def resolve_device(name: str) -> torch.device:
    """auto: the GPU if one is visible (under Ray: the one assigned to the trial), else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for, but no GPU is visible to torch")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def training_samples(data: PreparedData, mode: str, max_seq_len: int, last_period: int, overlap: float,
                     device: torch.device) -> TrainingSamples:
    """Windows (all_positions) or prefixes (prefix) over the events of periods <= last_period."""
    items = torch.tensor(data.items, device=device)  # copies: arrays from Ray's object store are read-only
    if mode == "all_positions":
        starts, lengths, loss_from = (torch.tensor(a, device=device) for a in training_windows(
            data, max_seq_len, last_period, overlap))
    else:
        (starts, lengths), loss_from = (torch.tensor(a, device=device) for a in prefix_samples(
            data, max_seq_len, last_period)), None
    return TrainingSamples(items=items, starts=starts, lengths=lengths, loss_from=loss_from, mode=mode)


def evaluation_targets(data: PreparedData, period: int, max_seq_len: int, device: torch.device) -> EvalTargets:
    """Every event of `period` with a history before it, reading up to max_seq_len items; ordered by history
    length, so that a batch of targets is padded to little more than its own lengths (2x faster to score on
    the synthetic log, whose histories are mostly shorter than max_seq_len; BENCHMARKS.md)."""
    items = torch.tensor(data.items, device=device)
    starts, lengths = eval_targets(data, period, max_seq_len)
    order = np.argsort(lengths, kind="stable")
    starts, lengths = torch.tensor(starts[order], device=device), torch.tensor(lengths[order], device=device)
    history_first = torch.tensor(history_starts(data), device=device)[starts + lengths]
    return EvalTargets(items=items, starts=starts, lengths=lengths, history_first=history_first)


VAL_SAMPLE_SEED = 0  # one sample for every trial and seed of a search, so that their scores compare


def sample_targets(targets: EvalTargets, size: int) -> EvalTargets:
    """A fixed, seeded sample of `size` targets (all of them if size is 0 or at least their number), in their order."""
    if not size or size >= len(targets):
        return targets
    chosen = np.sort(np.random.default_rng(VAL_SAMPLE_SEED).choice(len(targets), size, replace=False))
    index = torch.as_tensor(chosen, device=targets.starts.device)
    return EvalTargets(items=targets.items, starts=targets.starts[index], lengths=targets.lengths[index],
                       history_first=targets.history_first[index])
