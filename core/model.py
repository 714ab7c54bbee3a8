"""Embedding -> LSTM -> dropout -> Linear over items: the next-item model, with an optional residual from
the last item's Markov transition counts (logits += w * log1p(count(last item -> j)), w a learned scalar),
so that the LSTM learns what a count table misses."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.batching import concat_ranges


class LSTMRecommender(nn.Module):
    """Reads item ids (0 = padding, on the right) and scores every item as the next one at each position."""

    def __init__(self, n_items: int, embed_dim: int, hidden_dim: int, num_layers: int, dropout: float,
                 markov_residual: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_dim, n_items + 1)
        self.markov_residual = markov_residual
        if markov_residual:
            self.markov_weight = nn.Parameter(torch.ones(()))
            # the training period's transition counts, CSR by source item (set_markov_table); saved with the model
            self.register_buffer("markov_indptr", torch.zeros(n_items + 2, dtype=torch.long))
            self.register_buffer("markov_follower", torch.zeros(0, dtype=torch.long))
            self.register_buffer("markov_count", torch.zeros(0))

    def set_markov_table(self, indptr: np.ndarray | torch.Tensor, follower: np.ndarray | torch.Tensor,
                         count: np.ndarray | torch.Tensor) -> None:
        """The transitions of core.baselines.markov_table: followers of item i are follower[indptr[i]:indptr[i + 1]]."""
        device = self.markov_indptr.device
        self.markov_indptr = torch.as_tensor(indptr, dtype=torch.long, device=device)
        self.markov_follower = torch.as_tensor(follower, dtype=torch.long, device=device)
        self.markov_count = torch.as_tensor(count, dtype=torch.float32, device=device)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids -> (B, T, H) hidden states; position t has read items[:, :t + 1]."""
        hidden, _ = self.lstm(self.embedding(items))
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

    def transition_counts(self, last: torch.Tensor) -> torch.Tensor:
        """(M,) items -> (M, N + 1) how often each item followed it in training."""
        counts = torch.zeros(len(last), len(self.markov_indptr) - 1, device=last.device)
        rows, index = concat_ranges(self.markov_indptr[last], self.markov_indptr[last + 1] - self.markov_indptr[last])
        counts[rows, self.markov_follower[index]] = self.markov_count[index]  # (source, follower) pairs are unique
        return counts

    def add_markov_residual_(self, scores: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """In place, without a second (M, N + 1) block: scores += w * log1p(counts after `last`) (inference)."""
        if self.markov_residual:
            rows, index = concat_ranges(self.markov_indptr[last], self.markov_indptr[last + 1] - self.markov_indptr[last])
            scores.index_put_((rows, self.markov_follower[index]),
                              self.markov_weight * torch.log1p(self.markov_count[index]), accumulate=True)
        return scores


def build_model(n_items: int, embed_dim: int, hidden_dim: int, num_layers: int, dropout: float,
                markov_residual: bool = False) -> LSTMRecommender:
    """The model for a catalogue of n_items items; sizes as explicit arguments."""
    return LSTMRecommender(n_items, embed_dim, hidden_dim, num_layers, dropout, markov_residual)
