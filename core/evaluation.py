"""Full-ranking evaluation of any scorer (the model or a baseline) on a set of targets."""
from __future__ import annotations

from collections.abc import Callable

import torch

from core.batching import batch_indices, gather_windows
from core.metrics import metric_sums
from core.ranking import (
    AtLeastCounter,
    ItemScores,
    Pairs,
    as_item_scores,
    block_edges,
    history_pairs,
    row_logsumexp,
    scores_at,
)
from core.tensors import EvalTargets

# (B, T) items, (B,) lengths -> the scores of every item after each history: ItemScores (computed block by
# block, core.ranking), or a dense (B, N + 1) tensor where that is cheap to hold
Scorer = Callable[[torch.Tensor, torch.Tensor], "ItemScores | torch.Tensor"]


def model_scorer(model: torch.nn.Module, blend: bool = True) -> Scorer:
    """Scores of the model (put in eval mode) after reading each (right-padded) history: its ranking scores
    (with its Markov blend), or with blend=False its logits alone; computed per item block.

    Always in fp32, even inside an autocast region: bf16 rounding makes ties, and a tie counts against the
    target, while the baselines are scored in fp32."""
    model.eval()

    def score(inputs: torch.Tensor, lengths: torch.Tensor) -> ItemScores:
        with torch.autocast(inputs.device.type, enabled=False):
            at_end = torch.arange(len(inputs), device=inputs.device), lengths - 1
            hidden, last = model(inputs)[at_end], inputs[at_end]  # (B, H), (B,)

        def block(lo: int, hi: int, rows: torch.Tensor | None) -> torch.Tensor:
            h, l = (hidden, last) if rows is None else (hidden[rows], last[rows])
            with torch.autocast(inputs.device.type, enabled=False):
                return model.scores_block(h, l, lo, hi) if blend else model.logits_block(h, l, lo, hi)
        return ItemScores(len(inputs), model.output.out_features, block)
    return score


def markov_blend_scorer(model: torch.nn.Module) -> Scorer:
    """log p_markov(j | the history's last item) of a model built with markov_blend (up to a row constant)."""
    def score(inputs: torch.Tensor, lengths: torch.Tensor) -> ItemScores:
        last = inputs[torch.arange(len(inputs), device=inputs.device), lengths - 1]  # (B,)

        def block(lo: int, hi: int, rows: torch.Tensor | None) -> torch.Tensor:
            return model.markov_log_probs_block(last if rows is None else last[rows], lo, hi)
        return ItemScores(len(inputs), len(model.blend_log_prior), block)
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
                      block_columns: int | None = None,
                      keep_ranks: dict[Variant, torch.Tensor] | None = None) -> dict[Variant, dict[str, float]]:
    """`evaluate` of several rankings at once, the scorer run once per batch: for each (w, seen_last), the
    scores scorer + w * blend, with the customer's earlier items ranked last if seen_last (as exclude_seen
    does for every variant). Returns {variant: metrics}; the loss, if asked, is the scorer's alone.

    Items are scored in blocks of block_columns (default: core.ranking.BLOCK_ELEMENTS // batch size) and
    each target's rank is the count, summed over the blocks, of the items scoring at least as high.
    keep_ranks, if given, receives each variant's (T,) per-target ranks (for paired comparisons)."""
    items = targets.items
    ranks: dict[Variant, list[torch.Tensor]] = {v: [] for v in variants}
    loss = torch.zeros((), device=items.device)
    for batch in batch_indices(len(targets), batch_size):
        batch = batch.to(items.device)
        start, length = targets.starts[batch], targets.lengths[batch]
        target_pos = start + length
        inputs = gather_windows(items, start, length, int(length.max()))
        first = targets.history_first[batch]
        seen = history_pairs(items, first, target_pos)
        batch_ranks, batch_loss = _batch_ranks(scorer(inputs, length), blend, inputs, length, items[target_pos],
                                               seen, variants, exclude_seen, with_loss, block_columns)
        loss += batch_loss
        for variant, part in batch_ranks.items():
            ranks[variant].append(part)
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


def _batch_ranks(scored: ItemScores | torch.Tensor, blend: Scorer | None, inputs: torch.Tensor, lengths: torch.Tensor,
                 answers: torch.Tensor, seen: Pairs, variants: tuple[Variant, ...], exclude_seen: bool,
                 with_loss: bool, block_columns: int | None) -> tuple[dict[Variant, torch.Tensor], torch.Tensor]:
    """One batch's (B,) ranks for every variant, and its summed cross-entropy (0 unless with_loss).

    Each target's score comes first, from the block that holds it; then per block the items scoring at
    least as high are counted (ties against the target), and, for seen_last, the customer's own items among
    them, which the target then moves up past. Each blend weight costs one pass over a block, not the catalogue."""
    scored = as_item_scores(scored)
    weights = list(dict.fromkeys(w for w, _ in variants))
    added = as_item_scores(blend(inputs, lengths)) if blend is not None and any(weights) else None
    edges = block_edges(scored.n_columns, scored.n_rows, block_columns)
    first = scored.block(*edges[0], None)                                                     # (B, C)
    first_added = added.block(*edges[0], None) if added is not None else None
    raw, target_seen, wanted = _target_scores(scored, added, weights, answers, seen, exclude_seen, edges, first,
                                              first_added)
    counts = {w: torch.zeros(len(answers), dtype=torch.int32, device=answers.device) for w in weights}
    moved = {w: torch.zeros_like(counts[w]) for w in weights}
    log_total = torch.full_like(raw, float("-inf"))
    # sized by the first block, the widest, and reused by every block (fresh pages cost as much as the writes)
    above = AtLeastCounter(*first.shape, first.device)
    whole_buffer = torch.empty_like(first) if added is not None or with_loss else None  # the loss, then each weight
    for lo, hi in edges:
        block = first if lo == 0 else scored.block(lo, hi, None)                              # (B, C)
        more = None if added is None else first_added if lo == 0 else added.block(lo, hi, None)
        buffer = None if whole_buffer is None else whole_buffer[:, :hi - lo]
        if with_loss:
            log_total = torch.logaddexp(log_total, row_logsumexp(block, buffer))
        if lo == 0:
            block[:, 0] = float("-inf")
        rows, columns = seen.in_block(lo, hi)
        if exclude_seen:
            block[rows, columns] = float("-inf")
        here = torch.nonzero((answers >= lo) & (answers < hi))[:, 0]
        for w in weights:
            ranked = block if w == 0 else torch.add(block, more, alpha=w, out=buffer)         # -inf stays -inf
            target = wanted[w]
            counts[w] += above.count(ranked, target)
            counts[w][here] += 1 - (ranked[here, answers[here] - lo] >= target[here]).int()  # the target: once
            if (w, True) in variants and not exclude_seen:
                moved[w].index_add_(0, rows, (ranked[rows, columns] >= target[rows]).int())
        first = first_added = None
    unrankable = scored.n_columns + 1
    out = {}
    for w, last in variants:
        rank = torch.where(torch.isnan(wanted[w]) | torch.isneginf(wanted[w]), unrankable, counts[w])
        out[w, last] = torch.where(target_seen | (rank == unrankable), unrankable, rank - moved[w]) \
            if last and not exclude_seen else rank
    loss = (log_total - raw).sum() if with_loss else torch.zeros((), device=answers.device)
    return out, loss


def _target_scores(scored: ItemScores, added: ItemScores | None, weights: list[float], answers: torch.Tensor,
                   seen: Pairs, exclude_seen: bool, edges: list[tuple[int, int]], first: torch.Tensor,
                   first_added: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, dict[float, torch.Tensor]]:
    """(B,) each target's unmasked score, (B,) whether it is one of the customer's seen items, and per blend
    weight the (B,) score the items must reach to rank above it (-inf where the target cannot be ranked)."""
    raw = scores_at(scored, answers, edges, first)                                            # (B,) unmasked
    target_seen = torch.zeros(len(answers), dtype=torch.bool, device=answers.device)
    target_seen[seen.rows[seen.items == answers[seen.rows]]] = True
    masked = (answers == 0) | target_seen if exclude_seen else answers == 0
    wanted = {0.0: torch.where(masked, float("-inf"), raw)}                                  # (B,) per weight
    if added is not None:
        extra = scores_at(added, answers, edges, first_added)
        wanted.update({w: torch.add(wanted[0.0], extra, alpha=w) for w in weights if w != 0})
    return raw, target_seen, wanted
