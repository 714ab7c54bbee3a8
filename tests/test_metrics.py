import math

import pytest
import torch

from core.metrics import hr_at_k, metric_sums, mrr_at_k, ndcg_at_k, target_ranks


def test_ranks_on_a_hand_built_score_matrix():
    scores = torch.tensor([
        [0.1, 0.9, 0.5, 0.3],   # target 1 is best -> rank 1
        [0.1, 0.9, 0.5, 0.3],   # target 3: 0.9 and 0.5 above -> rank 3
        [0.2, 0.2, 0.2, 0.2],   # constant: all four tie with the target -> rank 4
        [0.0, 0.7, 0.7, 0.1],   # tie with one other item counts against the target -> rank 2
    ])
    ranks = target_ranks(scores, torch.tensor([1, 3, 0, 2]))
    assert ranks.tolist() == [1, 3, 4, 2]


def test_metric_values_from_ranks_are_exact():
    ranks = torch.tensor([1, 2, 3, 6])
    assert hr_at_k(ranks, 5).tolist() == [1, 1, 1, 0]
    assert mrr_at_k(ranks, 5).tolist() == pytest.approx([1, 1 / 2, 1 / 3, 0])
    assert ndcg_at_k(ranks, 5).tolist() == pytest.approx([1, 1 / math.log2(3), 1 / math.log2(4), 0])
    sums = metric_sums(ranks, (1, 5))
    assert sums["hr@1"].item() == 1
    assert sums["ndcg@5"].item() == pytest.approx(1 + 1 / math.log2(3) + 0.5)
    assert sums["mrr@5"].item() == pytest.approx(1 + 0.5 + 1 / 3)


def test_a_constant_model_scores_zero():
    scores = torch.zeros(10, 50)
    ranks = target_ranks(scores, torch.arange(10))
    assert (ranks == 50).all()
    assert all(v.item() == 0 for v in metric_sums(ranks, (5, 10, 20)).values())


def test_nan_or_excluded_targets_are_never_ranked():
    scores = torch.full((3, 6), float("nan"))
    scores[1, 2] = 1.0
    scores[2] = torch.tensor([float("-inf"), float("-inf"), 0.5, 0.1, 0.2, 0.3])
    ranks = target_ranks(scores, torch.tensor([0, 3, 1]))
    assert ranks.tolist() == [7, 7, 7]
    assert hr_at_k(ranks, 6).sum() == 0


def test_ranks_equal_a_naive_loop():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (40, 30), generator=generator).float()  # many ties
    targets = torch.randint(0, 30, (40,), generator=generator)
    expected = []
    for row, target in zip(scores.tolist(), targets.tolist()):
        above = sum(1 for j, s in enumerate(row) if s > row[target])
        tied = sum(1 for j, s in enumerate(row) if s == row[target] and j != target)
        expected.append(1 + above + tied)
    assert target_ranks(scores, targets).tolist() == expected
