"""Data-parallel training under `torchrun` (DDP): NCCL on CUDA, gloo on CPU.

    torchrun --nproc_per_node 4 -m roadwork.cli train --config configs/competition.yaml
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 -m roadwork.cli train ...

Every rank reads the same data and draws the same epoch order from the same seed, then takes its own share of
it (`train.epoch_order`); gradients are averaged by DDP, so all ranks hold the same weights after each step.
Validation runs on every rank (the same answer everywhere, so early stopping agrees without a message);
rank 0 writes the resumable state and the checkpoint. At the end the ranks compare a digest of their weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn


@dataclass(frozen=True)
class DDPContext:
    enabled: bool
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        # unused parameters are normal here: the weather head without weather labels, experts no token chose
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def no_sync(self, runner: nn.Module) -> contextlib.AbstractContextManager:
        return runner.no_sync() if isinstance(runner, nn.parallel.DistributedDataParallel) else contextlib.nullcontext()

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def check_replicas(self, model: nn.Module, folder: Path) -> dict[str, Any]:
        """Gather every rank's weight digest; each rank writes it to `<folder>/rank-<r>.json`. Raises
        RuntimeError when the replicas differ (a DDP bug or a non-deterministic rank)."""
        digest = state_digest(model)
        digests: list[str | None] = [None] * self.world
        torch_dist.all_gather_object(digests, digest)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"rank-{self.rank}.json").write_text(json.dumps({"rank": self.rank, "world": self.world,
                                                                  "weights_sha256": digest}))
        if len(set(digests)) != 1:
            raise RuntimeError(f"DDP replicas differ after training: {digests}")
        return {"ddp_world_size": self.world, "ddp_replicas_identical": True}

    def teardown(self) -> None:
        if self.enabled and torch_dist.is_initialized():
            torch_dist.barrier()
            torch_dist.destroy_process_group()


def state_digest(model: nn.Module) -> str:
    """sha256 over the model's state dict (names and bytes, in order)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


def rank_from_env() -> tuple[int, int]:
    """(rank, world size) torchrun set for this process; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str = "auto") -> DDPContext:
    """Join the process group torchrun describes in the environment; a disabled context without torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DDPContext(enabled=False)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return DDPContext(enabled=True, rank=rank, world=world, local_rank=local_rank, device=dev)
