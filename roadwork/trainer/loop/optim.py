"""Optimizers beyond AdamW (Lion, Sophia-H), a factory that keeps weight decay off biases and norms, and a
conversion of any of their states to safetensors-ready tensors plus JSON, so that a run can be resumed without
unpickling anything.

The Sophia-H contract for a training loop (see `SophiaH`)::

    optimizer.zero_grad(set_to_none=True)
    loss = compute_loss(...)
    if isinstance(optimizer, SophiaH) and optimizer.needs_hessian():
        loss.backward(create_graph=True)   # keep the graph of the gradients ...
        optimizer.update_hessian()         # ... for a Hessian-vector product; grads are detached afterwards
    else:
        loss.backward()
    clip / unscale / log gradients here, never between backward and update_hessian
    optimizer.step()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("adamw", "lion", "sophia")
STATE_FORMAT = "roadwork-optimizer-state/1"


def _check_betas(betas: tuple[float, float]) -> None:
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"betas[{i}] must be in [0, 1), got {beta}")


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2).

    Per step, with gradient g and momentum m (state `exp_avg`, zeros at first):
        p <- p * (1 - lr * weight_decay)                   decoupled weight decay
        p <- p - lr * sign(beta1 * m + (1 - beta1) * g)    every coordinate moves by exactly lr (or 0)
        m <- beta2 * m + (1 - beta2) * g

    Because the update has unit size per coordinate, Lion wants a learning rate 3-10x smaller than AdamW's and a
    weight decay 3-10x larger for the same effective regularisation (lr * weight_decay).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0.0:
            raise ValueError(f"lr must be positive, got {lr}")
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
        _check_betas(betas)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One update of every parameter that has a gradient; returns the closure's loss when one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                exp_avg = state["exp_avg"]
                if wd != 0.0:
                    p.mul_(1.0 - lr * wd)
                # The update interpolates with beta1, the momentum that is kept uses beta2: the two differ on purpose.
                update = torch.lerp(exp_avg, grad, 1.0 - beta1).sign_()
                p.add_(update, alpha=-lr)
                exp_avg.lerp_(grad, 1.0 - beta2)
        return loss


class SophiaH(torch.optim.Optimizer):
    """Sophia with the Hutchinson estimator of the Hessian diagonal (Liu et al. 2023, "Sophia: A Scalable
    Stochastic Second-order Optimizer", Algorithm 3 with Algorithm 1 as the estimator).

    State per parameter: `exp_avg` (m), `hessian` (h) and `step` (a Python int: steps taken).
    Per step, with gradient g:
        m <- beta1 * m + (1 - beta1) * g
        p <- p * (1 - lr * weight_decay)
        p <- p - lr * clamp(m / max(rho * h, eps), -1, 1)
    and on Hessian steps (`needs_hessian()`), before the step, `update_hessian()` draws a Rademacher vector u and
        h <- beta2 * h + (1 - beta2) * u * (H u)
    which is an unbiased estimate of diag(H) because E[u_i u_j] = [i == j].

    This is the paper's formulation. The authors' released code instead computes
    sign(m) * min(|m| / (rho * h + 1e-15), 1); the two agree for h > 0, but Hutchinson estimates can be negative
    (non-convex regions, noise), where the released form would step the wrong way. With max(rho * h, eps) a
    non-positive curvature estimate gives a plain sign-momentum step of size lr, as the paper intends.
    `rho` here is the paper's gamma (0.01 for Sophia-H in the paper).

    The training-loop contract:
      * if `needs_hessian()` (the first step, then every `hessian_interval` steps) call
        `loss.backward(create_graph=True)` and then `update_hessian()` right away, before any gradient clipping
        or unscaling; otherwise call `loss.backward()`;
      * then `step()`.
    `update_hessian()` detaches every `.grad` afterwards, which frees the double-backward graph and breaks the
    parameter <-> gradient reference cycle that `create_graph=True` makes. With gradient accumulation, pass
    `create_graph=True` to every micro-batch of a Hessian step, or h only covers the micro-batches that did.
    Do not combine it with fp16 loss scaling: the scaled loss would scale h by the scale factor.
    If `step()` runs before any Hessian update, h is 0 and every coordinate takes a sign step of size lr.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.96, 0.99),
        rho: float = 0.01,
        weight_decay: float = 0.0,
        eps: float = 1e-12,
        hessian_interval: int = 10,
    ) -> None:
        if lr <= 0.0:
            raise ValueError(f"lr must be positive, got {lr}")
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
        if rho <= 0.0 or eps <= 0.0:
            raise ValueError(f"rho and eps must be positive, got rho={rho}, eps={eps}")
        if hessian_interval < 1:
            raise ValueError(f"hessian_interval must be >= 1, got {hessian_interval}")
        _check_betas(betas)
        defaults = {"lr": lr, "betas": tuple(betas), "rho": rho, "weight_decay": weight_decay, "eps": eps}
        super().__init__(params, defaults)
        # One schedule for the whole optimizer, not per group: the Hessian-vector product covers all parameters.
        self.hessian_interval = hessian_interval

    def _steps_taken(self) -> int:
        """The number of `step()` calls so far (the largest per-parameter count, 0 before the first)."""
        # .get: indexing the defaultdict would create empty state for parameters that never had a gradient.
        states = (self.state.get(p, {}) for g in self.param_groups for p in g["params"])
        return max((s["step"] for s in states if "step" in s), default=0)

    def needs_hessian(self) -> bool:
        """True when the coming step should refresh h: the first step, then every `hessian_interval` steps."""
        return self._steps_taken() % self.hessian_interval == 0

    def _state_of(self, p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["hessian"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def update_hessian(self) -> None:
        """Refresh h from the current gradients, which must come from `loss.backward(create_graph=True)`.

        Takes nothing and returns nothing; afterwards every `.grad` is detached (same values, no graph).
        Raises RuntimeError when no gradient carries a graph (the backward was made without create_graph=True).
        """
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        # A gradient can legitimately lack a graph when it does not depend on any parameter (its Hessian row is 0).
        with_graph = [p for p in params if p.grad.requires_grad]
        if not with_graph:
            raise RuntimeError(
                "SophiaH.update_hessian() needs gradients from loss.backward(create_graph=True); "
                "none of the parameters' gradients carries a graph"
            )
        # Rademacher vectors: entries +-1 with equal probability, so u_i^2 = 1 and u * (H u) has mean diag(H).
        us = [torch.randint(0, 2, p.shape, device=p.device).to(p.dtype).mul_(2).sub_(1) for p in with_graph]
        hvps = torch.autograd.grad(
            [p.grad for p in with_graph], with_graph, grad_outputs=us, retain_graph=False, allow_unused=True
        )
        # None: the gradient does not depend on that parameter, a zero row of the Hessian.
        estimates = {id(p): u * hv for p, u, hv in zip(with_graph, us, hvps, strict=True) if hv is not None}
        with torch.no_grad():
            for group in self.param_groups:
                beta2 = group["betas"][1]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    hessian = self._state_of(p)["hessian"].mul_(beta2)
                    if id(p) in estimates:
                        hessian.add_(estimates[id(p)], alpha=1.0 - beta2)
        for p in params:
            p.grad = p.grad.detach()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One update of every parameter that has a gradient; returns the closure's loss when one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd, rho, eps = group["lr"], group["weight_decay"], group["rho"], group["eps"]
            beta1 = group["betas"][0]
            for p in group["params"]:
                if p.grad is None:
                    continue
                # Detached in case a create_graph backward was not followed by update_hessian: no graph in state.
                grad = p.grad.detach()
                state = self._state_of(p)
                exp_avg, hessian = state["exp_avg"], state["hessian"]
                state["step"] += 1
                exp_avg.lerp_(grad, 1.0 - beta1)
                if wd != 0.0:
                    p.mul_(1.0 - lr * wd)
                ratio = (exp_avg / (rho * hessian).clamp_(min=eps)).clamp_(-1.0, 1.0)
                p.add_(ratio, alpha=-lr)
        return loss


def _param_groups(model_or_params: nn.Module | Iterable[Any], weight_decay: float) -> list[dict[str, Any]]:
    """Param groups for an optimizer: a module is split into decayed (ndim >= 2) and undecayed (biases, norm
    scales, other 1-D or scalar) trainable parameters, empty groups dropped; anything else is one group."""
    if isinstance(model_or_params, nn.Module):
        trainable = [p for p in model_or_params.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        if not groups:
            raise ValueError("the model has no trainable parameters")
        return groups
    return [{"params": list(model_or_params), "weight_decay": weight_decay}]


def build_optimizer(
    name: str, model_or_params: nn.Module | Iterable[Any], *, lr: float, weight_decay: float, **options: Any
) -> torch.optim.Optimizer:
    """An optimizer by name: "adamw" (torch.optim.AdamW), "lion" (`Lion`) or "sophia" (`SophiaH`).

    `model_or_params`: an nn.Module (weight decay then skips its 1-D parameters) or an iterable of parameters
    (one group, all decayed). `options` go to the optimizer's constructor (betas, rho, hessian_interval, ...).
    Raises ValueError for an unknown name.
    """
    key = name.strip().lower()
    classes: dict[str, type[torch.optim.Optimizer]] = {"adamw": torch.optim.AdamW, "lion": Lion, "sophia": SophiaH}
    if key not in classes:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    groups = _param_groups(model_or_params, weight_decay)
    return classes[key](groups, lr=lr, weight_decay=weight_decay, **options)


def _json_ready(value: Any, where: str) -> Any:
    """`value` if it survives json.dumps/json.loads as an equal value (tuples come back as lists), else TypeError."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where}: {value} is not representable in JSON")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: a {type(value).__name__} cannot be stored as JSON")


def optimizer_state_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `opt.state_dict()` into tensors for safetensors and a JSON-able dict.

    Returns (tensors, meta). tensors: `state.{param_index}.{name}` for tensor state (and
    `param_groups.{group_index}.{name}` for a tensor-valued hyper-parameter), each a contiguous CPU copy, so that
    later steps do not change a snapshot. meta: the format, the optimizer's class name, the param groups and the
    non-tensor state (Python numbers such as SophiaH's step). Raises TypeError on a value neither can hold.
    """
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, dict[str, Any]] = {}
    for index, entries in sd["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                state_meta.setdefault(str(index), {})[key] = _json_ready(value, f"state {index} {key}")
    groups_meta = []
    for gi, group in enumerate(sd["param_groups"]):
        plain = {}
        for key, value in group.items():
            if isinstance(value, torch.Tensor):
                tensors[f"param_groups.{gi}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                plain[key] = _json_ready(value, f"param group {gi} {key}")
        groups_meta.append(plain)
    meta = {"format": STATE_FORMAT, "optimizer": type(opt).__name__, "state": state_meta, "param_groups": groups_meta}
    return tensors, meta


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Load what `optimizer_state_tensors` produced (e.g. after safetensors/JSON) into `opt`, in place.

    `opt` must be built over the same parameters in the same groups. The optimizer may keep `tensors`' storage
    (torch moves tensors only when device or dtype differ), so do not reuse the dict afterwards.
    Raises ValueError on a foreign format or a different optimizer class.
    """
    if meta.get("format") != STATE_FORMAT:
        raise ValueError(f"not an optimizer state of format {STATE_FORMAT}: {meta.get('format')!r}")
    if meta.get("optimizer") != type(opt).__name__:
        raise ValueError(f"the state is of a {meta.get('optimizer')}, the optimizer is a {type(opt).__name__}")
    state: dict[int, dict[str, Any]] = {}
    # JSON turns the int parameter indices into strings; state_dict() wants ints.
    for index, entries in meta["state"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = [dict(g) for g in meta["param_groups"]]
    for name, tensor in tensors.items():
        kind, index, key = name.split(".", 2)
        if kind == "state":
            state.setdefault(int(index), {})[key] = tensor
        elif kind == "param_groups":
            groups[int(index)][key] = tensor
        else:
            raise ValueError(f"unexpected tensor {name!r} in an optimizer state")
    for group in groups:
        # JSON gave lists back; the optimizers index betas either way, but keep the original tuple type.
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
