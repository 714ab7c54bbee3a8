"""Ranking in item blocks (core.ranking) gives exactly what ranking the whole catalogue at once gives."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.config import build_config
from core.errors import ConfigError
from core.evaluation import evaluate_variants, markov_blend_scorer, model_scorer
from core.metrics import metric_sums
from core.model import build_model
from core.ranking import (
    AtLeastCounter,
    Pairs,
    dense_scores,
    row_logsumexp,
    top_k_blocked,
)
from core.recommend import top_k_items
from core.tensors import EvalTargets, sample_targets

N_ITEMS = 9
BLOCKS = (1, 2, 3, 4, 7, None)  # None: one block; 2, 3 and 4 split the tied items across blocks


def tied_targets(n_customers: int = 12, seed: int = 0) -> tuple[EvalTargets, torch.Tensor, torch.Tensor]:
    """Customers with 2-5 events each, the last one the target; tables of small integer scores per last
    item (exact in fp32, so any summation order gives the same values, with many ties), one row scoring
    an item -inf and one NaN."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 6, (n_customers,), generator=g)
    items = torch.randint(1, N_ITEMS + 1, (int(lengths.sum()),), generator=g)
    first = torch.cumsum(lengths, 0) - lengths
    targets = EvalTargets(items=items, starts=first, lengths=lengths - 1, history_first=first)
    lstm = torch.randint(0, 4, (N_ITEMS + 1, N_ITEMS + 1), generator=g).float()  # scores after each last item
    lstm[3, 5], lstm[4, :] = float("-inf"), float("nan")
    blend = torch.randint(-2, 2, (N_ITEMS + 1, N_ITEMS + 1), generator=g).float()
    return targets, lstm, blend


def by_last(table: torch.Tensor):
    def score(inputs, lengths):
        return table[inputs[torch.arange(len(inputs)), lengths - 1]].clone()  # (B, N + 1)
    return score


def naive_ranks(targets: EvalTargets, scores: torch.Tensor, seen_out: bool) -> torch.Tensor:
    """Per target, one at a time: the items (not padding, not seen if seen_out) scoring >= the target."""
    ranks = []
    for t in range(len(targets)):
        end = int(targets.starts[t] + targets.lengths[t])
        history = set(targets.items[int(targets.history_first[t]):end].tolist())
        answer, row = int(targets.items[end]), scores[t]
        candidates = [j for j in range(1, N_ITEMS + 1) if not (seen_out and j in history)]
        own = float(row[answer])
        if (seen_out and answer in history) or own != own or own == float("-inf"):
            ranks.append(N_ITEMS + 2)
        else:
            ranks.append(sum(float(row[j]) >= own for j in candidates))
    return torch.tensor(ranks)


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_blocked_ranks_equal_a_naive_loop_for_every_variant_and_block_size(exclude_seen):
    targets, lstm, blend = tied_targets()
    last = targets.items[targets.starts + targets.lengths - 1]
    answers = targets.items[targets.starts + targets.lengths]
    variants = ((0.0, False), (0.5, False), (2.0, False), (0.0, True), (0.5, True))
    expected = {}
    for w, seen_last in variants:
        scores = lstm[last] + w * blend[last]
        ranks = naive_ranks(targets, scores, seen_out=exclude_seen or seen_last)
        expected[w, seen_last] = {k: float(v) / len(targets) for k, v in metric_sums(ranks, (1, 3, 5)).items()}
    loss = float(F.cross_entropy(lstm[last], answers, reduction="sum")) / len(targets)
    for block in BLOCKS:
        for batch_size in (1, 5, 64):
            got = evaluate_variants(by_last(lstm), by_last(blend), variants, targets, ks=(1, 3, 5),
                                    exclude_seen=exclude_seen, batch_size=batch_size, with_loss=True,
                                    block_columns=block)
            for variant in variants:
                assert {k: v for k, v in got[variant].items() if k != "loss"} == expected[variant], (block, variant)
            assert got[0.0, False]["loss"] == pytest.approx(loss, rel=1e-6, nan_ok=True)


def test_blocked_loss_is_the_cross_entropy_over_all_items():
    targets, lstm, _ = tied_targets(seed=1)
    lstm[4, :] = 0.5  # no NaN row here
    last = targets.items[targets.starts + targets.lengths - 1]
    answers = targets.items[targets.starts + targets.lengths]
    expected = float(F.cross_entropy(lstm[last], answers, reduction="sum")) / len(targets)
    for block in BLOCKS:
        got = evaluate_variants(by_last(lstm), None, ((0.0, False),), targets, ks=(5,), exclude_seen=False,
                                batch_size=4, with_loss=True, block_columns=block)
        assert got[0.0, False]["loss"] == pytest.approx(expected, rel=1e-6)


def test_the_model_ranks_the_same_in_any_blocking():
    targets, _, _ = tied_targets(n_customers=40, seed=2)
    model = build_model(N_ITEMS, 4, 6, 1, 0.0, markov_residual=True, markov_blend=True)
    model.set_markov_table(np.array([0, 0, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3]), np.array([2, 5, 3]), np.array([2, 1, 4]),
                           np.arange(N_ITEMS + 1))
    variants = ((0.0, False), (0.25, False), (1.0, True))
    runs = [evaluate_variants(model_scorer(model, blend=False), markov_blend_scorer(model), variants, targets,
                              ks=(1, 5), exclude_seen=False, batch_size=16, with_loss=True, block_columns=block)
            for block in BLOCKS]
    for run in runs[:-1]:
        for variant in variants:
            assert {k: v for k, v in run[variant].items() if k != "loss"} == \
                {k: v for k, v in runs[-1][variant].items() if k != "loss"}
            assert run[variant]["loss"] == pytest.approx(runs[-1][variant]["loss"], rel=1e-6)


def test_top_k_kernel_equals_a_naive_sort_with_ties_and_masked_items():
    scores = torch.tensor([
        [9.0, 1.0, 3.0, 3.0, 2.0, 3.0, 0.5, 3.0],  # column 0 is padding: never recommended, however high
        [0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0],  # all tied: lowest columns first
        [0.0, 5.0, 4.0, 4.0, 1.0, 4.0, 4.0, 0.0],  # 1 and 3 masked (seen)
        [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # only 1 and 2 left: the rest is masked
    ])
    masked = Pairs.of(torch.tensor([2, 2, 3, 3, 3, 3, 3]), torch.tensor([1, 3, 3, 4, 5, 6, 7]), 4)
    seen = {(2, 1), (2, 3), (3, 3), (3, 4), (3, 5), (3, 6), (3, 7)}
    k = 3
    expected = []
    for row in range(4):
        kept = [c for c in range(1, 8) if (row, c) not in seen]
        expected.append((sorted(kept, key=lambda c: (-float(scores[row, c]), c)) + [0] * k)[:k])
    assert expected == [[2, 3, 5], [1, 2, 3], [2, 5, 6], [1, 2, 0]]
    log_total = torch.logsumexp(scores, dim=1)  # over every column, masked ones included
    for block in BLOCKS:
        values, columns, total = top_k_blocked(dense_scores(scores), k, masked, block)
        assert columns.tolist() == expected, block
        assert torch.allclose(total, log_total)
        assert torch.isneginf(values[3, 2]) and (values[:3] == scores.gather(1, columns[:3])).all()


def test_the_export_is_the_same_with_and_without_blocks():
    torch.manual_seed(0)
    model = build_model(30, 4, 6, 1, 0.0, markov_blend=True)
    model.set_markov_table(np.r_[np.zeros(2, int), np.full(30, 2)], np.array([4, 7]), np.array([3, 1]),
                           np.arange(31))
    model.blend_weight.fill_(0.5)
    g = np.random.default_rng(0)
    user_start = np.r_[0, np.cumsum(g.integers(1, 12, 50))]
    items = g.integers(1, 31, user_start[-1])
    for include_seen in (False, True):
        whole = top_k_items(model, items, user_start, np.arange(50), k=10, max_seq_len=5, include_seen=include_seen)
        for block in (1, 4, 7):
            ids, scores = top_k_items(model, items, user_start, np.arange(50), k=10, max_seq_len=5,
                                      include_seen=include_seen, batch_size=16, block_columns=block)
            assert (ids == whole[0]).all()
            assert np.allclose(scores, whole[1], rtol=1e-6, atol=0)


def test_val_sample_is_a_fixed_seeded_subset_in_order_and_bad_sizes_are_refused():
    targets, _, _ = tied_targets(n_customers=30)
    sample = sample_targets(targets, 7)
    again = sample_targets(targets, 7)
    assert len(sample) == 7 and torch.equal(sample.starts, again.starts)
    assert (torch.diff(sample.starts) > 0).all() and set(sample.starts.tolist()) <= set(targets.starts.tolist())
    assert sample_targets(targets, 0) is targets and sample_targets(targets, 30) is targets
    with pytest.raises(ConfigError, match="val_sample"):
        build_config({"val_sample": -1})


@pytest.mark.parametrize("rows, columns", [(1, 1), (3, 7), (5, 2040), (4, 2041), (2, 70_000)])
def test_the_word_counter_counts_every_score_at_or_above_the_threshold(rows, columns):
    # 70,000 columns of True put up to 255 in every byte lane of a word sum: a lane overflow would show
    generator = torch.Generator().manual_seed(columns)
    counter = AtLeastCounter(rows, columns, torch.device("cpu"))
    scores = torch.randn(rows, columns, generator=generator)
    scores[0, : columns // 2] = float("-inf")
    drawn = torch.randn(rows, generator=generator)
    for threshold in (drawn, torch.full((rows,), float("-inf")), torch.tensor([float("nan")] * rows)):
        expected = (scores >= threshold[:, None]).sum(dim=1).int()
        assert torch.equal(counter.count(scores, threshold), expected)
    narrower = scores[:, : columns // 2 + 1]  # a narrower block after a wider one: no stale flags counted
    assert torch.equal(counter.count(narrower, drawn), (narrower >= drawn[:, None]).sum(dim=1).int())


def test_row_logsumexp_is_torchs_logsumexp_with_rows_of_minus_and_plus_infinity():
    block = torch.randn(5, 300, generator=torch.Generator().manual_seed(1)) * 20
    block[1] = float("-inf")
    block[2, :150] = float("-inf")
    block[3, 7] = float("inf")
    got = row_logsumexp(block, torch.empty_like(block))
    expected = torch.logsumexp(block, dim=1)
    assert got[1] == float("-inf") and got[3] == float("inf")
    assert torch.allclose(got, expected, rtol=1e-6, atol=0)
    assert torch.equal(row_logsumexp(block), got)


def test_a_blocks_followers_are_the_whole_rows_followers_in_its_range_and_follow_a_new_table():
    model = build_model(N_ITEMS, 4, 6, 1, 0.0, markov_blend=True)
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(1, N_ITEMS + 1, 40) * (N_ITEMS + 1) + rng.integers(1, N_ITEMS + 1, 40))
    source, follower = pairs // (N_ITEMS + 1), pairs % (N_ITEMS + 1)
    indptr = np.searchsorted(source, np.arange(N_ITEMS + 2))
    model.set_markov_table(indptr, follower, np.ones(len(pairs)), np.ones(N_ITEMS + 1))
    last = torch.tensor([1, 4, 4, 0, N_ITEMS, 7])

    def expected(lo, hi):
        rows, index = model._followers(last)
        inside = (model.markov_follower[index] >= lo) & (model.markov_follower[index] < hi)
        return rows[inside].tolist(), index[inside].tolist()

    for lo, hi in [(0, 3), (3, 4), (4, N_ITEMS + 1), (2, 2)]:
        rows, index = model._followers(last, lo, hi)
        assert (rows.tolist(), index.tolist()) == expected(lo, hi)
    model.set_markov_table(indptr[:1].repeat(N_ITEMS + 2), follower[:0], np.ones(0), np.ones(N_ITEMS + 1))
    assert model._followers(last, 0, 5)[0].tolist() == []  # the cached search keys went with the old table
