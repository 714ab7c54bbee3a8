"""Tensor views of samples: (start, length) index pairs into the flat item array become padded batches."""
from __future__ import annotations

from collections.abc import Iterator

import torch


def gather_windows(items: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B,) starts and lengths -> (B, width) items[start:start + length], padded with 0 on the right."""
    offsets = torch.arange(width, device=items.device)
    index = (starts[:, None] + offsets).clamp_(max=len(items) - 1)  # (B, width)
    return torch.where(offsets < lengths[:, None], items[index], torch.zeros((), dtype=items.dtype,
                                                                              device=items.device))


def concat_ranges(starts: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ranges [start, start + length) per row: (row of each element, index of each element), flat."""
    rows = torch.repeat_interleave(torch.arange(len(starts), device=starts.device), lengths)
    before = torch.cumsum(lengths, 0) - lengths
    index = torch.arange(len(rows), device=starts.device) + torch.repeat_interleave(starts - before, lengths)
    return rows, index


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Consecutive index slices of size batch_size; shuffled when a generator is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    yield from torch.split(order, batch_size)


def length_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                   chunk_batches: int = 50) -> Iterator[torch.Tensor]:
    """Shuffled batches of samples of similar length: the samples are shuffled, cut into chunks of
    chunk_batches batches, sorted by length within each chunk and cut into batches, which come in random
    order. A batch is padded to its longest sample, so this spares the LSTM most of the padding where
    histories are mostly shorter than max_seq_len."""
    order = torch.randperm(len(lengths), generator=generator)
    batches = []
    for chunk in torch.split(order, batch_size * chunk_batches):
        batches += torch.split(chunk[torch.argsort(lengths[chunk], stable=True)], batch_size)
    for index in torch.randperm(len(batches), generator=generator):
        yield batches[index]
