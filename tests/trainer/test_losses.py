"""Each training loss against a value computed by hand on a tiny input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from roadwork.trainer.loop.losses import (
    LossWeights,
    consistency_loss,
    dice_loss,
    focal_loss,
    smooth_targets,
    total_loss,
    weather_loss,
)

LOGITS = torch.tensor([0.0, 2.0, -1.0, 3.0])
TARGETS = torch.tensor([1.0, 0.0, 0.0, 1.0])


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# --- focal


def test_focal_with_gamma_0_and_alpha_half_is_half_bce() -> None:
    bce = F.binary_cross_entropy_with_logits(LOGITS, TARGETS)
    assert float(focal_loss(LOGITS, TARGETS, gamma=0.0, alpha=0.5)) == pytest.approx(0.5 * float(bce))
    assert float(focal_loss(LOGITS, TARGETS, gamma=0.0)) == pytest.approx(float(bce))


def test_focal_by_hand() -> None:
    # logit 0, target 1: p_t = 0.5, BCE = ln 2; logit 2, target 0: p_t = 1 - sigmoid(2), BCE = -ln(1 - sigmoid(2))
    p = sigmoid(2.0)
    gamma, alpha = 2.0, 0.25
    expected = (alpha * 0.5**gamma * math.log(2) + (1 - alpha) * p**gamma * -math.log(1 - p)) / 2
    got = focal_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]), gamma=gamma, alpha=alpha)
    assert float(got) == pytest.approx(expected)


def test_focal_down_weights_easy_examples() -> None:
    easy = focal_loss(torch.tensor([6.0]), torch.tensor([1.0]), gamma=2.0)
    hard = focal_loss(torch.tensor([-1.0]), torch.tensor([1.0]), gamma=2.0)
    bce_easy = F.binary_cross_entropy_with_logits(torch.tensor([6.0]), torch.tensor([1.0]))
    assert float(easy) < 1e-3 * float(bce_easy)
    assert float(hard) > 0.3


def test_label_smoothing_moves_targets_to_eps_over_2() -> None:
    torch.testing.assert_close(smooth_targets(torch.tensor([0.0, 1.0]), 0.2), torch.tensor([0.1, 0.9]))
    smoothed = F.binary_cross_entropy_with_logits(LOGITS, torch.tensor([0.95, 0.05, 0.05, 0.95]))  # TARGETS, eps 0.1
    assert float(focal_loss(LOGITS, TARGETS, gamma=0.0, label_smoothing=0.1)) == pytest.approx(float(smoothed))


def test_focal_is_finite_on_saturated_logits() -> None:
    loss = focal_loss(torch.tensor([100.0, -100.0]), torch.tensor([0.0, 1.0]), gamma=2.0, label_smoothing=0.1)
    assert math.isfinite(float(loss))


# --- multi-view consistency


def test_consistency_is_zero_when_views_agree() -> None:
    agreeing = torch.tensor([[1.5] * 8, [-0.3] * 8])
    assert float(consistency_loss(agreeing)) == pytest.approx(0.0, abs=1e-7)


def test_consistency_by_hand() -> None:
    # p = (0.5, 0.75), mean 0.625; KL(p || mean) of each Bernoulli, averaged over the two views
    m = 0.625
    kl_a = 0.5 * math.log(0.5 / m) + 0.5 * math.log(0.5 / (1 - m))
    kl_b = 0.75 * math.log(0.75 / m) + 0.25 * math.log(0.25 / (1 - m))
    got = consistency_loss(torch.tensor([[0.0, math.log(3.0)]]))
    assert float(got) == pytest.approx((kl_a + kl_b) / 2, rel=1e-5)


def test_consistency_is_finite_and_positive_for_saturated_disagreement() -> None:
    logits = torch.tensor([[60.0, -60.0, 0.0]], requires_grad=True)
    loss = consistency_loss(logits)
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() > 0.1
    assert torch.isfinite(logits.grad).all()


# --- auxiliary weather


def test_weather_loss_ignores_missing_labels() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0], [5.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.5, 0.0, 1.0]])
    labels = torch.tensor([2, 0, -100, 1])
    expected = F.cross_entropy(logits[[0, 3]], labels[[0, 3]])
    assert float(weather_loss(logits, labels)) == pytest.approx(float(expected))


def test_weather_loss_is_zero_without_any_label() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    loss = weather_loss(logits, torch.tensor([0, -100, 0]))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


# --- segmentation Dice


def test_dice_of_identical_masks_is_zero_and_of_disjoint_masks_about_one() -> None:
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8] = 1.0  # left half
    logits_for = lambda m: (m * 2 - 1) * 50.0  # noqa: E731  (sigmoid -> 0 or 1 exactly)
    assert float(dice_loss(logits_for(mask), mask)) == pytest.approx(0.0, abs=1e-6)
    disjoint = 1.0 - mask
    # |P.T| = 0, |P| = |T| = 128: 1 - 1 / (256 + 1) with smooth = 1
    assert float(dice_loss(logits_for(disjoint), mask)) == pytest.approx(1 - 1 / 257, abs=1e-6)


def test_dice_by_hand_with_soft_predictions() -> None:
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])  # probabilities 0.5, 0.75
    masks = torch.tensor([[[0.0, 1.0]]])  # (B, H, W)
    expected = 1 - (2 * 0.75 + 1) / (1.25 + 1 + 1)
    assert float(dice_loss(logits, masks)) == pytest.approx(expected)


def test_dice_skips_samples_without_mask_and_resizes_logits() -> None:
    masks = torch.zeros(2, 1, 8, 8)
    masks[0, :, :4] = 1.0
    logits = torch.full((2, 1, 4, 4), -50.0)
    logits[0, :, :2] = 50.0  # the same top half, at half the resolution
    valid = torch.tensor([True, False])
    assert float(dice_loss(logits, masks, valid=valid)) == pytest.approx(0.0, abs=1e-6)
    assert float(dice_loss(logits, masks, valid=torch.tensor([False, False]))) == 0.0


# --- total


def test_total_loss_is_the_weighted_sum_of_the_given_terms() -> None:
    view_logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, -1.0], [0.5, 0.5, 0.5], [2.0, 3.0, 1.0]])
    weather_logits = torch.randn(4, 3)
    weather_labels = torch.tensor([1, 0, 2, -100])
    mask_logits = torch.randn(4, 1, 4, 4)
    masks = (torch.rand(4, 1, 4, 4) > 0.5).float()
    moe = torch.tensor(1.3)
    w = LossWeights(focal=1.0, consistency=0.5, weather=0.2, segmentation=0.3, moe=0.01, gamma=1.0, alpha=0.4,
                    label_smoothing=0.1)
    total, parts = total_loss(
        logits=LOGITS, targets=TARGETS, weights=w, view_logits=view_logits, weather_logits=weather_logits,
        weather_labels=weather_labels, mask_logits=mask_logits, masks=masks, moe_loss=moe,
    )
    expected = {
        "focal": focal_loss(LOGITS, TARGETS, gamma=1.0, alpha=0.4, label_smoothing=0.1),
        "consistency": consistency_loss(view_logits),
        "weather": weather_loss(weather_logits, weather_labels),
        "segmentation": dice_loss(mask_logits, masks),
        "moe": moe,
    }
    assert set(parts) == set(expected)
    for name, value in expected.items():
        assert float(parts[name]) == pytest.approx(float(value))
    weighted = sum(getattr(w, name) * float(value) for name, value in expected.items())
    assert float(total) == pytest.approx(weighted)


def test_total_loss_drops_missing_inputs_and_zero_weights() -> None:
    total, parts = total_loss(
        logits=LOGITS, targets=TARGETS, weights=LossWeights(consistency=0.0),
        view_logits=torch.randn(4, 3), mask_logits=torch.randn(4, 1, 2, 2),  # no masks: no segmentation term
    )
    assert set(parts) == {"focal"}
    assert float(total) == pytest.approx(float(focal_loss(LOGITS, TARGETS)))


def test_total_loss_backpropagates_to_every_input() -> None:
    logits = LOGITS.clone().requires_grad_()
    view_logits = torch.randn(4, 3, requires_grad=True)
    total, _ = total_loss(logits=logits, targets=TARGETS, view_logits=view_logits)
    total.backward()
    assert logits.grad.abs().sum() > 0 and view_logits.grad.abs().sum() > 0
