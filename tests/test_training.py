import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from core.baselines import evaluate_baselines, item_counts, markov_scorer, markov_table, popularity_scorer
from core.batching import batch_indices, length_batches
from core.config import build_config
from core.data import prepare_data
from core.epoch import DivergedError, train_epoch
from core.errors import ConfigError
from core.evaluation import evaluate, evaluate_variants, markov_blend_scorer, model_scorer
from core.fit import fit
from core.model import BLEND_ALPHA, build_model
from core.protocol import choose_on_validation
from core.samples import eval_targets, prefix_samples, training_windows
from core.split import TRAIN, VALID
from core.tensors import TrainingSamples, evaluation_targets, training_samples
from core.validation import BLEND_WEIGHTS
from tests.conftest import HAND_BUILT, hand_built_data, interactions


def test_model_shapes_and_padding():
    model = build_model(n_items=30, embed_dim=4, hidden_dim=6, num_layers=2, dropout=0.1)
    hidden = model(torch.tensor([[1, 2, 0], [3, 0, 0]]))
    assert hidden.shape == (2, 3, 6)
    assert model.logits(hidden).shape == (2, 3, 31)
    assert model.embedding.weight[0].abs().sum() == 0


def test_fit_reports_every_epoch_and_is_deterministic(tiny_config):
    data = prepare_data(build_config(tiny_config))
    reports = []
    first = fit(build_config(tiny_config), data, report=lambda metrics, state: reports.append((metrics, state)))
    second = fit(build_config(tiny_config), data)
    assert [m["epoch"] for m, _ in reports] == [1, 2]
    assert {"train_loss", "val_loss", "val_hr@5", "val_mrr@10", "val_ndcg@20"} <= set(reports[0][0])
    assert set(reports[0][1]) >= {"epoch", "model", "optimizer", "config"}
    strip = lambda h: [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in h]
    assert strip(first.history) == strip(second.history)


def test_resuming_from_a_reported_state_repeats_the_uninterrupted_run(tiny_config):
    config = dict(tiny_config, epochs=3, dropout=0.3)
    data = prepare_data(build_config(config))
    states = []
    straight = fit(build_config(config), data, report=lambda metrics, state: states.append(copy.deepcopy(state)))
    resumed = fit(build_config(config), data, checkpoint=states[0])
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert resumed.final["val_ndcg@5"] == straight.final["val_ndcg@5"]
    assert resumed.final["train_loss"] == straight.final["train_loss"]


def test_every_position_of_a_window_is_one_prefix_sample(tiny_config):
    """With windows long enough to hold whole sequences, the all-positions loss is the mean prefix loss."""
    data = prepare_data(build_config(tiny_config))
    longest = int(np.diff(data.user_start).max())
    losses = {}
    for mode in ("all_positions", "prefix"):
        torch.manual_seed(0)
        model = build_model(data.n_items, 8, 16, 1, 0.0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        samples = training_samples(data, mode, longest, TRAIN, 0.0, torch.device("cpu"))
        losses[mode] = train_epoch(model, optimizer, samples, batch_size=10_000,
                                   generator=torch.Generator().manual_seed(0))
    assert losses["all_positions"] == pytest.approx(losses["prefix"], rel=1e-5)


def test_windows_with_full_overlap_train_exactly_the_prefix_samples(tiny_config):
    """Stride 1: one target per window with max_seq_len items of context, the notebook's samples."""
    data = prepare_data(build_config(tiny_config))
    items = torch.as_tensor(data.items)

    def zero_lr_loss(mode, starts, lengths, loss_from=None):
        torch.manual_seed(0)
        model = build_model(data.n_items, 8, 16, 1, 0.0)
        samples = TrainingSamples(items=items, starts=starts, lengths=lengths, loss_from=loss_from, mode=mode)
        return train_epoch(model, torch.optim.SGD(model.parameters(), lr=0.0), samples,
                           batch_size=10_000, generator=torch.Generator().manual_seed(0))

    windows = (torch.as_tensor(a) for a in training_windows(data, 6, TRAIN, overlap=0.95))
    prefixes = (torch.as_tensor(a) for a in prefix_samples(data, 6, TRAIN))
    assert zero_lr_loss("all_positions", *windows) == pytest.approx(zero_lr_loss("prefix", *prefixes), rel=1e-5)


def test_length_batches_serve_every_sample_once_and_pad_less_than_random_batches():
    lengths = torch.tensor([1, 9, 2, 8, 3, 7, 4, 6, 5, 10] * 30)
    batches = list(length_batches(lengths, batch_size=10, generator=torch.Generator().manual_seed(0), chunk_batches=3))
    assert sorted(torch.cat(batches).tolist()) == list(range(300))
    padded = sum(10 * int(lengths[b].max()) for b in batches)
    random_padded = sum(10 * int(lengths[b].max()) for b in batch_indices(300, 10, torch.Generator().manual_seed(0)))
    assert padded < 0.75 * random_padded
    again = length_batches(lengths, batch_size=10, generator=torch.Generator().manual_seed(0), chunk_batches=3)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


class GradientRecorder:
    """An optimiser that only adds up the gradients of every step."""

    def __init__(self, params):
        self.params = list(params)
        self.total = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    def step(self):
        for total, p in zip(self.total, self.params):
            total += p.grad


@pytest.mark.parametrize("mode", ["all_positions", "prefix"])
def test_batches_by_length_weigh_every_target_the_same(tiny_config, mode):
    """Summed over an epoch, the gradients of length batches are those of the summed loss of every target,
    divided by the mean targets per batch: a short window's targets weigh what a long one's do."""
    data = prepare_data(build_config(tiny_config))
    samples = training_samples(data, mode, 5, TRAIN, 0.0, torch.device("cpu"))
    assert len(set(samples.lengths.tolist())) > 1
    torch.manual_seed(0)
    model = build_model(data.n_items, 8, 16, 1, 0.0)
    recorder = GradientRecorder(model.parameters())
    loss = train_epoch(model, recorder, samples, batch_size=4, generator=torch.Generator().manual_seed(0),
                       by_length=True)
    whole = GradientRecorder(model.parameters())
    reference = train_epoch(model, whole, samples, batch_size=len(samples), generator=torch.Generator())
    assert loss == pytest.approx(reference, rel=1e-5)  # the reported loss: the mean per target either way
    scale = len(samples) / 4  # batches of 4: the mean over all targets times the number of batches
    for by_length, full in zip(recorder.total, whole.total):
        torch.testing.assert_close(by_length, full * scale, rtol=1e-4, atol=1e-6)


def test_evaluation_targets_are_every_target_once_ordered_by_history_length(tiny_config):
    data = prepare_data(build_config(tiny_config))
    targets = evaluation_targets(data, VALID, 4, torch.device("cpu"))
    assert torch.all(targets.lengths[1:] >= targets.lengths[:-1])
    starts, lengths = eval_targets(data, VALID, 4)
    pairs = sorted(zip(targets.starts.tolist(), targets.lengths.tolist()))
    assert pairs == sorted(zip(starts.tolist(), lengths.tolist()))
    assert len(set(lengths.tolist())) > 1


def test_a_nan_loss_stops_training_with_a_clear_error(tiny_config):
    data = prepare_data(build_config(tiny_config))
    model = build_model(data.n_items, 8, 16, 1, 0.0)
    with torch.no_grad():
        model.output.bias.fill_(float("nan"))
    samples = training_samples(data, "all_positions", 8, TRAIN, 0.0, torch.device("cpu"))
    with pytest.raises(DivergedError, match="loss became nan"):
        train_epoch(model, torch.optim.Adam(model.parameters()), samples, batch_size=64, generator=torch.Generator())


def test_prepared_data_must_match_the_config(tiny_config):
    data = prepare_data(build_config(tiny_config))
    with pytest.raises(ConfigError, match="synthetic_seed: config 1 vs data 0"):
        fit(build_config(dict(tiny_config, synthetic_seed=1)), data)


def test_evaluation_excludes_the_whole_seen_history_not_only_the_window():
    data = hand_built_data()
    targets = evaluation_targets(data, VALID, max_seq_len=1, device=torch.device("cpu"))
    fixed = torch.tensor([0.0, 0.1, 0.9, 0.5, 0.2])  # item 2 is best, then 3, then 4, then 1

    def scorer(inputs, lengths):
        return fixed.expand(len(inputs), -1).clone()
    kept = evaluate(scorer, targets, ks=(1,), exclude_seen=False, batch_size=2)
    # targets: 2 (rank 1) for customer 1, 3 (rank 2) for customer 2
    assert kept == {"hr@1": 0.5, "mrr@1": 0.5, "ndcg@1": 0.5}
    dropped = evaluate(scorer, targets, ks=(1, 5), exclude_seen=True, batch_size=1)
    # customer 1 already had 2 (outside the 1-item window): a miss; customer 2's 1 and 2 are removed: 3 is first
    assert dropped["hr@1"] == 0.5 and dropped["hr@5"] == 0.5


def test_baselines_on_hand_built_data():
    data = hand_built_data()
    inputs = torch.tensor([[3], [2]])
    popular = popularity_scorer(data, TRAIN, torch.device("cpu"))(inputs, torch.tensor([1, 1])).block(0, 5, None)
    assert popular[0].tolist() == [0, 2, 2, 1, 2]  # training counts of items 0..4
    blocks = markov_scorer(data, TRAIN, torch.device("cpu"))(inputs, torch.tensor([1, 1]))
    markov = blocks.block(0, 5, None)
    assert torch.equal(blocks.block(2, 4, torch.tensor([1])), markov[1:, 2:4])  # one item block, one row
    # after 3 nothing was seen in training: popularity only (scaled below 1); after 2, item 3 followed once
    assert markov[0].tolist() == pytest.approx([0, 2 / 8, 2 / 8, 1 / 8, 2 / 8])
    assert markov[1].tolist() == pytest.approx([0, 2 / 8, 2 / 8, 1 + 1 / 8, 2 / 8])
    scores = evaluate_baselines(build_config(dict(HAND_BUILT, ks=[1])), data)
    # targets: customer 1 after 3 -> 2 (ties 1, 2, 4 at 2/8: rank 3), customer 2 after 2 -> 3 (rank 1)
    assert scores["markov"]["hr@1"] == 0.5
    assert scores["most_popular"]["hr@1"] == 0.0


def test_patience_stops_after_the_peak_and_keeps_the_best_epochs_weights(tiny_config):
    config = build_config(dict(tiny_config, epochs=40, patience=2, lr=0.05, dropout=0.0))
    data = prepare_data(config)
    result = fit(config, data)
    scores = [row["val_ndcg@5"] for row in result.history]
    assert len(scores) < 40, "the tiny model should overfit and stop early"
    assert result.best_epoch == 1 + scores.index(max(scores)) == len(scores) - 2
    assert result.best == result.history[result.best_epoch - 1]
    targets = evaluation_targets(data, VALID, config.max_seq_len, torch.device("cpu"))
    again = evaluate(model_scorer(result.model), targets, ks=config.ks, exclude_seen=False, batch_size=512)
    assert again["ndcg@5"] == pytest.approx(max(scores), abs=1e-6)  # the model returned is the best epoch's


def test_patience_survives_a_resume(tiny_config):
    config = build_config(dict(tiny_config, epochs=40, patience=2, lr=0.05, dropout=0.0))
    data = prepare_data(config)
    states = []
    straight = fit(config, data, report=lambda metrics, state: states.append(copy.deepcopy(state)))
    resumed = fit(config, data, checkpoint=states[straight.best_epoch])  # one epoch after the peak
    assert resumed.best_epoch == straight.best_epoch and len(resumed.history) == len(straight.history)
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(a, b)


def test_scores_are_fp32_inside_a_bf16_autocast_region(tiny_config):
    data = prepare_data(build_config(tiny_config))
    model = build_model(data.n_items, 8, 16, 1, 0.0)
    inputs, lengths = torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2])
    plain = model_scorer(model)(inputs, lengths).block(0, data.n_items + 1, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = model_scorer(model)(inputs, lengths).block(0, data.n_items + 1, None)
        assert model.output(torch.ones(1, 16)).dtype == torch.bfloat16  # autocast is really on here
    assert inside.dtype == torch.float32 and torch.equal(plain, inside)


def test_targets_that_repeat_an_earlier_item_are_counted():
    stats = hand_built_data().stats  # validation: customer 1 rents 2 again, customer 2 rents 3 for the first time
    assert (stats["val_targets"], stats["val_repeat_targets"], stats["test_repeat_targets"]) == (2, 1, 0)


def test_the_markov_residual_adds_w_log1p_counts_and_leaves_the_own_pair_out_in_training():
    data = hand_built_data()  # training transitions: 1->2 twice, 2->3 once, 4->4 once
    model = build_model(data.n_items, 4, 6, 1, 0.0, markov_residual=True)
    model.set_markov_table(*markov_table(data, TRAIN))
    with torch.no_grad():
        model.markov_weight.fill_(2.0)
    hidden, last = torch.randn(3, 6), torch.tensor([1, 2, 3])
    plain = model.output(hidden)
    added = model.logits(hidden, last=last) - plain
    expected = torch.zeros(3, 5)
    expected[0, 2], expected[1, 3] = 2 * math.log(3), 2 * math.log(2)  # after 3: nothing followed in training
    assert torch.allclose(added, expected, atol=1e-6)
    training = model.logits(hidden, last=last, targets=torch.tensor([2, 3, 1])) - plain
    expected[0, 2], expected[1, 3] = 2 * math.log(2), 0.0  # each position's own pair counted once less
    assert torch.allclose(training, expected, atol=1e-6)
    with torch.no_grad():  # item blocks (blocked ranking, export) agree with the whole row
        blocks = torch.cat([model.logits_block(hidden, last, lo, min(lo + 2, 5)) for lo in range(0, 5, 2)], dim=1)
        assert torch.allclose(blocks, model.logits(hidden, last=last), atol=1e-6)


def test_the_markov_blend_adds_w_log_of_the_smoothed_transitions_and_item_blocks_agree():
    data = hand_built_data()  # training transitions: 1->2 twice, 2->3 once, 4->4 once; item counts 2, 2, 1, 2
    model = build_model(data.n_items, 4, 6, 1, 0.0, markov_residual=True, markov_blend=True)
    model.set_markov_table(*markov_table(data, TRAIN), item_counts(data, TRAIN))
    prior = (np.array([0, 2, 2, 1, 2]) + 1) / (7 + 4)  # add-one popularity over the 4 items
    counts = torch.zeros(3, 5, dtype=torch.float64)
    counts[0, 2], counts[1, 3] = 2, 1
    last = torch.tensor([1, 2, 3])
    # log((count + ALPHA p) / (n_last + ALPHA)) up to the row constant log(n_last + ALPHA)
    expected = torch.log(counts + BLEND_ALPHA * torch.as_tensor(prior)).float()
    assert torch.allclose(model.markov_log_probs(last), expected, atol=1e-6)
    hidden = torch.randn(3, 6)
    with torch.no_grad():
        model.blend_weight.fill_(0.5)
        assert torch.allclose(model.scores(hidden, last) - model.logits(hidden, last=last), 0.5 * expected, atol=1e-6)
        blocks = torch.cat([model.scores_block(hidden, last, lo, min(lo + 2, 5)) for lo in range(0, 5, 2)], dim=1)
        assert torch.allclose(blocks, model.scores(hidden, last), atol=1e-6)  # item blocks: residual and blend


def test_blend_weights_are_evaluated_in_one_pass_with_exact_metrics():
    data = hand_built_data()
    model = build_model(data.n_items, 4, 6, 1, 0.0, markov_blend=True)
    model.set_markov_table(*markov_table(data, TRAIN), item_counts(data, TRAIN))
    targets = evaluation_targets(data, VALID, max_seq_len=1, device=torch.device("cpu"))
    fixed = torch.tensor([0.0, 0.1, 0.5, 0.4, 0.9])  # the "LSTM": 4, then 2, then 3, then 1

    def lstm(inputs, lengths):
        return fixed.expand(len(inputs), -1).clone()
    # targets: after 3 -> 2 (rank 2 for any w: 1, 2, 4 share a prior), after 2 -> 3 (the only follower of 2):
    # rank 3 alone; beats item 2 for w > 0.068 and item 4 for w > 0.341
    variants = ((0.0, False), (0.1, False), (0.5, False), (0.0, True))
    got = evaluate_variants(lstm, markov_blend_scorer(model), variants, targets, ks=(1, 5), exclude_seen=False,
                            batch_size=1)
    assert [got[v]["mrr@5"] for v in variants[:3]] == pytest.approx([(1 / 2 + 1 / 3) / 2, 1 / 2, 3 / 4])
    assert [got[v]["hr@1"] for v in variants[:3]] == [0.0, 0.0, 0.5]
    assert got[0.0, False] == evaluate(lstm, targets, ks=(1, 5), exclude_seen=False, batch_size=1)
    # seen items last: customer 1 already had 2 (a miss), customer 2's 1 and 2 go last: 3 is second after 4
    assert got[0.0, True] == evaluate(lstm, targets, ks=(1, 5), exclude_seen=True, batch_size=1)
    assert got[0.0, True]["mrr@5"] == pytest.approx(1 / 4)


def test_markov_blend_auto_chooses_the_weight_on_validation_and_keeps_it_with_the_best_epoch(tiny_config):
    config = build_config(dict(tiny_config, epochs=6, patience=2, markov_blend="auto", seen_items="keep"))
    data = prepare_data(config)
    result = fit(config, data)
    assert all(row["markov_blend"] in BLEND_WEIGHTS for row in result.history)
    assert all(row["val_ndcg@5"] >= row["val_lstm_ndcg@5"] for row in result.history)  # 0 is among the weights
    assert float(result.model.blend_weight) == pytest.approx(result.best["markov_blend"])
    targets = evaluation_targets(data, VALID, config.max_seq_len, torch.device("cpu"))
    again = evaluate(model_scorer(result.model), targets, ks=config.ks, exclude_seen=False, batch_size=512)
    assert again["ndcg@5"] == pytest.approx(result.best["val_ndcg@5"], abs=1e-6)
    with pytest.raises(ConfigError, match="markov_blend and seen_items: auto is chosen on validation"):
        fit(config, data, evaluate_on="test")
    chosen = choose_on_validation(config, data)
    assert (chosen.epochs, chosen.markov_blend) == (result.best_epoch, result.best["markov_blend"])


def test_markov_blend_off_builds_the_plain_model(tiny_config):
    result = fit(build_config(dict(tiny_config, markov_blend=0)), prepare_data(build_config(tiny_config)))
    assert not result.model.markov_blend and result.final["markov_blend"] == 0.0
    assert "blend_weight" not in result.model.state_dict()


def test_seen_items_auto_ranks_them_last_on_a_log_where_nobody_repeats_an_item():
    rng = np.random.default_rng(0)
    rows = [(user, time, int(item)) for user in range(1, 81)
            for time, item in enumerate(rng.choice(np.arange(1, 31), size=8, replace=False), start=1)]
    config = build_config({"split": "leave_one_out", "embed_dim": 8, "hidden_dim": 8, "epochs": 1, "patience": 0,
                           "markov_blend": 0, "seen_items": "auto", "max_seq_len": 8})
    data = prepare_data(config, interactions(rows))
    result = fit(config, data)
    # no target repeats an item, so ranking seen items last can only lift targets: chosen unless it ties
    assert result.best["seen_last"] == 1.0
    assert result.best["val_lstm_ndcg@5"] == result.best["val_ndcg@5"]  # blend 0: the LSTM alone, ranked alike
    assert choose_on_validation(config, data).seen_items == "last"
    kept = fit(dataclasses.replace(config, seen_items="keep"), data).best
    assert kept["seen_last"] == 0.0 and kept["val_ndcg@5"] < result.best["val_ndcg@5"]
    assert kept["val_lstm_ndcg@5"] == kept["val_ndcg@5"]


def test_embedding_dropout_acts_in_training_only():
    torch.manual_seed(0)
    dropped = build_model(n_items=30, embed_dim=8, hidden_dim=6, num_layers=1, dropout=0.0, embed_dropout=0.5)
    plain = build_model(n_items=30, embed_dim=8, hidden_dim=6, num_layers=1, dropout=0.0)
    plain.load_state_dict(dropped.state_dict())  # dropout has no weights: the same model otherwise
    items = torch.randint(1, 31, (4, 5))
    dropped.train()
    assert not torch.allclose(dropped(items), dropped(items))
    dropped.eval()
    plain.eval()
    assert torch.equal(dropped(items), plain(items))
    with pytest.raises(ConfigError, match="embed_dropout: expected a value >= 0.0 and < 1.0, got 1.0"):
        build_config({"embed_dropout": 1.0})


def test_the_moving_average_of_the_weights_is_what_is_evaluated_kept_and_resumed(tiny_config):
    config = dict(tiny_config, epochs=3, lr=0.01)
    data = prepare_data(build_config(config))
    plain = fit(build_config(config), data)
    # a decay of ~0 makes the average the latest weights: the run is the plain one
    latest = fit(build_config(dict(config, ema_decay=1e-9)), data)
    assert [row["val_ndcg@5"] for row in latest.history] == pytest.approx([row["val_ndcg@5"] for row in plain.history])
    states = []
    averaged = fit(build_config(dict(config, ema_decay=0.9)), data, report=lambda m, state: states.append(copy.deepcopy(state)))
    assert averaged.final["val_loss"] != pytest.approx(plain.final["val_loss"])
    assert averaged.final["train_loss"] == plain.final["train_loss"]  # training itself is unchanged
    trained, kept = states[-1]["model"], dict(averaged.model.named_parameters())
    assert all(not torch.equal(trained[name], value) for name, value in kept.items())  # kept: the average
    resumed = fit(build_config(dict(config, ema_decay=0.9)), data, checkpoint=states[0])
    assert resumed.final["val_ndcg@5"] == averaged.final["val_ndcg@5"]
    assert all(torch.equal(value, dict(resumed.model.named_parameters())[name]) for name, value in kept.items())
