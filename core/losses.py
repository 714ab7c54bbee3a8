"""Training losses over the next item: the full softmax, and two sampled losses that never build the
(targets x items) logits.

- `full`: cross-entropy over every item (the (M, N + 1) logits of core.model.logits).
- `sampled`: cross-entropy over each target and a set of negatives shared by the whole batch, drawn by
  popularity^alpha (alpha 0: uniformly). A negative's logit is lowered by the log of its inclusion
  probability (the log-Q correction of Yi et al., RecSys 2019): exp-sums over the distinct drawn items then
  estimate, without bias (Horvitz-Thompson), the full softmax's sum over the non-target items. A negative
  that is a position's own target (an accidental hit) is masked at that position: the target is always
  counted once, as the positive.
- `gbce`: gSASRec's generalised binary cross-entropy (Petrov & Macdonald, RecSys 2023) on the same shared
  negatives: beta * softplus(-s_target) + sum softplus(s_negative), beta = 1 - t (1 - negatives / (N - 1)),
  so that t calibrates the overconfidence that negative sampling teaches (t 0: plain BCE).
Each returns the loss summed over the M targets (fp32).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

AUTO_SAMPLED_FROM = 20_000  # loss auto: the sampled softmax from this many items on (BENCHMARKS.md, issue 21)

TargetLoss = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_loss(loss: str, n_items: int) -> str:
    """auto: the full softmax for catalogues below AUTO_SAMPLED_FROM items, the sampled softmax from there on."""
    if loss != "auto":
        return loss
    return "sampled" if n_items >= AUTO_SAMPLED_FROM else "full"


def resolve_item_updates(item_updates: str, n_items: int) -> str:
    """auto: dense Adam over the item tables below AUTO_SAMPLED_FROM items (every row's update is cheap there and
    weight decay reaches rare items), lazy Adam from there on (dense rows would cost more than the loss saves)."""
    if item_updates != "auto":
        return item_updates
    return "lazy" if n_items >= AUTO_SAMPLED_FROM else "dense"


def full_softmax(model: torch.nn.Module, hidden: torch.Tensor, last: torch.Tensor,
                 targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over every item, summed over the (M,) targets."""
    logits = model.logits(hidden, last=last, targets=targets)  # (M, N + 1)
    return F.cross_entropy(logits.float(), targets, reduction="sum")


@dataclass(frozen=True)
class NegativeSampler:
    """Draws `negatives` items with replacement from `cdf` (items 1..N); keeps the distinct ones."""
    cdf: torch.Tensor          # (N,) float64 cumulative drawing probabilities of items 1..N, last = 1
    log_keep: torch.Tensor     # (N + 1,) log(1 - q(item)): with it, the inclusion probability in `negatives` draws
    negatives: int

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(S,) distinct drawn items (S <= negatives), (S,) log of each one's inclusion probability."""
        uniform = torch.rand(self.negatives, dtype=torch.float64, device=self.cdf.device)
        drawn = torch.searchsorted(self.cdf, uniform, right=True).clamp_(max=len(self.cdf) - 1) + 1  # (negatives,)
        items = torch.unique(drawn)  # (S,) sorted
        # P(item among the draws) = 1 - (1 - q)^negatives; log of it, stable for tiny q
        log_inclusion = torch.log(-torch.expm1(self.negatives * self.log_keep[items]))
        return items, log_inclusion.float()


def negative_sampler(item_counts: np.ndarray, negatives: int, alpha: float, device: torch.device) -> NegativeSampler:
    """Items drawn with probability proportional to (training count + 1)^alpha: alpha 0 is uniform; the +1
    lets items unseen in training be drawn too, so that their scores are pushed down as the full softmax would."""
    weight = (np.asarray(item_counts[1:], dtype=np.float64) + 1.0) ** alpha  # (N,)
    q = weight / weight.sum()
    cdf = np.cumsum(q)
    cdf /= cdf[-1]
    log_keep = np.concatenate([[0.0], np.log1p(-np.minimum(q, 1 - 1e-12))])
    return NegativeSampler(cdf=torch.tensor(cdf, device=device), log_keep=torch.tensor(log_keep, device=device),
                           negatives=negatives)


HIT = -1e9  # an accidental hit's logit: exp() of it is 0 in fp32, and it keeps every row's softmax finite


def mask_hits(negative_logits: torch.Tensor, items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(M, S) negatives' logits (a fresh tensor: changed in place), (S,) sorted distinct items, (M,) targets ->
    the logits with each row's own target among the negatives (an accidental hit) set to HIT. One search per
    target instead of an (M, S) comparison."""
    column = torch.searchsorted(items, targets).clamp_(max=len(items) - 1)  # (M,)
    rows = torch.nonzero(items[column] == targets).squeeze(1)
    return negative_logits.index_put_((rows, column[rows]), torch.tensor(HIT, dtype=negative_logits.dtype))


def sampled_softmax(target_logits: torch.Tensor, negative_logits: torch.Tensor) -> torch.Tensor:
    """(M,) target logits, (M, S) negatives' logits, already lowered by the log of their inclusion probabilities
    and with accidental hits masked -> the sampled cross-entropy, summed over the M targets."""
    target_logits = target_logits.float()
    return (torch.logaddexp(target_logits, torch.logsumexp(negative_logits.float(), dim=1)) - target_logits).sum()


def gbce(target_logits: torch.Tensor, negative_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """(M,) target logits, (M, S) negatives' logits (accidental hits masked) -> gSASRec's gBCE, summed over
    targets."""
    positive = beta * F.softplus(-target_logits.float())  # -log sigmoid(s)^beta
    negative = F.softplus(negative_logits.float()).sum(dim=1)  # -log(1 - sigmoid(s)); a masked hit adds 0
    return (positive + negative).sum()


def gbce_beta(negatives: int, n_items: int, t: float) -> float:
    """gSASRec's beta = alpha (t (1 - 1 / alpha) + 1 / alpha) = 1 - t (1 - alpha), alpha = negatives / (N - 1)."""
    alpha = negatives / max(n_items - 1, 1)
    return 1.0 - t * (1.0 - alpha)


@dataclass(frozen=True)
class SampledLoss:
    """A loss over the targets and one set of negatives per batch (`sampled` or `gbce`)."""
    kind: str
    sampler: NegativeSampler
    beta: float = 1.0  # gbce only

    def __call__(self, model: torch.nn.Module, hidden: torch.Tensor, last: torch.Tensor,
                 targets: torch.Tensor) -> torch.Tensor:
        items, log_inclusion = self.sampler.draw()  # (S,) sorted, (S,)
        offset = None if self.kind == "gbce" else -log_inclusion  # the log-Q correction, sampled softmax only
        target_logits, negative_logits = model.candidate_logits(hidden, items, last=last, targets=targets,
                                                                candidate_offset=offset)
        negative_logits = mask_hits(negative_logits.float(), items, targets)
        if self.kind == "gbce":
            return gbce(target_logits, negative_logits, self.beta)
        return sampled_softmax(target_logits, negative_logits)


def build_loss(loss: str, n_items: int, item_counts: np.ndarray, negatives: int, sample_alpha: float,
               gbce_t: float, device: torch.device) -> TargetLoss:
    """The training loss a config asks for (`loss` already resolved from auto), for a catalogue of n_items."""
    if loss == "full":
        return full_softmax
    sampler = negative_sampler(item_counts, negatives, sample_alpha, device)
    return SampledLoss(kind=loss, sampler=sampler, beta=gbce_beta(negatives, n_items, gbce_t))
