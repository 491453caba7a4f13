"""Data-parallel training on several GPUs (or CPU processes) with torchrun and DistributedDataParallel.

Launch through the one command line, ``sbirlab train`` (one process per GPU; ``--nproc_per_node`` =
number of GPUs)::

    torchrun --nproc_per_node=2 -m sbirlab train --method clip-at --setting zs \\
        --preset paper --dataset sketchy --out runs/clip-at-sketchy
    # CPU, two processes on one machine (gloo):
    torchrun --nproc_per_node=2 --master_addr=127.0.0.1 -m sbirlab train \\
        --method b-ip --backbone sbirlab-nano --preset ci --out /tmp/run

Without torchrun (``WORLD_SIZE`` unset or 1) the same command trains in one process, exactly like
:func:`sbirlab.experiment.run_experiment`; :func:`sbirlab.experiment.run_distributed` is the function
behind it. This module holds the process-group plumbing only (it imports nothing above ``train``).

Design (PyTorch's DDP recipe, as timm / open_clip training scripts do it):

* **Process group**: :func:`init_distributed` reads torchrun's ``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK`` (and ``MASTER_ADDR`` / ``MASTER_PORT``); backend ``nccl`` when CUDA is available
  (each process binds ``cuda:LOCAL_RANK``, so ``device="auto"`` / ``"cuda"`` means the local GPU),
  else ``gloo``.
* **Batches**: ``batch_size`` is the **global** batch. Every rank draws the same global
  class-balanced batch (same seed, :mod:`sbirlab.train.data`) and keeps a **disjoint slice of every
  batch** (:func:`sbirlab.train.data.shard_positions`): whole classes when ``classes_per_batch`` is a
  multiple of the world size, else an equal share of every class. Each rank therefore sees
  ``batch_size / world_size`` items per step, and all ranks run the same number of steps.
* **Gradients**: the method is wrapped in ``DistributedDataParallel`` for forward / backward only
  (``forward`` returns ``(loss, logs)``; DDP finds the loss tensor in the tuple). DDP averages the
  gradients, so for losses that are means over the batch (triplet, classification) the update equals
  the single-process update on the global batch, up to float summation order. Losses with batch-level
  coupling (CLIP-AT FG's f-divergence compares classes inside a batch, patch shuffling draws random
  permutations) are computed per rank. Batch-hard negatives (``negatives="batch-hard"`` of the
  baselines and CLIP-AT) are mined among the photos of the **global** batch (:func:`gather_rows`,
  differentiable), so they match a single-process run; DP-CLIP's and SpLIP's in-batch negatives
  are mined per rank. ``broadcast_buffers=False`` (the buffers are constant class
  text embeddings and masks); ``find_unused_parameters`` is off by default (every registered method
  uses all its trainable tensors in every step) and can be turned on in :func:`fit`.
* **Logs**: the per-step logs are averaged over the ranks, so the history is that of the global batch.
* **Randomness**: data randomness depends only on ``(seed, epoch, step)``; the method's own
  randomness (torch's global RNG, e.g. patch shuffling) is seeded with ``seed + rank``. Checkpoints
  keep every rank's RNG state, so ``resume`` is exact with the same world size.
* **Evaluation and files**: validation runs on rank 0 and its metrics are broadcast, so every rank
  keeps the same best epoch; only rank 0 writes checkpoints, ``history.json``, ``config.json`` and
  ``metrics.json`` (the write helpers of :mod:`sbirlab.train.loop` are no-ops on other ranks). The
  final test evaluation of :func:`~sbirlab.experiment.run_experiment` runs on every rank in parallel
  (identical weights; only rank 0's numbers are written), costing no extra wall time.
* **Data generation**: rank 0 prepares (generates / indexes) the dataset first, the others wait.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from ..models.losses import gather_rows  # noqa: F401  (part of this module's API: the global batch's rows)

log = logging.getLogger(__name__)

__all__ = [
    "DistInfo",
    "env_world_size",
    "is_distributed",
    "init_distributed",
    "get_rank",
    "get_world_size",
    "is_main",
    "barrier",
    "cleanup",
    "broadcast_object",
    "all_gather_object",
    "mean_logs",
    "wrap_ddp",
    "unwrap",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 = main process).
        world_size: number of processes.
        local_rank: rank on this machine (the GPU index).
        backend: ``"nccl"``, ``"gloo"`` or ``""`` (single process, no process group).
        device: the device this process trains on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when unset)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_distributed() -> bool:
    """Whether a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 and in single-process runs: the process that logs, evaluates and writes files."""
    return get_rank() == 0


def _info() -> DistInfo:
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else ""
    return DistInfo(get_rank(), get_world_size(), local, str(backend), device)


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the torchrun job described by the environment (idempotent).

    With ``WORLD_SIZE`` unset or 1 nothing is initialised and a single-process :class:`DistInfo` is
    returned. Otherwise the default process group is created from ``env://`` (``MASTER_ADDR``,
    ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``); on CUDA machines the process binds ``cuda:LOCAL_RANK``.

    Args:
        backend: ``"nccl"`` / ``"gloo"``; default nccl with CUDA, gloo without.
        timeout_s: collective timeout.
    """
    if dist.is_available() and dist.is_initialized():
        return _info()
    world = env_world_size()
    if world <= 1:
        return _info()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    backend = backend or ("nccl" if cuda else "gloo")
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    info = _info()
    log.info("process group: rank %d of %d (local %d), backend %s, device %s", info.rank, info.world_size,
             info.local_rank, info.backend, info.device)
    return info


def barrier() -> None:
    """Wait for every rank (no-op in single-process runs)."""
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable objects)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_logs(logs: dict) -> dict:
    """Average a dict of scalar logs over the ranks (every rank must pass the same keys)."""
    if not is_distributed() or not logs:
        return logs
    keys = sorted(logs)
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([float(logs[k]) for k in keys], dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(logs, **{k: float(v) for k, v in zip(keys, t.tolist())})


def wrap_ddp(method: torch.nn.Module, device: torch.device | str | None = None,
             find_unused_parameters: bool = False) -> torch.nn.Module:
    """``method`` in ``DistributedDataParallel`` (returned unchanged without a multi-process group).

    Parameters and buffers are broadcast from rank 0 when wrapping, so every rank starts from the same
    weights even if their random initialisations differed.
    """
    if not is_distributed():
        return method
    from torch.nn.parallel import DistributedDataParallel as DDP

    device = torch.device(device) if device is not None else next(method.parameters()).device
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DDP(method, device_ids=ids, output_device=ids[0] if ids else None, broadcast_buffers=False,
               find_unused_parameters=find_unused_parameters)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The method inside a DDP wrapper (or the model itself)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    return model.module if isinstance(model, DDP) else model


# ---------------------------------------------------------------------------------------------
# a whole run
