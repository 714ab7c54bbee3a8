"""Ranking over the whole catalogue in item blocks, so that memory stays bounded at any catalogue size.

A scorer gives `ItemScores`: the scores of B histories, computed on demand for one item range (a block of
columns) and a subset of the rows. Evaluation counts, per block, the items scoring at least as high as each
target (core.evaluation); recommendation keeps a running top-K per block and merges (top_k_blocked). No
(rows x items) block larger than BLOCK_ELEMENTS is ever allocated: at 1M items a batch of 1,024 targets
would otherwise hold 4 GB of fp32 scores, plus a copy per blend weight.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.batching import concat_ranges

# Scores held at once: (rows x columns) of one block, 64 MB in fp32. At the default eval_batch_size (1,024)
# that is 16,384 columns, so ML-100K (1.7K items) and Beauty (12K) are one block: the arithmetic of an
# unblocked pass (bench/large_catalogue_eval.py compare; `blocks` times 2^22 and 2^26 against it).
BLOCK_ELEMENTS = 1 << 24

BlockFn = Callable[[int, int, "torch.Tensor | None"], torch.Tensor]  # (lo, hi, rows or None) -> (R, hi - lo) fp32


@dataclass(frozen=True)
class ItemScores:
    """Scores of B histories over n_columns items (column 0 is padding), computed block by block. `block(lo, hi,
    rows)` returns a fresh (R, hi - lo) fp32 tensor for the given rows (None: all B); the caller may write to it."""
    n_rows: int
    n_columns: int
    block: BlockFn


def dense_scores(scores: torch.Tensor) -> ItemScores:
    """ItemScores over a (B, N + 1) tensor already computed (a scorer that is cheap to hold whole)."""
    def block(lo: int, hi: int, rows: torch.Tensor | None) -> torch.Tensor:
        part = scores[:, lo:hi] if rows is None else scores[rows, lo:hi]
        return part.float().clone()
    return ItemScores(scores.shape[0], scores.shape[1], block)


def as_item_scores(scores: torch.Tensor | ItemScores) -> ItemScores:
    """A scorer's answer as ItemScores (scorers may still return a dense (B, N + 1) tensor)."""
    return scores if isinstance(scores, ItemScores) else dense_scores(scores)


def block_edges(n_columns: int, n_rows: int, block_columns: int | None = None) -> list[tuple[int, int]]:
    """[lo, hi) column ranges covering 0..n_columns, each of block_columns (default: BLOCK_ELEMENTS // n_rows)."""
    width = block_columns or max(1, BLOCK_ELEMENTS // max(n_rows, 1))
    return [(lo, min(lo + width, n_columns)) for lo in range(0, n_columns, width)]


def scores_at(scores: ItemScores, columns: torch.Tensor, edges: list[tuple[int, int]],
              first: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) each row's score at its column, computed by the block that holds the column (the same arithmetic
    as the ranking pass, so a target ties with itself). `first`: the first block, already computed for all rows."""
    out = torch.empty(len(columns), device=columns.device)
    starts = torch.tensor([lo for lo, _ in edges], device=columns.device)
    which = torch.searchsorted(starts, columns, right=True) - 1  # (B,) block of each column
    for index in torch.unique(which).tolist():
        rows = torch.nonzero(which == index)[:, 0]
        lo, hi = edges[index]
        if index == 0 and first is not None:
            out[rows] = first[rows, columns[rows] - lo]
            continue
        part = scores.block(lo, hi, rows)                                                     # (R, hi - lo)
        out[rows] = part[torch.arange(len(rows), device=rows.device), columns[rows] - lo]
    return out


class AtLeastCounter:
    """Per row, how many of a (B, C) block's scores reach the row's threshold: torch.ge into a bool buffer, then
    the buffer summed as int64 words, eight rows' bytes added at once (SWAR). Summing the bools byte by byte
    is torch's slow path on CPU: 45 ms for a 1,024 x 12,102 block at one thread, against 10 ms for the
    comparison itself; the words take 1 ms. The buffer is padded to whole chunks of LANE_WORDS words with
    False, so a byte lane never exceeds 255 before it is split out."""

    LANE_WORDS = 255

    def __init__(self, n_rows: int, n_columns: int, device: torch.device):
        chunk = 8 * self.LANE_WORDS
        self.flags = torch.zeros((n_rows, -(-n_columns // chunk) * chunk), dtype=torch.bool, device=device)
        self.shifts = torch.arange(0, 64, 8, device=device)

    def count(self, scores: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
        """(R,) int32: per row of `scores` (R <= n_rows, C <= n_columns), the columns with score >= threshold[row]."""
        rows, columns = scores.shape
        flags = self.flags[:rows]
        if columns < flags.shape[1]:
            flags[:, columns:] = False  # a narrower block after a wider one leaves stale flags past its width
        torch.ge(scores, threshold[:, None], out=flags[:, :columns])
        words = flags.view(torch.int64).view(rows, -1, self.LANE_WORDS).sum(dim=2)             # (R, chunks)
        return ((words[..., None] >> self.shifts) & 0xFF).sum(dim=(1, 2), dtype=torch.int32)


def row_logsumexp(block: torch.Tensor, buffer: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) log of each row's sum of exp, as torch.logsumexp gives it, at 2.3x its speed on CPU (its version
    allocates and passes over the block more often): row maximum, exp of the shifted block in `buffer` (a
    tensor of the block's shape, overwritten; None: a new one), sum, log. Rows of -inf give -inf."""
    top = block.amax(dim=1, keepdim=True)
    top = top.masked_fill(~torch.isfinite(top), 0.0)  # a row of -inf (or with +inf) is not shifted
    shifted = torch.sub(block, top, out=buffer if buffer is not None else torch.empty_like(block))
    return shifted.exp_().sum(dim=1).log_().add_(top[:, 0])


@dataclass(frozen=True)
class Pairs:
    """Unique (row, item) pairs sorted by item, so that each block's pairs are one slice."""
    rows: torch.Tensor
    items: torch.Tensor

    @staticmethod
    def of(rows: torch.Tensor, items: torch.Tensor, n_rows: int) -> Pairs:
        """From (row, item) pairs of a block of n_rows rows, repeats allowed (an item had twice counts once)."""
        flat = torch.unique(items * n_rows + rows)  # sorted by item, then row
        return Pairs(flat % n_rows, flat // n_rows)

    def in_block(self, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, columns - lo) of the pairs with lo <= item < hi."""
        bounds = torch.searchsorted(self.items, torch.tensor([lo, hi], device=self.items.device))
        first, last = int(bounds[0]), int(bounds[1])
        return self.rows[first:last], self.items[first:last] - lo


def history_pairs(items: torch.Tensor, first: torch.Tensor, end: torch.Tensor) -> Pairs:
    """The pairs of each row with every item of its history items[first:end] (what is masked or ranked last)."""
    rows, index = concat_ranges(first, end - first)
    return Pairs.of(rows, items[index], len(first))


@torch.no_grad()
def top_k_blocked(scores: ItemScores, k: int, masked: Pairs, block_columns: int | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k best columns of each row outside the `masked` pairs (column 0 is always masked): (B, k) values,
    (B, k) columns (0 where fewer than k are left, value -inf) and (B,) the log of each row's softmax
    denominator over all columns, masked ones included (so exp(value - log_total) is the model's probability).

    Equal scores rank the lower column first, in any blocking."""
    device = masked.items.device
    best_values = torch.full((scores.n_rows, k), float("-inf"), device=device)
    best_columns = torch.zeros((scores.n_rows, k), dtype=torch.long, device=device)
    log_total = torch.full((scores.n_rows,), float("-inf"), device=device)
    buffer = None  # exp of one block, reused by the next of the same shape
    for lo, hi in block_edges(scores.n_columns, scores.n_rows, block_columns):
        block = scores.block(lo, hi, None)                                                  # (B, C)
        buffer = buffer if buffer is not None and buffer.shape == block.shape else torch.empty_like(block)
        log_total = torch.logaddexp(log_total, row_logsumexp(block, buffer))
        rows, columns = masked.in_block(lo, hi)
        block[rows, columns] = float("-inf")
        if lo == 0:
            block[:, 0] = float("-inf")
        values, columns = _block_top_k(block, min(k, hi - lo))
        best_values, best_columns = _merge(best_values, best_columns, values, columns + lo, k)
    best_columns[torch.isneginf(best_values)] = 0
    return best_values, best_columns, log_total


def _block_top_k(block: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.topk of each row, with ties at the k-th value resolved to the lowest columns (topk's own choice
    among equal values is unspecified)."""
    values, columns = torch.topk(block, min(k + 1, block.shape[1]), dim=1)                   # (B, k + 1)
    tied = torch.nonzero(values[:, k] == values[:, k - 1])[:, 0] if values.shape[1] > k else values[:0, 0].long()
    values, columns = values[:, :k], columns[:, :k]  # rows in `tied`: more than k columns reach the k-th value
    if len(tied):
        part, cut = block[tied], values[tied, -1:]
        equal = part == cut
        needed = k - (part > cut).sum(dim=1, keepdim=True)                                    # (R, 1)
        chosen = (part > cut) | (equal & (torch.cumsum(equal, dim=1) <= needed))            # exactly k per row
        picked = torch.nonzero(chosen)[:, 1].view(len(tied), k)                               # (R, k) ascending
        values[tied], columns[tied] = part.gather(1, picked), picked
    return values, columns


def _merge(values: torch.Tensor, columns: torch.Tensor, new_values: torch.Tensor, new_columns: torch.Tensor,
           k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best of two (B, *) candidate sets, by value, then by the lower column."""
    values, columns = torch.cat([values, new_values], dim=1), torch.cat([columns, new_columns], dim=1)
    by_column = torch.argsort(columns, dim=1, stable=True)
    values, columns = values.gather(1, by_column), columns.gather(1, by_column)
    by_value = torch.argsort(values, dim=1, descending=True, stable=True)[:, :k]
    return values.gather(1, by_value), columns.gather(1, by_value)
