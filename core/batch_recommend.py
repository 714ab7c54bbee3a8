"""Top-K for many histories in one forward pass: what an online server does with a batch of requests."""
from __future__ import annotations

import numpy as np
import torch

from core.errors import DataError
from core.model import LSTMRecommender


def right_padded(histories: list[np.ndarray], max_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last max_seq_len items of each history as rows of one (B, T) array, 0-padded on the right; and lengths."""
    lengths = np.array([min(len(h), max_seq_len) for h in histories], dtype=np.int64)
    window = np.zeros((len(histories), int(lengths.max())), dtype=np.int64)
    for row, (history, length) in enumerate(zip(histories, lengths)):
        window[row, :length] = history[len(history) - length:]
    return window, lengths


@torch.no_grad()
def recommend_batch(model: LSTMRecommender, histories: list[np.ndarray], ks: list[int], max_seq_len: int,
                    exclude_seen: list[bool]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per history (item ids, oldest first): its top-k item ids and scores, ranked as core.recommend.recommend does."""
    if not histories or any(len(h) == 0 for h in histories):
        raise DataError("every history needs at least one item")
    if min(ks) < 1:
        raise DataError(f"k must be at least 1, got {min(ks)}")
    model.eval()
    device = next(model.parameters()).device
    window, lengths = right_padded(histories, max_seq_len)
    hidden = model(torch.from_numpy(window).to(device))  # (B, T, H); padding on the right never reaches t < length
    last = hidden[torch.arange(len(histories), device=device), torch.from_numpy(lengths - 1).to(device)]  # (B, H)
    scores = torch.softmax(model.logits(last).float(), dim=-1)  # (B, N + 1)
    scores[:, 0] = float("-inf")
    for row, history in enumerate(histories):
        if exclude_seen[row]:
            scores[row, torch.tensor(history, dtype=torch.long, device=device)] = float("-inf")
    top = torch.topk(scores, min(max(ks), scores.shape[1] - 1))
    values, indices = top.values.cpu().numpy(), top.indices.cpu().numpy()
    answers = []
    for row, k in enumerate(ks):
        keep = np.isfinite(values[row, :k])
        answers.append((indices[row, :k][keep], values[row, :k][keep]))
    return answers
