"""Full-ranking evaluation of any scorer (the model or a baseline) on a set of targets."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
import torch.nn.functional as F

from core.batching import batch_indices, concat_ranges, gather_windows
from core.metrics import metric_sums, target_ranks
from core.tensors import EvalTargets

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (B, T) items, (B,) lengths -> (B, N + 1)


def model_scorer(model: torch.nn.Module) -> Scorer:
    """Scores of the model (put in eval mode) after reading each (right-padded) history.

    Always in fp32, even inside an autocast region: bf16 rounding makes ties, and a tie counts against the
    target, while the baselines are scored in fp32."""
    model.eval()

    def score(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with torch.autocast(inputs.device.type, enabled=False):
            hidden = model(inputs)
            at_end = torch.arange(len(inputs), device=inputs.device), lengths - 1
            return model.logits(hidden[at_end], last=inputs[at_end]).float()  # (B, N + 1)
    return score


@torch.no_grad()
def evaluate(scorer: Scorer, targets: EvalTargets, *, ks: tuple[int, ...], exclude_seen: bool, batch_size: int,
             with_loss: bool = False) -> dict[str, float]:
    """Mean HR/MRR/NDCG at every K (and cross-entropy if asked) over the targets.

    Every item is a candidate except padding and, with exclude_seen, the items in the customer's whole
    history before the target (items[history_first:start + length]), not only the model's window.
    """
    items = targets.items
    sums: dict[str, torch.Tensor] = defaultdict(float)
    for batch in batch_indices(len(targets), batch_size):
        batch = batch.to(items.device)
        start, length = targets.starts[batch], targets.lengths[batch]
        target_pos = start + length
        answers = items[target_pos]
        scores = scorer(gather_windows(items, start, length, int(length.max())), length)  # (B, N + 1)
        if with_loss:
            sums["loss"] += F.cross_entropy(scores, answers, reduction="sum")
        scores[:, 0] = float("-inf")
        if exclude_seen:
            first = targets.history_first[batch]
            rows, index = concat_ranges(first, target_pos - first)
            scores[rows, items[index]] = float("-inf")
        for name, value in metric_sums(target_ranks(scores, answers), ks).items():
            sums[name] += value
    n = max(len(targets), 1)
    return {name: float(value) / n for name, value in sums.items()}
