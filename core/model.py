"""Embedding -> dropout -> LSTM -> dropout -> Linear over items: the next-item model, with two optional uses of the last
item's Markov transition counts:
- a residual trained with the LSTM (logits += w * log1p(count(last item -> j)), w a learned scalar), so that
  the LSTM learns what a count table misses;
- a blend at scoring time (scores = log p_lstm + w * log p_markov, w chosen on validation, never trained),
  where p_markov(j | i) = (count(i -> j) + ALPHA * p(j)) / (count(i) + ALPHA) smooths the transitions with
  add-one item popularity p(j). Row constants do not change a ranking, so the blend is a dense per-item bias
  (w log(ALPHA p(j))) plus a sparse term over the last item's followers (w log1p(count(i -> j) / (ALPHA p(j)))),
  and a softmax of the blended scores is the product of experts p_lstm * p_markov^w, normalised."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.batching import concat_ranges
from core.config import Config

BLEND_ALPHA = 1.0  # pseudo-count of the popularity prior in p_markov (10 did the same in research runs, issue 9)


class LSTMRecommender(nn.Module):
    """Reads item ids (0 = padding, on the right) and scores every item as the next one at each position."""

    def __init__(self, n_items: int, embed_dim: int, hidden_dim: int, num_layers: int, dropout: float,
                 markov_residual: bool = False, markov_blend: bool = False, embed_dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, embed_dim, padding_idx=0)
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_dim, n_items + 1)
        self.markov_residual = markov_residual
        self.markov_blend = markov_blend
        if markov_residual:
            self.markov_weight = nn.Parameter(torch.ones(()))
        if markov_residual or markov_blend:
            # the training period's transition counts, CSR by source item (set_markov_table); saved with the model
            self.register_buffer("markov_indptr", torch.zeros(n_items + 2, dtype=torch.long))
            self.register_buffer("markov_follower", torch.zeros(0, dtype=torch.long))
            self.register_buffer("markov_count", torch.zeros(0))
        if markov_blend:
            self.register_buffer("blend_log_prior", torch.zeros(n_items + 1))  # log(ALPHA * p(j))
            self.register_buffer("blend_weight", torch.zeros(()))  # w, set after each validation (core.fit)

    @classmethod
    def from_config(cls, config: Config, n_items: int, markov_blend: bool | None = None) -> LSTMRecommender:
        """The config's model for a catalogue of n_items items. markov_blend: whether it has a blend weight
        (default: unless the config's markov_blend is 0; a saved model says so by its weights)."""
        blend = config.markov_blend != 0 if markov_blend is None else markov_blend
        return cls(n_items, config.embed_dim, config.hidden_dim, config.num_layers, config.dropout,
                   config.markov_residual, markov_blend=blend, embed_dropout=config.embed_dropout)

    def set_markov_table(self, indptr: np.ndarray | torch.Tensor, follower: np.ndarray | torch.Tensor,
                         count: np.ndarray | torch.Tensor, item_counts: np.ndarray | None = None) -> None:
        """The transitions of core.baselines.markov_table: followers of item i are follower[indptr[i]:indptr[i + 1]];
        for the blend, also each item's training count (core.baselines.item_counts)."""
        device = self.markov_indptr.device
        self.markov_indptr = torch.as_tensor(indptr, dtype=torch.long, device=device)
        self.markov_follower = torch.as_tensor(follower, dtype=torch.long, device=device)
        self.markov_count = torch.as_tensor(count, dtype=torch.float32, device=device)
        if self.markov_blend and item_counts is not None:
            counts = torch.as_tensor(item_counts, dtype=torch.float64, device=device)
            prior = (counts + 1.0) / (counts.sum() + len(counts) - 1)  # add-one over the items (not padding)
            self.blend_log_prior = torch.log(BLEND_ALPHA * prior).float()

    def sparse_item_grads(self, on: bool = True) -> LSTMRecommender:
        """Row-sparse gradients for the item embedding and, in candidate_logits, the output weights: a sampled
        loss touches few rows per batch, and an optimiser that updates only those (core.optim) costs
        O(rows touched), not O(items). The full softmax touches every output row: leave it off there."""
        self.embedding.sparse = on
        return self

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids -> (B, T, H) hidden states; position t has read items[:, :t + 1]."""
        hidden, _ = self.lstm(self.embed_dropout(self.embedding(items)))
        return hidden

    def logits(self, hidden: torch.Tensor, last: torch.Tensor | None = None,
               targets: torch.Tensor | None = None) -> torch.Tensor:
        """(M, H) hidden states -> (M, n_items + 1) scores; column 0 (padding) is never a valid answer.

        With the Markov residual, `last` (M,) is the item read at each position; in training, `targets` (M,)
        leaves each position's own (last, target) pair out of the counts, since the table was counted from
        the very events being predicted and would otherwise teach the model to trust it too much."""
        scores = self.output(self.dropout(hidden))
        if not self.markov_residual:
            return scores
        counts = self.transition_counts(last)  # (M, N + 1)
        if targets is not None:
            rows = torch.arange(len(targets), device=targets.device)
            counts[rows, targets] = (counts[rows, targets] - 1.0).clamp_(min=0.0)
        return scores.float() + self.markov_weight * torch.log1p(counts)

    def candidate_logits(self, hidden: torch.Tensor, candidates: torch.Tensor, last: torch.Tensor | None = None,
                         targets: torch.Tensor | None = None,
                         candidate_offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, H) hidden states, (S,) candidate items shared by all rows, (M,) targets -> ((M,) the targets'
        logits, (M, S) the candidates'): the columns of `logits` a sampled loss needs, without the (M, N + 1)
        block. last: (M,) each row's last item, read only by the Markov residual, which is added as in `logits`
        (the target's own pair left out). candidate_offset: (S,) added to the candidates' logits inside the
        matrix product (a log-Q correction costs no extra pass)."""
        hidden = self.dropout(hidden)
        # one gather of the rows needed; a sparse embedding asks for a row-sparse gradient (lazy Adam, core.optim)
        rows = F.embedding(torch.cat([targets, candidates]), self.output.weight, sparse=self.embedding.sparse)
        target_rows, candidate_rows = rows[:len(targets)], rows[len(targets):]  # (M, H), (S, H)
        bias = self.output.bias
        target_logits = (hidden * target_rows).sum(-1) + bias[targets]  # (M,)
        candidate_bias = bias[candidates] if candidate_offset is None else bias[candidates] + candidate_offset
        candidate_logits = torch.addmm(candidate_bias, hidden, candidate_rows.T)  # (M, H) x (H, S) + (S,)
        if not self.markov_residual:
            return target_logits, candidate_logits
        own = (self.pair_counts(last, targets) - 1.0).clamp_(min=0.0)  # (M,)
        target_logits = target_logits.float() + self.markov_weight * torch.log1p(own)
        counts = self.pair_counts(last[:, None], candidates[None, :])  # (M, S)
        return target_logits, candidate_logits.float() + self.markov_weight * torch.log1p(counts)

    def pair_counts(self, source: torch.Tensor, follower: torch.Tensor) -> torch.Tensor:
        """How often `follower` followed `source` in training, elementwise over broadcast index tensors."""
        if len(self.markov_follower) == 0:
            return torch.zeros(torch.broadcast_shapes(source.shape, follower.shape), device=source.device)
        keys = self._markov_keys()
        query = source * (len(self.markov_indptr) - 1) + follower
        at = torch.searchsorted(keys, query).clamp_(max=len(keys) - 1)
        return torch.where(keys[at] == query, self.markov_count[at], torch.zeros((), device=source.device))

    def scores(self, hidden: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """(M, H) hidden states, (M,) last items -> (M, N + 1) fp32 ranking scores: the logits, plus the blend."""
        scores = self.logits(hidden, last=last).float()
        if self.markov_blend:
            scores = scores + self.blend_weight * self.markov_log_probs(last)
        return scores

    def scores_block(self, hidden: torch.Tensor, last: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """`scores` for items lo..hi - 1 only: (M, hi - lo) fp32 (inference: blocked ranking, core.ranking). The
        blend's dense part is added as a broadcast row and its sparse part at the followers: no second block."""
        scores = self.logits_block(hidden, last, lo, hi)
        if self.markov_blend:
            weight = float(self.blend_weight)
            scores.add_(self.blend_log_prior[lo:hi], alpha=weight)
            rows, index = self._followers(last, lo, hi)
            scores.index_put_((rows, self.markov_follower[index] - lo), weight * self._blend_follower_terms(index),
                              accumulate=True)
        return scores

    def logits_block(self, hidden: torch.Tensor, last: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """`logits` (without the training-time leave-out) for items lo..hi - 1 only: (M, hi - lo) fp32; the
        residual is added at the followers alone (log1p(0) is 0 elsewhere)."""
        scores = F.linear(self.dropout(hidden), self.output.weight[lo:hi], self.output.bias[lo:hi]).float()
        if self.markov_residual:
            rows, index = self._followers(last, lo, hi)
            scores.index_put_((rows, self.markov_follower[index] - lo),
                              self.markov_weight * torch.log1p(self.markov_count[index]), accumulate=True)
        return scores

    def markov_log_probs(self, last: torch.Tensor) -> torch.Tensor:
        """(M,) items -> (M, N + 1) log p_markov(j | last) up to a per-row constant (see the module docstring)."""
        return self.markov_log_probs_block(last, 0, len(self.blend_log_prior))

    def markov_log_probs_block(self, last: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """`markov_log_probs` for items lo..hi - 1 only: (M, hi - lo), from the followers in that range alone."""
        out = self.blend_log_prior[lo:hi].expand(len(last), -1).clone()
        rows, index = self._followers(last, lo, hi)
        out[rows, self.markov_follower[index] - lo] += self._blend_follower_terms(index)
        return out

    def _blend_follower_terms(self, index: torch.Tensor) -> torch.Tensor:
        """log1p(count(i -> j) / (ALPHA p(j))) for the transitions at `index`: the blend's sparse part."""
        return torch.log1p(self.markov_count[index] / self.blend_log_prior[self.markov_follower[index]].exp())

    def _followers(self, last: torch.Tensor, lo: int = 0, hi: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, index into the table) of every transition out of each row's last item to an item in lo..hi - 1.
        A block's range is found by binary search in each row's sorted followers: scanning them all for every
        block made ranking a 1M-item catalogue quadratic in a popular item's followers."""
        if lo == 0 and hi is None:
            return concat_ranges(self.markov_indptr[last], self.markov_indptr[last + 1] - self.markov_indptr[last])
        n = len(self.markov_indptr) - 1
        keys = self._markov_keys()
        first = torch.searchsorted(keys, last * n + lo)
        return concat_ranges(first, torch.searchsorted(keys, last * n + (n if hi is None else hi)) - first)

    def _markov_keys(self) -> torch.Tensor:
        """(P,) source * (N + 1) + follower of every transition: ascending (markov_table's order: by source, then
        follower). Kept until the table's tensors are replaced or written to."""
        stamp = (self.markov_indptr, self.markov_follower, self.markov_indptr._version, self.markov_follower._version)
        cached = self.__dict__.get("_markov_keys_cache")
        if cached is None or cached[0][0] is not stamp[0] or cached[0][1] is not stamp[1] or cached[0][2:] != stamp[2:]:
            n = len(self.markov_indptr) - 1
            sources = torch.repeat_interleave(torch.arange(n, device=self.markov_indptr.device),
                                              torch.diff(self.markov_indptr))
            self.__dict__["_markov_keys_cache"] = cached = (stamp, sources * n + self.markov_follower)
        return cached[1]

    def transition_counts(self, last: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """(M,) items -> (M, hi - lo) how often each item of lo..hi - 1 (default: all) followed it in training."""
        hi = len(self.markov_indptr) - 1 if hi is None else hi
        counts = torch.zeros(len(last), hi - lo, device=last.device)
        rows, index = self._followers(last, lo, hi)
        counts[rows, self.markov_follower[index] - lo] = self.markov_count[index]  # (source, follower) pairs unique
        return counts


def build_model(n_items: int, embed_dim: int, hidden_dim: int, num_layers: int, dropout: float,
                markov_residual: bool = False, markov_blend: bool = False,
                embed_dropout: float = 0.0) -> LSTMRecommender:
    """The model for a catalogue of n_items items; sizes as explicit arguments."""
    return LSTMRecommender(n_items, embed_dim, hidden_dim, num_layers, dropout, markov_residual, markov_blend,
                           embed_dropout)
