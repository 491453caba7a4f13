"""One readable training loop: :func:`train_one_epoch`, :func:`evaluate`, :func:`fit`.

Like nanoGPT / minGPT's trainer: no framework, callbacks instead of Jupyter knowledge (a notebook
passes ``on_batch_end`` to draw live curves), ``max_steps`` for smoke runs, mixed precision on CUDA,
``tqdm.auto`` progress bars. Model selection uses the **validation classes** (held-out seen classes),
never the test classes. A checkpoint is written atomically after every epoch (trainable state,
optimiser, scheduler, RNG states, the epoch's metrics, resolved config, versions); ``fit(resume=True)``
continues from it and ends with the same numbers as an uninterrupted run with the same seed, because
every batch is a pure function of ``(seed, epoch, step)`` (:mod:`sbirlab.train.data`) and the
optimiser, scheduler and every RNG state are restored. Resuming continues the **same** run: change
``epochs`` / ``max_steps`` and the cosine schedule (which spans the whole run) changes too, so
extending a finished run is not the same as having asked for more epochs from the start.

Under torchrun, :func:`fit` trains data-parallel with DistributedDataParallel
(:mod:`sbirlab.train.distributed`): each rank takes a disjoint slice of every global batch, rank 0
validates and writes files (the write helpers here are no-ops on the other ranks).
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..data.base import Item
from ..config import TrainConfig  # noqa: F401  (re-exported: the loop's settings)
from ..io import atomic_torch_save, atomic_write_json, versions
from ..metrics import fg_accuracy, retrieval_metrics
from .data import ImageLoader, TripletData

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _autocast(device: torch.device, amp: str):
    if amp == "auto":
        amp = "fp16" if device.type == "cuda" else "off"
    if amp == "off":
        return torch.autocast(device.type, enabled=False), False
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype), dtype == torch.float16 and device.type == "cuda"


# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_items(method, items: Sequence[Item], modality: str, loader: ImageLoader, batch_size: int = 128,
                 device: torch.device | str = "cpu", progress: bool = False) -> torch.Tensor:
    """L2-normalised embeddings ``[N, E]`` of ``items`` (sketches or photos)."""
    from tqdm.auto import tqdm

    method.eval()
    enc = method.encode_sketch if modality == "sketch" else method.encode_photo
    out = []
    for i in tqdm(range(0, len(items), batch_size), desc=f"encode {modality}s", disable=not progress, leave=False):
        x = loader.batch(items[i:i + batch_size]).to(device)
        out.append(enc(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def evaluate(method, queries: Sequence[Item], gallery: Sequence[Item], setting: str, loader: ImageLoader,
             device="cpu", batch_size: int = 128, progress: bool = False, return_features: bool = False) -> dict:
    """Retrieval metrics of ``method`` with sketch ``queries`` against photo ``gallery``.

    ``zs``: mAP@all, mAP@200, P@100, P@200 (relevant = same class; :func:`sbirlab.metrics.retrieval_metrics`).
    ``fg``: Acc@1/5/10 of the paired photo within the query's category
    (:func:`sbirlab.metrics.fg_accuracy`); sketches without a paired photo in the gallery are left out.
    """
    if setting == "fg":
        have = {g.instance for g in gallery}
        queries = [q for q in queries if q.instance in have]
    q = encode_items(method, queries, "sketch", loader, batch_size, device, progress)
    g = encode_items(method, gallery, "photo", loader, batch_size, device, progress)
    sim = q @ g.T
    if setting == "zs":
        m = retrieval_metrics(sim, [x.label for x in queries], [x.label for x in gallery])
    else:
        m = fg_accuracy(sim, [x.instance for x in queries], [x.instance for x in gallery],
                        [x.label for x in queries], [x.label for x in gallery])
    m = {k: float(v) for k, v in m.items() if not isinstance(v, (dict, np.ndarray))}
    m["n_queries"], m["n_gallery"] = len(queries), len(gallery)
    if return_features:
        return m, q, g
    return m


# ---------------------------------------------------------------------------------------------
@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    best: float = -math.inf
    best_epoch: int = -1
    history: list = field(default_factory=list)
    seconds: float = 0.0


def make_optimizer(method, cfg: TrainConfig, total_steps: int):
    opt = torch.optim.AdamW(method.param_groups(), weight_decay=cfg.weight_decay)
    warm = max(1, cfg.warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total_steps)))))
    return opt, sched


def train_one_epoch(method, data: TripletData, opt, sched, state: TrainState, cfg: TrainConfig,
                    device, callbacks: Sequence[Callable] = (), progress: bool = True) -> dict:
    """One pass of the class-balanced sampler. Calls ``cb(step, logs)`` after every batch.

    ``method`` may be wrapped in DistributedDataParallel (:func:`sbirlab.train.distributed.wrap_ddp`);
    the logs are then averaged over the ranks.
    """
    from tqdm.auto import tqdm

    from .distributed import mean_logs, unwrap

    method.train()
    ctx_factory = lambda: _autocast(device, cfg.amp)[0]  # noqa: E731
    scaler = torch.amp.GradScaler("cuda", enabled=_autocast(device, cfg.amp)[1])
    params = [p for _, p in unwrap(method).trainable_named_parameters()]
    data.set_epoch(state.epoch)
    sums, n = {}, 0
    bar = tqdm(data, total=len(data), desc=f"epoch {state.epoch + 1}", disable=not progress, leave=False)
    for batch in bar:
        if cfg.max_steps and state.step >= cfg.max_steps:
            break
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with ctx_factory():
            loss, logs = method(batch)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        state.step += 1
        n += 1
        logs = mean_logs(logs)
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        bar.set_postfix(loss=f"{logs['loss'] if 'loss' in logs else loss.item():.3f}")
        for cb in callbacks:
            cb(state.step, dict(logs, epoch=state.epoch))
    return {k: v / max(1, n) for k, v in sums.items()}


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if st.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def fit(method, data: TripletData, val: tuple[Sequence[Item], Sequence[Item]] | None, cfg: TrainConfig,
        out_dir: str | Path | None = None, resume: bool = False, run_config: dict | None = None,
        callbacks: Sequence[Callable] = (), epoch_callbacks: Sequence[Callable] = (), progress: bool = True,
        device=None, distributed: bool | None = None, find_unused_parameters: bool = False) -> TrainState:
    """Train ``method`` for ``cfg.epochs`` epochs, validating after each, keeping the best epoch.

    Args:
        method: an :class:`~sbirlab.models.methods.base.SBIRMethod`.
        data: the training batches.
        val: ``(val_queries, val_gallery)`` of the held-out seen classes, or None (keep the last epoch).
        out_dir: where ``checkpoint.pt`` (every epoch, atomic), ``best.pt`` and ``history.json`` go.
        resume: continue from ``out_dir/checkpoint.pt`` if it exists.
        run_config: the resolved run config stored in every checkpoint.
        callbacks: ``cb(step, logs)`` after every batch; ``epoch_callbacks``: ``cb(epoch, record)``, called
            after the epoch's checkpoint is written.
        device: where to train (default: where the method's parameters are).
        distributed: train data-parallel with DDP over the torch.distributed process group; ``None``
            (default) = when torchrun launched several processes (``WORLD_SIZE > 1``; the group is
            initialised if needed). ``cfg.batch_size`` is then the global batch
            (see :mod:`sbirlab.train.distributed`).
        find_unused_parameters: passed to DDP (for methods that leave trainable tensors unused in a step).
    Returns:
        The final :class:`TrainState`; the method holds the **best** epoch's weights when ``val`` is given.
    """
    from . import distributed as ddp

    if distributed is None:
        distributed = ddp.env_world_size() > 1 or ddp.is_distributed()
    info = ddp.init_distributed() if distributed else ddp.DistInfo()
    distributed = info.world_size > 1
    main = info.is_main
    device = torch.device(device) if device is not None else next(method.parameters()).device
    out = Path(out_dir) if out_dir else None
    if out and main:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + info.rank)
    if hasattr(data, "shard"):
        data.shard(info.rank, info.world_size)
    elif distributed:
        raise TypeError(f"data-parallel training needs data with a shard(rank, world_size) method, "
                        f"got {type(data).__name__}")
    total = cfg.epochs * len(data)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    opt, sched = make_optimizer(method, cfg, total)
    state = TrainState()
    ck = out / "checkpoint.pt" if out else None
    if resume and ck and ck.exists():
        st = torch.load(ck, map_location="cpu", weights_only=False)
        method.load_trainable_state_dict(st["trainable"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        ranks = st.get("rng_ranks")
        if ranks is not None and len(ranks) == info.world_size:
            _set_rng_state(ranks[info.rank])
        else:
            if info.world_size != st.get("world_size", 1):
                log.warning("checkpoint written with %s process(es), resuming with %d: the method's own "
                            "random draws differ from the original run", st.get("world_size", 1), info.world_size)
            _set_rng_state(st["rng"])
        state = TrainState(**st["state"])
        log.info("resumed from %s at epoch %d (step %d)", ck, state.epoch, state.step)
    select = cfg.select_metric or ("mAP@all" if data.setting == "zs" else "Acc@1")
    best_state = None
    if out and (out / "best.pt").exists() and resume:
        best_state = torch.load(out / "best.pt", map_location="cpu", weights_only=False)["trainable"]
    model = ddp.wrap_ddp(method, device, find_unused_parameters) if distributed else method
    while state.epoch < cfg.epochs and not (cfg.max_steps and state.step >= cfg.max_steps):
        t0 = time.time()
        train_logs = train_one_epoch(model, data, opt, sched, state, cfg, device, callbacks, progress and main)
        rec = {"epoch": state.epoch + 1, "step": state.step, **{f"train/{k}": v for k, v in train_logs.items()}}
        if val is not None:
            vq, vg = val
            if cfg.eval_max_queries and len(vq) > cfg.eval_max_queries:
                pick = np.random.default_rng(cfg.seed).choice(len(vq), cfg.eval_max_queries, replace=False)
                vq = [vq[i] for i in sorted(pick)]
            # rank 0 validates; every rank gets its numbers, so all keep the same best epoch
            vm = evaluate(method, vq, vg, data.setting, data.loader, device) if main else None
            vm = ddp.broadcast_object(vm)
            rec.update({f"val/{k}": v for k, v in vm.items()})
            score = vm.get(select, -math.inf)
            if score > state.best:
                state.best, state.best_epoch = score, state.epoch + 1
                best_state = method.trainable_state_dict()
                if out:
                    atomic_torch_save({"trainable": best_state, "epoch": state.epoch + 1, "val": vm,
                                       "config": run_config, "versions": versions()}, out / "best.pt", main_only=True)
        state.seconds += time.time() - t0
        rec["seconds"] = round(state.seconds, 1)
        state.history.append(rec)
        state.epoch += 1
        if main:
            log.info("epoch %d: %s", state.epoch, {k: round(v, 4) for k, v in rec.items() if isinstance(v, float)})
        if out:  # before the epoch callbacks, so an exception there cannot lose the epoch
            rng_ranks = ddp.all_gather_object(_rng_state()) if distributed else None
            atomic_torch_save({"trainable": method.trainable_state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "rng": _rng_state(), "rng_ranks": rng_ranks,
                               "world_size": info.world_size, "state": asdict(state), "metrics": rec,
                               "config": run_config, "versions": versions()}, ck, main_only=True)
            atomic_write_json(state.history, out / "history.json", main_only=True)
        for cb in epoch_callbacks:
            cb(state.epoch, rec)
    if best_state is not None:
        method.load_trainable_state_dict(best_state)
    return state
