"""Lion and Sophia-H against hand-computed updates, the optimizer factory's groups, and a resume through
safetensors + JSON that must reproduce an uninterrupted run bit for bit."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from roadwork.trainer.loop.optim import (
    Lion,
    SophiaH,
    build_optimizer,
    load_optimizer_state,
    optimizer_state_tensors,
)

torch.set_num_threads(1)


def backward(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """The training-loop contract: a create_graph backward plus a Hessian update when SophiaH asks for one."""
    if isinstance(opt, SophiaH) and opt.needs_hessian():
        with warnings.catch_warnings():
            # torch warns that create_graph=True makes a param <-> grad cycle; update_hessian detaches to break it.
            warnings.simplefilter("ignore", UserWarning)
            loss.backward(create_graph=True)
        opt.update_hessian()
    else:
        loss.backward()


def quadratic(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """f(x) = 0.5 * sum(a_i x_i^2): gradient a * x, Hessian diag(a)."""
    return 0.5 * (a * x * x).sum()


# --- Lion


def test_lion_two_steps_by_hand() -> None:
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.1)
    p.grad = torch.tensor([0.5, -0.1])
    opt.step()
    # decay: p * (1 - 0.1 * 0.1) = [0.99, -1.98]; m = 0 so the update is sign(0.1 * g) = [1, -1]
    assert p.detach().tolist() == pytest.approx([0.99 - 0.1, -1.98 + 0.1], abs=1e-6)
    # m = 0.01 * g
    assert opt.state[p]["exp_avg"].tolist() == pytest.approx([0.005, -0.001], abs=1e-8)

    p.grad = torch.tensor([-0.1, 0.005])
    opt.step()
    # update = sign(0.9 m + 0.1 g) = sign([0.0045 - 0.01, -0.0009 + 0.0005]) = [-1, -1]: the gradient wins the first
    # coordinate, the momentum outvotes the second's positive gradient. (Interpolating with beta2 instead would
    # give +1 on the first.)
    assert p.detach().tolist() == pytest.approx([0.89 * 0.99 + 0.1, -1.88 * 0.99 + 0.1], abs=1e-6)
    # m = 0.99 m + 0.01 g
    assert opt.state[p]["exp_avg"].tolist() == pytest.approx([0.00495 - 0.001, -0.00099 + 0.00005], abs=1e-8)
    assert set(opt.state[p]) == {"exp_avg"}


def test_lion_rejects_bad_hyperparameters() -> None:
    p = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="betas"):
        Lion([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr"):
        Lion([p], lr=0.0)


# --- Sophia-H


def test_hutchinson_estimate_is_exact_for_a_diagonal_hessian() -> None:
    a = torch.tensor([0.5, 2.0, 7.0, -3.0])
    x = nn.Parameter(torch.tensor([1.0, -0.3, 2.0, 0.7]))
    opt = SophiaH([x], lr=0.1, betas=(0.9, 0.5))
    for expected in (0.5, 0.75):  # h = 0.5 h + 0.5 a, from h = 0
        torch.manual_seed(int(expected * 4))  # a different Rademacher draw each time: u_i^2 = 1 whatever it is
        x.grad = None
        backward(opt, quadratic(x, a))
        assert torch.equal(opt.state[x]["hessian"], expected * a)
        # the double-backward graph is gone: the gradient is plain values
        assert not x.grad.requires_grad and x.grad.grad_fn is None
        assert torch.equal(x.grad, a * x.detach())
        opt.step()
        opt.state[x]["step"] = 0  # ask for a Hessian update again


def test_hutchinson_estimate_averages_to_the_diagonal() -> None:
    # H = [[2, 1], [1, 4]]: one draw gives diag(H) + u_i u_j H_ij = [2 +- 1, 4 +- 1]; many average to [2, 4].
    x = nn.Parameter(torch.tensor([0.3, -0.2]))
    opt = SophiaH([x], betas=(0.9, 0.0))
    torch.manual_seed(0)
    draws = []
    for _ in range(400):
        x.grad = None
        backward(opt, x[0] ** 2 + x[0] * x[1] + 2 * x[1] ** 2)
        draws.append(opt.state[x]["hessian"].clone())
    draws = torch.stack(draws)
    assert set(draws[:, 0].tolist()) == {1.0, 3.0} and set(draws[:, 1].tolist()) == {3.0, 5.0}
    assert draws.mean(0).tolist() == pytest.approx([2.0, 4.0], abs=0.15)


def test_sophia_step_by_hand_clamps_large_ratios() -> None:
    a = torch.tensor([2.0, 3.0])
    x = nn.Parameter(torch.tensor([1.0, 0.05]))
    opt = SophiaH([x], lr=0.1, betas=(0.9, 0.99), rho=1.0)
    backward(opt, quadratic(x, a))
    opt.step()
    # m = 0.1 * a * x = [0.2, 0.015]; h = 0.01 * a = [0.02, 0.03]; m / h = [10, 0.5] -> clamp -> [1, 0.5]
    assert x.detach().tolist() == pytest.approx([1.0 - 0.1, 0.05 - 0.05], abs=1e-7)
    assert opt.state[x]["step"] == 1


def test_sophia_takes_a_sign_step_on_negative_curvature() -> None:
    # f = -0.5 x^2: g = -1 at x = 1, h < 0, so max(rho h, eps) = eps and the step is lr * sign(m), away from 0.
    x = nn.Parameter(torch.tensor([1.0]))
    opt = SophiaH([x], lr=0.1, weight_decay=0.0)
    backward(opt, quadratic(x, torch.tensor([-1.0])))
    assert opt.state[x]["hessian"].item() < 0
    opt.step()
    assert x.item() == pytest.approx(1.1)


def test_sophia_weight_decay_is_decoupled() -> None:
    # a zero gradient leaves only the decay: p * (1 - lr * wd)
    x = nn.Parameter(torch.tensor([2.0, -4.0]))
    opt = SophiaH([x], lr=0.1, weight_decay=0.5)
    x.grad = torch.zeros(2)
    opt.step()
    assert x.detach().tolist() == pytest.approx([2.0 * 0.95, -4.0 * 0.95])


def test_sophia_asks_for_the_hessian_on_the_first_step_then_every_interval() -> None:
    x = nn.Parameter(torch.tensor([1.0]))
    opt = SophiaH([x], hessian_interval=3)
    asked = []
    for _ in range(7):
        asked.append(opt.needs_hessian())
        x.grad = None
        backward(opt, quadratic(x, torch.tensor([1.0])))
        opt.step()
    assert asked == [True, False, False, True, False, False, True]


def test_update_hessian_without_create_graph_is_an_error() -> None:
    x = nn.Parameter(torch.tensor([1.0]))
    opt = SophiaH([x])
    quadratic(x, torch.tensor([1.0])).backward()
    with pytest.raises(RuntimeError, match="create_graph=True"):
        opt.update_hessian()


# --- every optimizer trains


def separable_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs at (+2, +2) and (-2, -2): linearly separable with a wide margin."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(64, 2, generator=g) * 0.5 + 2, torch.randn(64, 2, generator=g) * 0.5 - 2])
    y = torch.cat([torch.ones(64), torch.zeros(64)])
    return x, y


@pytest.mark.parametrize(("name", "lr"), [("adamw", 0.05), ("lion", 0.01), ("sophia", 0.05)])
def test_each_optimizer_fits_logistic_regression(name: str, lr: float) -> None:
    x, y = separable_data()
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0, -1.0]]))  # start pointing the wrong way: loss well above ln 2
    opt = build_optimizer(name, model, lr=lr, weight_decay=0.01)
    losses = []
    for _ in range(200):
        opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        losses.append(loss.item())
        backward(opt, loss)
        opt.step()
    assert losses[0] > 3.0
    assert losses[-1] < 0.05
    accuracy = ((model(x).squeeze(1) > 0).float() == y).float().mean().item()
    assert accuracy == 1.0


# --- factory


def test_build_optimizer_keeps_decay_off_biases_and_norms() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    model[2].bias.requires_grad_(False)  # frozen parameters are left out
    for name, cls in [("adamw", torch.optim.AdamW), ("lion", Lion), ("sophia", SophiaH), (" Lion ", Lion)]:
        opt = build_optimizer(name, model, lr=1e-3, weight_decay=0.1)
        assert type(opt) is cls
        decay, no_decay = opt.param_groups
        assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
        assert [id(p) for p in decay["params"]] == [id(model[0].weight), id(model[2].weight)]
        assert [id(p) for p in no_decay["params"]] == [id(model[0].bias), id(model[1].weight), id(model[1].bias)]
        assert decay["lr"] == 1e-3


def test_build_optimizer_from_a_parameter_list_makes_one_decayed_group() -> None:
    model = nn.Linear(3, 1)
    opt = build_optimizer("lion", model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.8, 0.9))
    (group,) = opt.param_groups
    assert len(group["params"]) == 2 and group["weight_decay"] == 0.1 and group["betas"] == (0.8, 0.9)


def test_build_optimizer_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="adamw, lion, sophia"):
        build_optimizer("sgd", nn.Linear(2, 1), lr=0.1, weight_decay=0.0)


# --- state through safetensors + JSON


def make_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    """`steps` steps of MSE regression on batches (and Rademacher draws) determined by `seed`."""
    torch.manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 3)
        y = x.sum(1, keepdim=True).sin()
        opt.zero_grad(set_to_none=True)
        backward(opt, F.mse_loss(model(x), y))
        opt.step()


@pytest.mark.parametrize("name", ["adamw", "lion", "sophia"])
def test_resume_through_safetensors_and_json_matches_an_uninterrupted_run(name: str, tmp_path) -> None:  # noqa: ANN001
    # hessian_interval=2 puts Hessian updates on both sides of the interruption (steps 1, 3 and 5)
    options = {"hessian_interval": 2} if name == "sophia" else {}
    straight = make_model()
    opt = build_optimizer(name, straight, lr=0.01, weight_decay=0.1, **options)
    train(straight, opt, 3, seed=10)
    train(straight, opt, 3, seed=11)

    first = make_model()
    opt = build_optimizer(name, first, lr=0.01, weight_decay=0.1, **options)
    train(first, opt, 3, seed=10)
    tensors, meta = optimizer_state_tensors(opt)
    save_file(tensors, str(tmp_path / "optim.safetensors"))
    save_file({k: v.contiguous() for k, v in first.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "optim.json").write_text(json.dumps(meta))
    del first, opt

    resumed = make_model()
    resumed.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    opt = build_optimizer(name, resumed, lr=0.01, weight_decay=0.1, **options)
    meta = json.loads((tmp_path / "optim.json").read_text())
    load_optimizer_state(opt, load_file(str(tmp_path / "optim.safetensors")), meta)
    train(resumed, opt, 3, seed=11)

    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_state_tensors_are_a_snapshot_and_name_the_state() -> None:
    model = make_model()
    opt = build_optimizer("sophia", model, lr=0.01, weight_decay=0.0)
    train(model, opt, 1, seed=0)
    tensors, meta = optimizer_state_tensors(opt)
    # 4 parameters x (exp_avg, hessian); the step counts are Python ints and go to the JSON side
    assert sorted(tensors) == sorted(f"state.{i}.{k}" for i in range(4) for k in ("exp_avg", "hessian"))
    assert meta["state"] == {str(i): {"step": 1} for i in range(4)}
    assert meta["optimizer"] == "SophiaH"
    before = tensors["state.0.exp_avg"].clone()
    train(model, opt, 1, seed=1)
    assert torch.equal(tensors["state.0.exp_avg"], before)


def test_loading_another_optimizers_state_is_refused() -> None:
    model = make_model()
    lion = build_optimizer("lion", model, lr=0.01, weight_decay=0.0)
    train(model, lion, 1, seed=0)
    tensors, meta = optimizer_state_tensors(lion)
    adamw = build_optimizer("adamw", model, lr=0.01, weight_decay=0.0)
    with pytest.raises(ValueError, match="Lion"):
        load_optimizer_state(adamw, tensors, meta)
