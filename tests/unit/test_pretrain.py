"""Pretraining smoke tests: a from-scratch nano CLIP learns, resumes where it stopped, and ships.

The recipe is ``sbirlab.pretrain.pretrain`` itself on a 6-class world at 32 px (``sbirlab-nano``): one run
renders an 800-image corpus and trains 400 steps of batch 32, about 30 CPU seconds on one core.

Tuning notes (2-core machine, seeds 0-3). A from-scratch CLIP learns slowly: with 30 photos per class and
100 steps the held-out photo accuracy stayed at chance to 2x chance (loss 3.6 -> 3.3); 200-300 steps
reached 0.33-0.52 (a 180-photo corpus is memorised: more steps help little); lr 5e-3 was worse than
2e-3 / 3e-3. 120 photos per class, lr 2e-3 and 400 steps end at 0.64-0.76 (chance 0.17) with the loss
down by about a third, for every seed tried.
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from sbirlab.pretrain import PretrainConfig, heldout_set, pretrain, zero_shot_accuracy

CLASSES = ("apple", "car", "cup", "fish", "house", "tree")
CHANCE = 1 / len(CLASSES)


def tiny_config(**overrides) -> PretrainConfig:
    """The smallest recipe that reliably learns (see the module docstring)."""
    cfg = dict(arch="sbirlab-nano", size=32, classes=CLASSES, photos_per_class=120, drawing_share=0.1,
               samples=12_800, batch_size=32, lr=2e-3, warmup=20, amp=False, eval_every=100, ckpt_every=100,
               workers=1, eval_per_class=20)
    cfg.update(overrides)
    return PretrainConfig(**cfg)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One full tiny pretraining run, shipped as a tiny checkpoint: ``(cfg, card, out_dir, ship_path)``."""
    out = tmp_path_factory.mktemp("pretrain")
    cfg = tiny_config()
    ship = out / "ship" / "tiny-synthetic.pt"
    card = pretrain(cfg, out / "run", ship_to=ship, progress=False)
    return cfg, card, out / "run", ship


@pytest.mark.slow
def test_loss_falls_and_photos_are_recognised(trained):
    cfg, card, run, _ = trained
    history = json.loads((run / "history.json").read_text())
    assert len(history) == cfg.samples // cfg.batch_size
    losses = [h["loss"] for h in history]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    evals = [h for h in history if "photo_acc_all" in h]
    assert evals and evals[-1]["step"] == len(history)
    assert card["final"]["photo_acc_all"] == evals[-1]["photo_acc_all"]
    assert card["final"]["photo_acc_all"] > 2 * CHANCE, evals
    assert 0.0 <= card["final"]["sketch_acc_all"] <= 1.0


@pytest.mark.slow
def test_card_describes_the_run(trained):
    cfg, card, _, _ = trained
    assert card["arch"] == "sbirlab-nano"
    assert card["classes"] == sorted(CLASSES)
    assert card["samples_seen"] == (cfg.samples // cfg.batch_size) * cfg.batch_size
    n_draw = round(cfg.photos_per_class * cfg.drawing_share / (1 - cfg.drawing_share))
    n_synth = len(CLASSES) * (cfg.photos_per_class + n_draw)
    n_doodle = round(n_synth * cfg.doodle_share / (1 - cfg.doodle_share))  # real-doodle renderings (not photos)
    assert cfg.doodle_share > 0 and n_doodle > 0
    assert card["corpus"] == {"images": n_synth + n_doodle, "drawings": len(CLASSES) * n_draw + n_doodle,
                              "photos": len(CLASSES) * cfg.photos_per_class}
    assert set(card["split"]["unseen"]) <= set(CLASSES)
    json.dumps(card)  # JSON-able


def test_resume_continues_from_the_saved_step(tmp_path):
    out = tmp_path / "run"
    a, b = 8 * 32, 12 * 32
    small = dict(photos_per_class=8, eval_per_class=3, eval_every=4, ckpt_every=4)  # resuming needs no accuracy
    first = pretrain(tiny_config(samples=a, **small), out, progress=False)
    h_a = json.loads((out / "history.json").read_text())
    assert first["samples_seen"] == a and len(h_a) == 8
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 8 and len(state["history"]) == 8

    second = pretrain(tiny_config(samples=b, **small), out, resume=True, progress=False)
    h_b = json.loads((out / "history.json").read_text())
    assert second["samples_seen"] == b
    assert [h["step"] for h in h_b] == list(range(1, 13))  # no step repeated, none skipped
    assert h_b[:8] == h_a  # the first run's records are kept as they were
    assert torch.load(out / "state.pt", map_location="cpu", weights_only=False)["step"] == 12
    assert h_b[-1]["seconds"] >= h_a[-1]["seconds"]  # wall time accumulates across runs

    again = pretrain(tiny_config(samples=b, **small), out, resume=True, progress=False)
    assert again["samples_seen"] == b  # already done: nothing more is trained
    assert json.loads((out / "history.json").read_text()) == h_b


@pytest.mark.slow
def test_shipped_checkpoint_loads_as_tiny_synthetic(trained):
    from sbirlab.models.backbone import load_backbone

    cfg, card, run, ship = trained
    assert ship.is_file()
    bb = load_backbone("tiny-synthetic", checkpoint=ship)
    assert bb.arch == "sbirlab-nano" and bb.image_size == cfg.size
    assert bb.mean == pytest.approx(cfg.mean) and bb.std == pytest.approx(cfg.std)
    assert bb.card["samples_seen"] == card["samples_seen"]
    assert bb.card["final"]["photo_acc_all"] == pytest.approx(card["final"]["photo_acc_all"])

    fp32 = torch.load(run / "model_fp32.pt", map_location="cpu", weights_only=True)
    loaded = bb.model.state_dict()
    assert loaded.keys() == fp32.keys()
    for k, v in fp32.items():  # stored as fp16: equal up to half precision
        if v.is_floating_point():
            torch.testing.assert_close(loaded[k], v, rtol=2e-3, atol=2e-3 * max(1.0, float(v.abs().max())))

    # the shipped model classifies the held-out photos about as well as the run reported
    classes = sorted(CLASSES)
    held, labels = heldout_set(classes, cfg.eval_per_class, cfg.size, seed=cfg.seed + 1)
    acc = zero_shot_accuracy(bb.model, bb.tokenizer, classes, held["photo"], labels, bb.mean, bb.std)
    assert acc == pytest.approx(card["final"]["photo_acc_all"], abs=0.1)
    assert acc > 2 * CHANCE
