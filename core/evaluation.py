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


def model_scorer(model: torch.nn.Module, blend: bool = True) -> Scorer:
    """Scores of the model (put in eval mode) after reading each (right-padded) history: its ranking scores
    (with its Markov blend), or with blend=False its logits alone.

    Always in fp32, even inside an autocast region: bf16 rounding makes ties, and a tie counts against the
    target, while the baselines are scored in fp32."""
    model.eval()

    def score(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with torch.autocast(inputs.device.type, enabled=False):
            hidden = model(inputs)
            at_end = torch.arange(len(inputs), device=inputs.device), lengths - 1
            if blend:
                return model.scores(hidden[at_end], last=inputs[at_end])  # (B, N + 1)
            return model.logits(hidden[at_end], last=inputs[at_end]).float()
    return score


def markov_blend_scorer(model: torch.nn.Module) -> Scorer:
    """log p_markov(j | the history's last item) of a model built with markov_blend (up to a row constant)."""
    def score(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return model.markov_log_probs(inputs[torch.arange(len(inputs), device=inputs.device), lengths - 1])
    return score


@torch.no_grad()
def evaluate(scorer: Scorer, targets: EvalTargets, *, ks: tuple[int, ...], exclude_seen: bool, batch_size: int,
             with_loss: bool = False) -> dict[str, float]:
    """Mean HR/MRR/NDCG at every K (and cross-entropy if asked) over the targets.

    Every item is a candidate except padding and, with exclude_seen, the items in the customer's whole
    history before the target (items[history_first:start + length]), not only the model's window.
    """
    return evaluate_variants(scorer, None, ((0.0, False),), targets, ks=ks, exclude_seen=exclude_seen,
                             batch_size=batch_size, with_loss=with_loss)[0.0, False]


Variant = tuple[float, bool]  # (blend weight w, seen items ranked last)


@torch.no_grad()
def evaluate_variants(scorer: Scorer, blend: Scorer | None, variants: tuple[Variant, ...], targets: EvalTargets, *,
                      ks: tuple[int, ...], exclude_seen: bool, batch_size: int,
                      with_loss: bool = False) -> dict[Variant, dict[str, float]]:
    """`evaluate` of several rankings at once, the scorer run once per batch: for each (w, seen_last), the
    scores scorer + w * blend, with the customer's earlier items ranked last if seen_last (as exclude_seen
    does for every variant). Returns {variant: metrics}; the loss, if asked, is the scorer's alone."""
    items = targets.items
    sums: dict[Variant, dict[str, torch.Tensor]] = {v: defaultdict(float) for v in variants}
    for batch in batch_indices(len(targets), batch_size):
        batch = batch.to(items.device)
        start, length = targets.starts[batch], targets.lengths[batch]
        target_pos = start + length
        answers = items[target_pos]
        inputs = gather_windows(items, start, length, int(length.max()))
        scores = scorer(inputs, length)  # (B, N + 1)
        if with_loss:
            loss = F.cross_entropy(scores, answers, reduction="sum")
            for variant in variants:
                sums[variant]["loss"] += loss
        scores[:, 0] = float("-inf")
        first = targets.history_first[batch]
        rows, index = concat_ranges(first, target_pos - first)
        seen = rows, items[index]
        if exclude_seen:
            scores[seen] = float("-inf")
        added = blend(inputs, length) if blend is not None and any(w for w, _ in variants) else None
        blended = torch.empty_like(scores) if len(variants) > 1 else None  # reused by every variant
        for w, seen_last in variants:
            ranked = scores
            if w != 0:
                ranked = torch.add(scores, added, alpha=w, out=blended)  # -inf stays -inf
            if seen_last and not exclude_seen:
                ranked = ranked if w != 0 else torch.clone(scores) if blended is None else blended.copy_(scores)
                ranked[seen] = float("-inf")
            for name, value in metric_sums(target_ranks(ranked, answers), ks).items():
                sums[w, seen_last][name] += value
    n = max(len(targets), 1)
    return {v: {name: float(value) / n for name, value in sums[v].items()} for v in variants}
