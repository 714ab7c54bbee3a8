"""Embedding -> LSTM -> dropout -> Linear over items: the next-item model."""
from __future__ import annotations

import torch
from torch import nn


class LSTMRecommender(nn.Module):
    """Reads item ids (0 = padding, on the right) and scores every item as the next one at each position."""

    def __init__(self, n_items: int, embed_dim: int, hidden_dim: int, num_layers: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_dim, n_items + 1)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids -> (B, T, H) hidden states; position t has read items[:, :t + 1]."""
        hidden, _ = self.lstm(self.embedding(items))
        return hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., H) hidden states -> (..., n_items + 1) scores; column 0 (padding) is never a valid answer."""
        return self.output(self.dropout(hidden))


def build_model(n_items: int, embed_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> LSTMRecommender:
    """The model for a catalogue of n_items items; sizes as explicit arguments."""
    return LSTMRecommender(n_items, embed_dim, hidden_dim, num_layers, dropout)
