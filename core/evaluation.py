"""Full-ranking evaluation of any scorer (the model or a baseline) on a set of targets."""
from __future__ import annotations

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
                      ks: tuple[int, ...], exclude_seen: bool, batch_size: int, with_loss: bool = False,
                      keep_ranks: dict[Variant, torch.Tensor] | None = None) -> dict[Variant, dict[str, float]]:
    """`evaluate` of several rankings at once, the scorer run once per batch: for each (w, seen_last), the
    scores scorer + w * blend, with the customer's earlier items ranked last if seen_last (as exclude_seen
    does for every variant). Returns {variant: metrics}; the loss, if asked, is the scorer's alone.

    Each blend weight costs one pass over the (B, N + 1) scores; ranking seen items last costs only a look
    at the customer's own items: the target moves up by the number of them that scored at least as high.
    keep_ranks, if given, receives each variant's (T,) per-target ranks (for paired comparisons)."""
    items = targets.items
    ranks: dict[Variant, list[torch.Tensor]] = {v: [] for v in variants}
    loss = torch.zeros((), device=items.device)
    weights = list(dict.fromkeys(w for w, _ in variants))
    for batch in batch_indices(len(targets), batch_size):
        batch = batch.to(items.device)
        start, length = targets.starts[batch], targets.lengths[batch]
        target_pos = start + length
        answers = items[target_pos]
        inputs = gather_windows(items, start, length, int(length.max()))
        scores = scorer(inputs, length)  # (B, N + 1)
        if with_loss:
            loss += F.cross_entropy(scores, answers, reduction="sum")
        scores[:, 0] = float("-inf")
        first = targets.history_first[batch]
        rows, index = concat_ranges(first, target_pos - first)
        if exclude_seen:
            scores[rows, items[index]] = float("-inf")
        elif any(last for _, last in variants):  # each (customer, item) once: an item had twice moves it up once
            pairs = torch.unique(rows * scores.shape[1] + items[index])
            seen_rows, seen_items = pairs // scores.shape[1], pairs % scores.shape[1]
        added = blend(inputs, length) if blend is not None and any(weights) else None
        blended = torch.empty_like(scores) if any(weights) else None  # reused by every weight
        for w in weights:
            ranked = scores if w == 0 else torch.add(scores, added, alpha=w, out=blended)  # -inf stays -inf
            kept = target_ranks(ranked, answers)  # (B,)
            if (w, False) in ranks:
                ranks[w, False].append(kept)
            if (w, True) in ranks:
                ranks[w, True].append(kept if exclude_seen else _ranks_with_seen_last(
                    ranked, answers, kept, seen_rows, seen_items))
    n = max(len(targets), 1)
    out = {}
    for variant, parts in ranks.items():
        all_ranks = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int32)
        out[variant] = {name: float(value) / n for name, value in metric_sums(all_ranks, ks).items()}
        if keep_ranks is not None:
            keep_ranks[variant] = all_ranks
        if with_loss:
            out[variant]["loss"] = float(loss) / n
    return out


def target_ranks_of(scorer: Scorer, blend: Scorer | None, variant: Variant, targets: EvalTargets, *,
                    exclude_seen: bool, batch_size: int) -> torch.Tensor:
    """(T,) every target's 1-based rank under one (blend weight, seen items last) variant: what
    evaluate_variants averages into its metrics, kept per target for paired comparisons."""
    kept: dict[Variant, torch.Tensor] = {}
    evaluate_variants(scorer, blend, (variant,), targets, ks=(1,), exclude_seen=exclude_seen,
                      batch_size=batch_size, keep_ranks=kept)
    return kept[variant]


def _ranks_with_seen_last(scores: torch.Tensor, answers: torch.Tensor, ranks: torch.Tensor, seen_rows: torch.Tensor,
                          seen_items: torch.Tensor) -> torch.Tensor:
    """The targets' ranks once the (row, item) pairs given (unique) are scored -inf: a seen target cannot be
    ranked (one past the last item, as target_ranks does), any other target moves up past each seen item
    that scored at least as high."""
    target_scores = scores.gather(1, answers[:, None])[:, 0]  # (B,)
    above = scores[seen_rows, seen_items] >= target_scores[seen_rows]
    moved = torch.zeros_like(ranks).index_add_(0, seen_rows, above.to(ranks.dtype))
    target_seen = torch.zeros(len(answers), dtype=torch.bool, device=answers.device)
    target_seen[seen_rows[seen_items == answers[seen_rows]]] = True
    unrankable = scores.shape[1] + 1
    return torch.where(target_seen | (ranks == unrankable), unrankable, ranks - moved)
