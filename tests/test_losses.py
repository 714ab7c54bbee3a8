"""The sampled training losses (core.losses): exact values and gradients on hand-built cases, the log-Q
correction, accidental hits, and their settings."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from core.config import build_config, check_negatives
from core.errors import ConfigError
from core.data import prepare_data
from core.fit import fit
from core.losses import (SampledLoss, gbce, gbce_beta, mask_hits, negative_sampler, resolve_item_updates,
                         resolve_loss, sampled_softmax)
from core.model import build_model


class FixedDraw:
    """A sampler that always draws the same items with the given inclusion probabilities."""

    def __init__(self, items: list[int], inclusion: list[float]):
        self.items, self.log_inclusion = torch.tensor(items), torch.log(torch.tensor(inclusion))

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items, self.log_inclusion


def tiny_model(n_items: int = 4, hidden_dim: int = 2, markov_residual: bool = False):
    torch.manual_seed(0)
    model = build_model(n_items, 3, hidden_dim, 1, 0.0, markov_residual=markov_residual).eval()
    with torch.no_grad():
        model.output.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, -0.5], [-1.0, 1.0]]))
        model.output.bias.copy_(torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4]))
    return model


def test_sampled_softmax_value_and_gradient_match_a_hand_computed_case():
    model = tiny_model()
    hidden = torch.tensor([[1.0, 2.0]])
    loss_fn = SampledLoss(kind="sampled", sampler=FixedDraw([2, 3], [0.5, 0.25]))
    loss = loss_fn(model, hidden, torch.tensor([4]), torch.tensor([1]))
    loss.backward()
    # by hand: s = W h + b for items 1 (target), 2, 3; negatives lowered by log(inclusion)
    s1, s2, s3 = 1.0 + 0.1, 2.0 + 0.2, 0.5 - 1.0 + 0.3
    z = [s1, s2 - math.log(0.5), s3 - math.log(0.25)]
    p = np.exp(z) / np.exp(z).sum()
    assert loss.item() == pytest.approx(math.log(np.exp(z).sum()) - s1, rel=1e-6)
    h = np.array([1.0, 2.0])
    grad = model.output.weight.grad.numpy()
    np.testing.assert_allclose(grad[1], (p[0] - 1) * h, rtol=1e-5)  # the target: (p - 1) h
    np.testing.assert_allclose(grad[2], p[1] * h, rtol=1e-5)        # a negative: p h
    np.testing.assert_allclose(grad[3], p[2] * h, rtol=1e-5)
    np.testing.assert_allclose(grad[[0, 4]], 0.0)                   # items not drawn get no gradient
    np.testing.assert_allclose(model.output.bias.grad.numpy(), [0, p[0] - 1, p[1], p[2], 0], rtol=1e-5, atol=1e-7)


def test_an_accidental_hit_is_masked_at_its_own_position_only():
    target, negatives = torch.tensor([2.0, 0.5]), torch.tensor([[1.0, 3.0], [1.0, 3.0]])
    items, targets = torch.tensor([4, 7]), torch.tensor([7, 5])  # row 0's target is the second negative
    masked = mask_hits(negatives.clone(), items, targets)
    corrected = masked - torch.log(torch.tensor([0.5, 0.5]))
    loss = sampled_softmax(target, corrected)
    row0 = math.log(math.exp(2.0) + math.exp(1.0) / 0.5) - 2.0
    row1 = math.log(math.exp(0.5) + math.exp(1.0) / 0.5 + math.exp(3.0) / 0.5) - 0.5
    assert loss.item() == pytest.approx(row0 + row1, rel=1e-6)
    assert gbce(target, masked, beta=1.0).item() == pytest.approx(
        math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))
        + math.log1p(math.exp(-0.5)) + math.log1p(math.exp(1.0)) + math.log1p(math.exp(3.0)), rel=1e-6)


def test_a_row_whose_only_negative_is_its_target_keeps_a_finite_loss_and_gradient():
    model = tiny_model()
    hidden = torch.tensor([[1.0, 2.0], [0.5, -1.0]], requires_grad=True)
    loss = SampledLoss(kind="sampled", sampler=FixedDraw([2], [0.5]))(model, hidden, torch.tensor([4, 4]),
                                                                        torch.tensor([2, 1]))
    loss.backward()
    s2_row1 = 0.5 * 0.0 + -1.0 * 1.0 + 0.2 - math.log(0.5)
    s1_row1 = 0.5 * 1.0 + 0.1
    assert loss.item() == pytest.approx(math.log(math.exp(s1_row1) + math.exp(s2_row1)) - s1_row1, rel=1e-5)
    assert torch.isfinite(hidden.grad).all() and hidden.grad[0].abs().sum() == 0  # row 0: target alone, loss 0


def test_the_log_q_correction_makes_the_sampled_sum_an_unbiased_estimate_of_the_full_one():
    counts = np.array([0, 50, 20, 5, 0, 1])  # item 4 never occurs in training: it must still be drawn
    sampler = negative_sampler(counts, negatives=3, alpha=1.0, device=torch.device("cpu"))
    q = (counts[1:] + 1.0) / (counts[1:] + 1.0).sum()
    items, log_inclusion = sampler.draw()
    np.testing.assert_allclose(log_inclusion.numpy(), np.log(1 - (1 - q[items.numpy() - 1]) ** 3), rtol=1e-5)
    torch.manual_seed(0)
    scores = torch.tensor([0.0, 1.0, -0.5, 2.0, 0.3, -1.0])  # exp-sum over items 1..5 by Horvitz-Thompson
    estimates, drawn = [], torch.zeros(6)
    for _ in range(20_000):
        items, log_inclusion = sampler.draw()
        estimates.append(float(torch.exp(scores[items] - log_inclusion).sum()))
        drawn[items] += 1
    assert np.mean(estimates) == pytest.approx(float(scores[1:].exp().sum()), rel=0.02)
    assert drawn[0] == 0 and drawn[4] > 0  # never padding; unseen items too


def test_candidate_logits_are_the_columns_of_the_full_logits_with_the_markov_residual():
    model = tiny_model(markov_residual=True)
    # transitions: 1 -> 2 (3 times), 1 -> 4 (once), 3 -> 1 (twice); CSR by source item
    model.set_markov_table(np.array([0, 0, 2, 2, 3, 3]), np.array([2, 4, 1]), np.array([3.0, 1.0, 2.0]))
    with torch.no_grad():
        model.markov_weight.fill_(0.7)
    hidden, last, targets = torch.randn(3, 2), torch.tensor([1, 3, 1]), torch.tensor([2, 1, 3])
    candidates = torch.tensor([1, 2, 4])
    full = model.logits(hidden, last=last, targets=targets)  # (3, 5), each row's own pair left out
    target_logits, candidate_logits = model.candidate_logits(hidden, candidates, last=last, targets=targets)
    torch.testing.assert_close(target_logits, full[torch.arange(3), targets])
    other = candidates[None, :] != targets[:, None]  # a drawn target is masked by the loss: its own pair stays in
    torch.testing.assert_close(candidate_logits[other], full[:, candidates][other])
    assert candidate_logits[0, 2] > model.output(hidden)[0, 4]  # 1 -> 4 counted once: + 0.7 log 2


def test_gbce_beta_follows_gsasrec():
    assert gbce_beta(negatives=99, n_items=100, t=0.0) == 1.0  # plain BCE
    assert gbce_beta(negatives=9, n_items=101, t=1.0) == pytest.approx(9 / 100)  # beta = sampling rate alpha
    assert gbce_beta(negatives=9, n_items=101, t=0.5) == pytest.approx(0.5 + 0.5 * 9 / 100)


def test_loss_auto_switches_to_the_sampled_softmax_at_large_catalogues():
    assert resolve_loss("auto", 1_000) == "full" and resolve_loss("auto", 1_000_000) == "sampled"
    assert resolve_loss("gbce", 10) == "gbce"


def test_item_tables_get_dense_adam_below_the_sampled_threshold_and_lazy_adam_above():
    assert resolve_item_updates("auto", 12_101) == "dense" and resolve_item_updates("auto", 100_000) == "lazy"
    assert resolve_item_updates("lazy", 10) == "lazy" and resolve_item_updates("dense", 10**6) == "dense"


@pytest.mark.parametrize("item_updates, sparse_rows", [("lazy", True), ("dense", False)])
def test_item_updates_choose_the_item_tables_optimiser(tiny_config, item_updates, sparse_rows):
    data = prepare_data(build_config(dict(tiny_config, loss="sampled", negatives=20)))
    states = []
    fit(build_config(dict(tiny_config, loss="sampled", negatives=20, epochs=1, item_updates=item_updates)), data,
        report=lambda metrics, state: states.append(state))
    assert ("lazy_item_adam" in states[0]["optimizer"]) is sparse_rows


@pytest.mark.parametrize("setting, message", [
    ({"negatives": 0}, "negatives: expected a value >= 1, got 0"),
    ({"loss": "softmax"}, "loss: expected one of full, sampled, gbce, auto, got 'softmax'"),
    ({"sample_alpha": -0.5}, "sample_alpha: expected a value >= 0.0 and <= 1.0, got -0.5"),
])
def test_bad_loss_settings_are_one_line_each(setting, message):
    with pytest.raises(ConfigError) as caught:
        build_config(setting)
    assert str(caught.value).splitlines()[1].strip() == message


def test_more_negatives_than_items_is_one_line_naming_the_catalogue(tiny_config):
    with pytest.raises(ConfigError, match=r"^negatives: expected fewer than the catalogue's 129 items with loss "
                                          r"sampled, got 500 \(or loss: full\)$"):
        fit(build_config(dict(tiny_config, loss="sampled", negatives=500)))
    check_negatives(build_config({"negatives": 500}), 129)  # the full softmax draws nothing


@pytest.mark.parametrize("loss, item_updates", [("sampled", "lazy"), ("gbce", "lazy"), ("sampled", "dense")])
def test_sampled_losses_train_with_every_training_option_and_resume_exactly(tiny_config, loss, item_updates):
    config = dict(tiny_config, loss=loss, negatives=20, markov_residual=True, ema_decay=0.9, batch_by_length=True,
                  window_overlap=0.5, item_updates=item_updates)
    states = []
    data = prepare_data(build_config(config))
    whole = fit(build_config(config), data, report=lambda metrics, state: states.append(copy.deepcopy(state)))
    assert all(math.isfinite(row["train_loss"]) for row in whole.history)
    resumed = fit(build_config(config), data, checkpoint=states[0])
    assert resumed.history[-1]["val_ndcg@5"] == whole.history[-1]["val_ndcg@5"]
    assert resumed.history[-1]["train_loss"] == whole.history[-1]["train_loss"]


def test_a_search_space_may_search_the_loss_and_its_settings(tmp_path):
    from search.space import load_search_spec
    path = tmp_path / "space.yaml"
    path.write_text("space:\n  loss: {choice: [full, sampled, gbce]}\n  negatives: {logint: [100, 3000]}\n"
                    "  sample_alpha: {uniform: [0.0, 1.0]}\n")
    assert load_search_spec(path, build_config({})).space["loss"] == {"choice": ["full", "sampled", "gbce"]}
    path.write_text("space:\n  negatives: {int: [0, 10]}\n")
    with pytest.raises(ConfigError, match="space.negatives: int \\[0, 10\\] allows an invalid value"):
        load_search_spec(path, build_config({}))


def test_a_checkpoint_saved_with_lazy_item_updates_resumes_with_them_whatever_auto_now_picks(tiny_config):
    lazy = dict(tiny_config, loss="sampled", negatives=20, epochs=2, item_updates="lazy")
    data = prepare_data(build_config(lazy))
    states = []
    whole = fit(build_config(lazy), data, report=lambda metrics, state: states.append(copy.deepcopy(state)))
    resumed = fit(build_config(dict(lazy, item_updates="auto")), data, checkpoint=states[0])  # auto: dense here
    assert resumed.history[-1]["train_loss"] == whole.history[-1]["train_loss"]
