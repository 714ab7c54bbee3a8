"""The notebook's approach, written plainly as its description gives it, to measure ourselves against.

pandas sort, item2id dict, a per-customer Python loop building (prefix, next item) samples, a per-sample
Dataset with the default DataLoader collate (left-padded prefixes), Embedding -> LSTM -> Linear on the
last position, Adam, cross-entropy, a per-epoch validation loss, and top-K metrics computed per sample.
It uses the same split (time quantiles; validation inputs include the training history) so that its
model can also be scored by our evaluation code on exactly the same targets.
"""
from __future__ import annotations

import math
import time

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class PrefixDataset(Dataset):
    def __init__(self, samples: list[tuple[list[int], int]], max_seq_len: int):
        self.samples = samples
        self.max_seq_len = max_seq_len

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        prefix, target = self.samples[index]
        padded = [0] * (self.max_seq_len - len(prefix)) + prefix  # left padding, as the notebook did
        return torch.tensor(padded, dtype=torch.long), torch.tensor(target, dtype=torch.long)


class NotebookLSTM(nn.Module):
    def __init__(self, n_items: int, embed_dim: int, hidden_dim: int, num_layers: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim, n_items + 1)

    def forward(self, x):
        out, _ = self.lstm(self.embedding(x))
        return self.fc(self.dropout(out[:, -1, :]))


def prepare(frame: pd.DataFrame, max_seq_len: int, val_quantile: float = 0.7, test_quantile: float = 0.85):
    """frame: user, time, item. Returns train/val datasets, the number of items and item2id."""
    frame = frame.sort_values(["user", "time"], kind="stable")
    counts = frame.groupby("user")["item"].transform("size")
    frame = frame[counts >= 2]
    item2id = {item: i + 1 for i, item in enumerate(sorted(frame["item"].unique()))}
    frame = frame.assign(item_id=frame["item"].map(item2id))
    cuts = frame["time"].quantile([val_quantile, test_quantile], interpolation="lower").to_numpy()
    train_samples, val_samples = [], []
    for _, group in frame.groupby("user"):
        items = group["item_id"].tolist()
        times = group["time"].tolist()
        for j in range(1, len(items)):
            prefix = items[max(0, j - max_seq_len):j]
            if times[j] < cuts[0]:
                train_samples.append((prefix, items[j]))
            elif times[j] < cuts[1]:
                val_samples.append((prefix, items[j]))
    return PrefixDataset(train_samples, max_seq_len), PrefixDataset(val_samples, max_seq_len), len(item2id), item2id


def train(model: nn.Module, train_set: Dataset, val_set: Dataset, epochs: int, batch_size: int, lr: float,
          seed: int = 0, on_epoch=None) -> list[dict]:
    """The notebook's loop; on_epoch(epoch, model) lets the caller score the model after each epoch."""
    torch.manual_seed(seed)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    history = []
    for epoch in range(epochs):
        began = time.perf_counter()
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        trained = time.perf_counter()
        model.eval()
        val_total = 0.0
        with torch.no_grad():
            for x, y in val_loader:
                val_total += criterion(model(x), y).item() * len(y)
        history.append({"epoch": epoch + 1, "train_loss": total / len(train_set), "val_loss": val_total / len(val_set),
                        "train_seconds": trained - began, "val_seconds": time.perf_counter() - trained})
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
    return history


def topk_metrics(model: nn.Module, dataset: Dataset, k: int = 5, batch_size: int = 256) -> dict:
    """HR/MRR/NDCG@k the straightforward way: top-k per batch, then a loop over the samples."""
    model.eval()
    hits = reciprocal = gains = 0.0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            logits = model(x)
            logits[:, 0] = float("-inf")
            top = torch.topk(logits, k, dim=1).indices.tolist()
            for row, target in zip(top, y.tolist()):
                if target in row:
                    rank = row.index(target) + 1
                    hits += 1
                    reciprocal += 1 / rank
                    gains += 1 / math.log2(rank + 1)
    n = len(dataset)
    return {f"hr@{k}": hits / n, f"mrr@{k}": reciprocal / n, f"ndcg@{k}": gains / n}
