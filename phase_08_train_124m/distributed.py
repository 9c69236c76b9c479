"""Data-parallel training across processes: one process per GPU, started by ``torchrun``.

``torchrun --nproc_per_node=N`` starts N copies of the trainer and tells each who it is through
the environment: ``RANK`` (0..WORLD_SIZE-1 over all machines), ``LOCAL_RANK`` (the GPU on this
machine), ``WORLD_SIZE``, and ``MASTER_ADDR``/``MASTER_PORT`` where rank 0 listens. Each process
joins one process group: NCCL between CUDA GPUs, gloo between CPU processes (the tests run two
gloo processes on loopback). Without ``WORLD_SIZE`` in the environment, the trainer is a single
process and no group is made.
Notes: ``phase_08_train_124m/notes/02_the_124m_recipe.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None  # None: a single process, no group

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(env, name: str) -> int:
    try:
        return int(env[name])
    except KeyError:
        raise ValueError(f"WORLD_SIZE is set but {name} is not: start the processes with "
                         f"torchrun, which sets RANK, LOCAL_RANK and WORLD_SIZE") from None
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {env[name]!r}") from None


def setup_distributed(device: str, env=None) -> tuple[Distributed, str]:
    """Join the process group the environment describes. Returns it and the device this
    process trains on: ``cuda:LOCAL_RANK`` under CUDA, else ``device`` unchanged."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env or int(env["WORLD_SIZE"]) == 1:
        return Distributed(), device
    rank, local_rank, world_size = (_env_int(env, n) for n in ("RANK", "LOCAL_RANK",
                                                                "WORLD_SIZE"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if device.startswith("mps") or (device == "auto" and not use_cuda
                                    and torch.backends.mps.is_available()):
        raise ValueError("data-parallel training across processes is not supported on MPS "
                         "(one Apple GPU per machine); run one process: python -m "
                         "phase_08_train_124m.train --device mps")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} "
                             f"CUDA devices: --nproc_per_node must not exceed the GPUs")
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    backend = "nccl" if use_cuda else "gloo"
    torch_dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Distributed(rank, local_rank, world_size, backend), device


def teardown_distributed(dist: Distributed, *, finished: bool = False) -> None:
    """Destroy the process group. After a run that ``finished`` normally, first wait for every
    rank (a barrier), so that no rank closes its connections while a peer is still at work: one
    CI run saw a gloo rank abort ("terminate called without an active exception") as its peer
    tore down. After an error there is no barrier, since the other ranks may never reach it."""
    if dist.enabled and torch_dist.is_initialized():
        if finished:
            torch_dist.barrier()
        torch_dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, dist: Distributed) -> float:
    """The mean of a scalar over all processes (gloo has no AVG, so a SUM over world_size)."""
    value = value.detach().clone().to(torch.float64 if value.device.type != "mps"
                                      else torch.float32)
    if dist.enabled:
        torch_dist.all_reduce(value, op=torch_dist.ReduceOp.SUM)
        value /= dist.world_size
    return value.item()


def all_reduce_sum(values: torch.Tensor, dist: Distributed) -> torch.Tensor:
    if dist.enabled:
        values = values.clone()
        torch_dist.all_reduce(values, op=torch_dist.ReduceOp.SUM)
    return values


def gather_objects(obj, dist: Distributed) -> list:
    """Every process's ``obj``, in rank order, on every process (RNG states for a checkpoint)."""
    if not dist.enabled:
        return [obj]
    gathered = [None] * dist.world_size
    torch_dist.all_gather_object(gathered, obj)
    return gathered
