"""Data-parallel training (sbirlab.train.distributed): batch sharding, helpers, and real 2-process runs.

The fast tests check the sharding arithmetic and that the ranks' slices of a batch are exactly the
single-process batch. The ``slow`` tests launch ``torchrun --nproc_per_node=2`` on CPU (gloo) with the
random-weight ``sbirlab-nano`` CLIP on the ``ci`` synthetic world:

* both ranks end with bit-identical trainable tensors, equal (``atol=1e-6``, ``rtol=1e-5``) to a
  single-process run with the same global batch: the losses are batch means and each rank holds half
  of every batch, so the DDP gradient average is the single-process gradient up to float summation
  order; after 3 Adam steps the differences measured ~1e-8;
* only rank 0 writes the run folder; ``torchrun -m sbirlab train`` (the one command line) works.

This file is also the torchrun worker (``python tests/unit/test_distributed.py --worker ...``).
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

import sbirlab  # noqa: F401  (registers the tiny configs)
from sbirlab.train import distributed as ddp
from sbirlab.train.data import ImageLoader, TripletData, shard_positions

REPO = Path(__file__).resolve().parents[2]
#: the run both the 2-process job and the single-process reference train: ci preset (3 steps,
#: global batch 8 = 4 classes x 2 sketches; each rank gets 2 whole classes)
CFG = dict(method="clip-at", setting="zs", preset="ci", backbone="sbirlab-nano", seed=0,
           train={"batch_size": 8, "classes_per_batch": 4, "max_steps": 3})
ATOL, RTOL = 1e-6, 1e-5


def nano_backbone(seed=0):
    from sbirlab.models.backbone import load_backbone

    torch.manual_seed(seed)
    return load_backbone("sbirlab-nano")


def spy_build(experiment):
    """Capture the method run_experiment builds (to read its trained tensors afterwards)."""
    captured = {}
    real = experiment.build

    def spy(cfg, backbone=None):
        out = real(cfg, backbone)
        captured["method"] = out[1]
        return out

    experiment.build = spy
    return captured


# ---------------------------------------------------------------------------------------------
# the torchrun worker


def worker(out: str, dump: str) -> None:
    """One rank: run the experiment data-parallel, then dump this rank's trainable tensors."""
    from sbirlab import experiment
    from sbirlab.experiment import RunConfig

    captured = spy_build(experiment)
    metrics = experiment.run_distributed(RunConfig(**CFG), out, progress=False, backbone=nano_backbone(), destroy=False)
    info = ddp.init_distributed()
    assert info.world_size == 2 and info.backend == "gloo", info
    torch.save({"trainable": captured["method"].trainable_state_dict(), "metrics": metrics, "rank": info.rank,
                "world_size": info.world_size}, Path(dump) / f"rank{info.rank}.pt")
    ddp.barrier()
    ddp.cleanup()


def gather_worker(dump: str) -> None:
    """One rank of the gather_rows check: uneven rows (rank r holds r + 2), gradients back to the owner."""
    ddp.init_distributed()
    r = ddp.get_rank()
    x = (torch.arange((r + 2) * 3, dtype=torch.float32).reshape(r + 2, 3) + 100 * r).requires_grad_(True)
    labels = torch.full((r + 2,), r, dtype=torch.long)
    xs, ls = ddp.gather_rows(x, labels)
    # every rank's loss weighs the gathered rows by (1 + its rank): d(sum of losses)/dx = 3 everywhere
    (xs.sum() * (1 + r)).backward()
    torch.save({"rows": xs.detach(), "labels": ls, "grad": x.grad}, Path(dump) / f"gather{r}.pt")
    ddp.barrier()
    ddp.cleanup()


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The ``ci`` world (shared per session with test_loop.py); ``SBIRLAB_DATA`` set while this module runs."""
    from sbirlab.experiment import RunConfig, load_data

    root = os.environ.get("SBIRLAB_TEST_DATA") or str(tmp_path_factory.getbasetemp() / "sbirlab_data")
    old = os.environ.get("SBIRLAB_DATA")
    os.environ["SBIRLAB_DATA"] = root
    try:
        index, parts = load_data(RunConfig(preset="ci", backbone="sbirlab-nano"))
        yield root, index, parts
    finally:
        if old is None:
            os.environ.pop("SBIRLAB_DATA", None)
        else:
            os.environ["SBIRLAB_DATA"] = old


# ---------------------------------------------------------------------------------------------
# sharding


@pytest.mark.parametrize("P,K,W", [(4, 2, 2), (8, 4, 4), (3, 4, 2), (1, 8, 4), (2, 2, 2), (6, 3, 3), (5, 5, 1)])
def test_shard_positions_disjoint_complete_balanced(P, K, W):
    slices = [shard_positions(P, K, r, W) for r in range(W)]
    flat = [i for s in slices for i in s]
    assert sorted(flat) == list(range(P * K))               # disjoint and complete
    assert {len(s) for s in slices} == {P * K // W}          # equal sizes: no uneven DDP steps
    for s in slices:
        counts = Counter(i // K for i in s)                  # class of a position in a class-major batch
        assert len(set(counts.values())) == 1                # class-balanced within every rank
        if P % W == 0:
            assert len(counts) == P // W and set(counts.values()) == {K}    # whole classes
        else:
            assert len(counts) == P and set(counts.values()) == {K // W}    # a share of every class


def test_shard_positions_rejects_uneven_splits():
    with pytest.raises(ValueError, match="multiple of 2"):
        shard_positions(3, 3, 0, 2)
    with pytest.raises(ValueError, match="out of range"):
        shard_positions(4, 2, 2, 2)


@pytest.mark.parametrize("setting,classes_per_batch", [("zs", 4), ("fg", 4), ("zs", 3)])
def test_rank_slices_reassemble_the_single_process_batch(world, setting, classes_per_batch):
    """Triplet draws and augmentation are made for the global batch, so the ranks' slices are exactly
    the rows of the single-process batch (3 classes per batch: each rank gets half of every class)."""
    _, _, parts = world
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    loader = ImageLoader(32, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    classes = sorted({s.label for s in parts.train_sketches})[:8]

    def data():
        return TripletData(parts.train_sketches, parts.train_photos, classes, loader, setting,
                           batch_size=4 * classes_per_batch, classes_per_batch=classes_per_batch, seed=3,
                           steps_per_epoch=2)

    full = data()
    full.set_epoch(1)
    ranks = [data().shard(r, 2) for r in range(2)]
    for d in ranks:
        d.set_epoch(1)
    P, K = full.sampler.P, full.sampler.K
    n_steps = 0
    for whole, *shards in zip(full, *ranks):
        n_steps += 1
        for r, shard in enumerate(shards):
            rows = torch.tensor(shard_positions(P, K, r, 2))
            for key, value in whole.items():
                assert torch.equal(shard[key], value[rows]), (r, key)
    assert n_steps == len(full) == len(ranks[0]) == 2
    assert ranks[0].shard(0, 1)._rows is None  # shard(0, 1) undoes the sharding


# ---------------------------------------------------------------------------------------------
# single-process behaviour of the helpers


def test_helpers_are_no_ops_without_a_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = ddp.init_distributed()
    assert (info.rank, info.world_size, info.backend, info.is_main) == (0, 1, "", True)
    assert ddp.is_main() and not ddp.is_distributed() and ddp.get_world_size() == 1
    assert ddp.broadcast_object({"a": 1}) == {"a": 1} and ddp.all_gather_object(3) == [3]
    assert ddp.mean_logs({"loss": 0.5}) == {"loss": 0.5}
    m = torch.nn.Linear(2, 2)
    assert ddp.wrap_ddp(m) is m and ddp.unwrap(m) is m
    ddp.barrier()
    ddp.cleanup()


def _train_args(*argv):
    from sbirlab.cli import _parser

    return _parser().parse_args(["train", "--out", "unused", *argv])


def test_main_train_arguments():
    from sbirlab.cli import run_config_from_args

    args = _train_args("--method", "b-ip", "--preset", "ci", "--backbone", "sbirlab-nano",
                       "--set", "lambda_cls=0.5", "train.epochs=2", "world.photos_per_class=4", "train.amp=off")
    cfg = run_config_from_args(args)
    assert (cfg.method, cfg.preset, cfg.backbone) == ("b-ip", "ci", "sbirlab-nano")
    assert cfg.method_cfg == {"lambda_cls": 0.5} and cfg.train == {"epochs": 2, "amp": "off"}
    assert cfg.world == {"photos_per_class": 4} and cfg.resolved_train().epochs == 2
    with pytest.raises(TypeError, match="epoks"):
        run_config_from_args(_train_args("--set", "train.epoks=2"))
    with pytest.raises(SystemExit):
        run_config_from_args(_train_args("--set", "nonsense"))


def test_main_train_single_process(world, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    from sbirlab.cli import main

    assert main(["train", "--method", "b-ip", "--backbone", "sbirlab-nano", "--preset", "ci",
                 "--out", str(tmp_path), "--no-progress", "--set", "train.max_steps=2"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["train_steps"] == 2
    assert json.loads(capsys.readouterr().out)["mAP@all"] == metrics["mAP@all"]
    assert {"config.json", "metrics.json", "checkpoint.pt", "best.pt"} <= {p.name for p in tmp_path.iterdir()}


# ---------------------------------------------------------------------------------------------
# two processes through torchrun


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], data_root: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, SBIRLAB_DATA=data_root, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *args]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.slow
def test_two_ranks_match_each_other_and_a_single_process_run(world, tmp_path, monkeypatch):
    from sbirlab import experiment
    from sbirlab.experiment import RunConfig

    root, _, parts = world
    out, dump = tmp_path / "ddp", tmp_path / "dump"
    dump.mkdir()
    t0 = time.time()
    _torchrun([__file__, "--worker", str(out), str(dump)], root)
    t_ddp = time.time() - t0
    r0 = torch.load(dump / "rank0.pt", weights_only=False)
    r1 = torch.load(dump / "rank1.pt", weights_only=False)
    assert (r0["rank"], r1["rank"], r0["world_size"]) == (0, 1, 2)
    for k, v in r0["trainable"].items():  # DDP keeps the replicas bit-identical
        assert torch.equal(v, r1["trainable"][k]), k

    # only rank 0 wrote the run folder, with every rank's RNG state in the checkpoint
    files = {p.name for p in out.iterdir()}
    assert files == {"config.json", "metrics.json", "checkpoint.pt", "best.pt", "history.json"}
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ck["world_size"] == 2 and len(ck["rng_ranks"]) == 2
    written = json.loads((out / "metrics.json").read_text())
    assert written["train_steps"] == 3 and written["n_queries"] == len(parts.test_queries)

    # the single-process run with the same global batch
    monkeypatch.setattr(experiment, "build", experiment.build)  # restored after the spy below
    captured = spy_build(experiment)
    single = experiment.run_experiment(RunConfig(**CFG), tmp_path / "single", progress=False, backbone=nano_backbone())
    ref = captured["method"].trainable_state_dict()
    assert set(ref) == set(r0["trainable"])
    worst = max(float((ref[k] - r0["trainable"][k]).abs().max()) for k in ref)
    for k, v in ref.items():
        assert torch.allclose(r0["trainable"][k], v, atol=ATOL, rtol=RTOL), (k, worst)
    for key in ("mAP@all", "mAP@200", "P@100", "P@200"):
        assert written[key] == pytest.approx(single[key], abs=1e-4)
    h_ddp = json.loads((out / "history.json").read_text())
    h_one = json.loads((tmp_path / "single" / "history.json").read_text())
    # the logged training loss is the global batch's (averaged over the ranks)
    assert h_ddp[0]["train/loss"] == pytest.approx(h_one[0]["train/loss"], rel=1e-5)
    print(f"2-process run {t_ddp:.1f} s; max |single - ddp| = {worst:.2e}")


def test_gather_rows_is_the_identity_in_one_process():
    x, y = torch.randn(3, 2, requires_grad=True), torch.arange(3)
    gx, gy = ddp.gather_rows(x, y)
    assert gx is x and gy is y


@pytest.mark.slow
def test_gather_rows_across_two_ranks(world, tmp_path):
    """Uneven row counts are padded and trimmed; the backward sums every rank's gradient on the owner."""
    root = world[0]
    _torchrun([__file__, "--gather", str(tmp_path)], root, timeout=300)
    want = torch.cat([torch.arange(6, dtype=torch.float32).reshape(2, 3),
                      torch.arange(9, dtype=torch.float32).reshape(3, 3) + 100])
    for r in (0, 1):
        got = torch.load(tmp_path / f"gather{r}.pt")
        assert torch.equal(got["rows"], want)
        assert got["labels"].tolist() == [0, 0, 1, 1, 1]
        assert torch.equal(got["grad"], torch.full((r + 2, 3), 3.0))  # 1 (rank 0's loss) + 2 (rank 1's)


@pytest.mark.slow
def test_torchrun_module_entry_point(world, tmp_path):
    root, _, parts = world
    """The CLI entry point under torchrun, with CLIP-AT FG (per-rank patch shuffling and f-divergence:
    each rank holds 2 whole classes x 2 sketches of the 4 x 2 global batch)."""
    proc = _torchrun(["-m", "sbirlab", "train", "--method", "clip-at", "--setting", "fg",
                      "--backbone", "sbirlab-nano", "--preset", "ci", "--out", str(tmp_path), "--no-progress"], root)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["train_steps"] == 3 and (metrics["method"], metrics["setting"]) == ("clip-at", "fg")
    assert proc.stdout.count('"Acc@1"') == 1  # printed by rank 0 only
    history = json.loads((tmp_path / "history.json").read_text())
    assert {"train/ps", "train/fdiv", "train/cls", "val/Acc@1"} <= set(history[0])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["batch_size"] == 8 and config["preset"] == "ci"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--gather":
        gather_worker(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit("usage: torchrun --nproc_per_node=2 tests/unit/test_distributed.py --worker OUT DUMP")
