"""The model against the baselines: the paired interval, beyond-accuracy figures, slices, baselines ranked under
the model's seen-item rule (hand-built cases)."""
import math

import numpy as np
import pytest
import torch

from core.baselines import evaluate_baselines
from core.beyond import catalogue_figures, head_items, history_slices, sliced_means, top_k_lists
from core.comparison import summarise_targets, target_figures
from core.config import build_config
from core.data import prepare_data
from core.evaluation import evaluate_variants, model_scorer
from core.fit import fit
from core.significance import paired_difference, wilcoxon_signed_rank
from core.split import VALID
from core.tensors import evaluation_targets
from search.comparison_report import comparison_markdown, slice_table
from tests.conftest import HAND_BUILT, hand_built_data


def test_a_known_difference_gives_its_sign_and_width():
    baseline = np.zeros(400)
    model = np.tile([0.0, 0.2], 200)  # differences: mean 0.1, sample std 0.1 * sqrt(400 / 399)
    up = paired_difference(model, baseline, seed=3)
    half = 1.959963984540054 * 0.1 * math.sqrt(400 / 399) / 20
    assert up["difference"] == pytest.approx(0.1)
    assert (up["t_low"], up["t_high"]) == pytest.approx((0.1 - half, 0.1 + half))
    assert up["bootstrap_low"] == pytest.approx(0.1 - half, abs=0.002)
    assert up["bootstrap_high"] == pytest.approx(0.1 + half, abs=0.002)
    assert up["excludes_zero"] and up["wilcoxon_z"] > 10 and up["wilcoxon_p"] < 1e-6
    down = paired_difference(baseline, model, seed=3)  # the same targets the other way round: the mirror image
    assert down["difference"] == pytest.approx(-0.1) and down["excludes_zero"]
    assert (down["bootstrap_low"], down["bootstrap_high"]) == pytest.approx(
        (-up["bootstrap_high"], -up["bootstrap_low"]))
    assert paired_difference(model, baseline, seed=3) == up  # seeded


def test_no_difference_on_average_is_not_called_one():
    model, baseline = np.tile([0.2, 0.0], 200), np.tile([0.0, 0.2], 200)
    even = paired_difference(model, baseline)
    assert even["difference"] == 0 and even["bootstrap_low"] < 0 < even["bootstrap_high"]
    assert not even["excludes_zero"] and even["wilcoxon_p"] == pytest.approx(1.0)


def test_wilcoxon_by_hand_and_with_ties_and_zeros():
    # |d| ranks 1..5, positive ranks 1 + 3 + 4 = 8; mean 7.5, variance 5 * 6 * 11 / 24 = 13.75
    z, p = wilcoxon_signed_rank(np.array([1.0, -2.0, 3.0, 4.0, -5.0]))
    assert z == pytest.approx(0.5 / math.sqrt(13.75))
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))
    # zeros dropped; |d| = 1, 1, 2: ranks 1.5, 1.5, 3; W+ = 1.5 + 3; variance 3 * 4 * 7 / 24 - (8 - 2) / 48
    z, _ = wilcoxon_signed_rank(np.array([0.0, 1.0, -1.0, 2.0]))
    assert z == pytest.approx((4.5 - 3.0) / math.sqrt(3.5 - 0.125))
    assert wilcoxon_signed_rank(np.zeros(4)) == (0.0, 1.0)


def test_paired_difference_refuses_unpaired_input():
    with pytest.raises(ValueError, match="same length"):
        paired_difference(np.zeros(3), np.zeros(4))
    one = paired_difference(np.ones(1), np.zeros(1))  # one target: a difference, but no interval to claim
    assert one["difference"] == 1.0 and math.isnan(one["bootstrap_low"]) and not one["excludes_zero"]


def test_coverage_popularity_and_long_tail_on_five_items():
    counts = np.array([0, 10, 8, 6, 4, 2])  # padding, then items 1..5; the head (top 20%): item 1
    head = head_items(counts)
    assert head.tolist() == [False, True, False, False, False, False]
    lists = np.array([[1, 2], [1, 3], [2, 4]])  # top-2 of three targets
    figures = catalogue_figures(lists, counts, head)
    assert figures["coverage"] == pytest.approx(4 / 5)
    assert figures["mean_popularity"] == pytest.approx((10 + 8 + 10 + 6 + 8 + 4) / 6)
    assert figures["tail_share"] == pytest.approx(4 / 6)


def test_slices_partition_the_targets_and_sum_back_to_the_whole():
    lengths = np.array([1, 2, 3, 5, 6, 20, 21, 100, 4])
    slices = history_slices(lengths)
    assert list(slices) == ["1-2", "3-5", "6-20", ">20"]
    assert np.array_equal(sum(m.astype(int) for m in slices.values()), np.ones(len(lengths), dtype=int))
    values = {"model": np.linspace(0, 1, len(lengths)), "markov": np.arange(len(lengths)) % 2 * 1.0}
    sliced = sliced_means(values, slices)
    assert [row["targets"] for row in sliced.values()] == [2, 3, 2, 2]
    for name, v in values.items():
        assert sum(row["targets"] * row[name] for row in sliced.values()) / len(lengths) == pytest.approx(v.mean())


def test_baselines_rank_seen_items_last_when_the_model_does():
    data = hand_built_data()
    # validation: customer 1 (had 1 2 3) -> 2, customer 2 (had 1 2) -> 3; training counts of 1..4: 2 2 1 2
    kept = evaluate_baselines(build_config(dict(HAND_BUILT, ks=[5], seen_items="keep")), data)
    assert kept["most_popular"]["mrr@5"] == pytest.approx((1 / 3 + 1 / 4) / 2)  # ranks 3 and 4
    assert kept["markov"]["mrr@5"] == pytest.approx((1 / 3 + 1) / 2)
    last = evaluate_baselines(build_config(dict(HAND_BUILT, ks=[5], seen_items="last")), data)
    # customer 1's target was had before: ranked last, a miss; customer 2's 3 moves above the seen 1 and 2
    assert last["most_popular"]["mrr@5"] == pytest.approx(1 / 2 / 2) and last["most_popular"]["hr@5"] == 0.5
    assert last["markov"]["mrr@5"] == pytest.approx(1 / 2)
    chosen = evaluate_baselines(build_config(dict(HAND_BUILT, ks=[5], seen_items="auto")), data, seen_last=True)
    assert chosen == last  # a rule chosen on validation is passed explicitly
    excluded = evaluate_baselines(build_config(dict(HAND_BUILT, ks=[5], exclude_seen=True)), data)
    assert excluded == last


def test_top_k_lists_follow_the_seen_item_rule():
    data = hand_built_data()
    targets = evaluation_targets(data, VALID, max_seq_len=1, device=torch.device("cpu"))
    fixed = torch.tensor([5.0, 0.1, 0.9, 0.5, 0.2])  # padding scores highest: never recommended

    def scorer(inputs, lengths):
        return fixed.expand(len(inputs), -1).clone()
    kept = top_k_lists(scorer, None, (0.0, False), targets, k=2, exclude_seen=False, batch_size=1)
    assert kept.tolist() == [[2, 3], [2, 3]]
    last = top_k_lists(scorer, None, (0.0, True), targets, k=1, exclude_seen=False, batch_size=2)
    assert last.tolist() == [[4], [3]]  # customer 1 had 1 2 3 (the whole history, not the 1-item window)


def test_per_target_figures_of_the_baselines_and_their_summary():
    data = hand_built_data()
    config = build_config(dict(HAND_BUILT, ks=[5], seen_items="last"))
    targets = evaluation_targets(data, VALID, max_seq_len=1, device=torch.device("cpu"))
    figures = target_figures(config, data, targets, [np.array([1.0, 0.0]), np.array([0.0, 0.0])], "val")
    assert figures["model"].tolist() == [0.5, 0.0]  # averaged over the two seeds, per target
    assert figures["markov"].tolist() == pytest.approx([0.0, 1.0])  # a seen target misses; 3 is first after 2
    assert figures["most_popular"].tolist() == pytest.approx([0.0, 1 / math.log2(3)])
    assert figures["history_length"].tolist() == [3, 2] and figures["target_head"].tolist() == [False, False]
    summary = summarise_targets(figures, seeds=2)
    assert summary["paired"]["markov"]["difference"] == pytest.approx(-0.25)
    assert summary["by_history_length"]["1-2"] == {"targets": 1, "model": 0.0, "markov": 1.0,
                                                   "most_popular": pytest.approx(1 / math.log2(3))}
    assert summary["by_target_popularity"]["head"]["targets"] == 0


def test_the_lstm_alone_is_ranked_under_the_chosen_seen_item_rule(tiny_config):
    config = build_config(dict(tiny_config, patience=0, markov_blend=0.5, seen_items="last", epochs=4, max_seq_len=3))
    data = prepare_data(config)
    result = fit(config, data)
    targets = evaluation_targets(data, VALID, config.max_seq_len, torch.device("cpu"))
    alone = evaluate_variants(model_scorer(result.model, blend=False), None, ((0.0, True), (0.0, False)), targets,
                              ks=config.ks, exclude_seen=False, batch_size=64)
    assert result.final["val_lstm_ndcg@5"] == pytest.approx(alone[0.0, True]["ndcg@5"])
    assert alone[0.0, True]["ndcg@5"] < alone[0.0, False]["ndcg@5"]  # this log's customers do rent again


def test_the_report_says_whether_the_interval_excludes_zero():
    figures = {"model": np.tile([0.0, 0.2], 50), "markov": np.zeros(100), "most_popular": np.tile([0.2, 0.0], 50),
               "history_length": np.arange(100), "target_head": np.arange(100) < 20}
    comparison = {**summarise_targets(figures, seeds=3), "seen_items_last": True, "exclude_seen": False,
                  "top_k": 5, "catalogue_of": "mean over 3 seeds", "catalogue": {
                      name: {"coverage": 0.5, "mean_popularity": 10.0, "tail_share": 0.25}
                      for name in ("model", "markov", "most_popular")}}
    comparison["catalogue"]["targets"] = {"mean_popularity": 5.0, "tail_share": 0.4}
    text = "\n".join(comparison_markdown(comparison))
    assert "| Markov (last item) | 0.1000 | 0.0000 | +0.1000 | [" in text and "| yes |" in text
    assert "| most popular | 0.1000 | 0.1000 | +0.0000 |" in text and "| no |" in text
    assert "averaged over its 3 seeds per target" in text and "seen items ranked last" in text
    assert "| history of >20 items | 79 |" in text and "| target in the head | 20 |" in text


def test_an_empty_slice_is_shown_without_a_mean():
    row = {"targets": 0, "model": float("nan"), "markov": float("nan")}
    comparison = {"by_history_length": {"1-2": row, "3-5": {"targets": 4, "model": 0.25, "markov": 0.125}},
                  "by_target_popularity": {"head": {"targets": 4, "model": 0.25, "markov": 0.125}}}
    lines = slice_table(comparison)
    assert lines[2].startswith("| history of 1-2 items | 0 | - | - |") and "nan" not in "".join(lines)
    assert lines[3].endswith("| 0.2500 | 0.1250 |")
