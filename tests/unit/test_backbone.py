"""Backbone factory: specs, offline errors, tiny checkpoints."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import open_clip
import sbirlab
from sbirlab.models import backbone as bb
from sbirlab.models.backbone import (
    Backbone,
    BackboneError,
    load_backbone,
    parse_spec,
    resolve_device,
    save_tiny_checkpoint,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Never touch the network: hub offline, plain URL downloads refused."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def _refuse(*args, **kwargs):
        raise OSError("network disabled in unit tests")

    monkeypatch.setattr("urllib.request.urlopen", _refuse)


def test_parse_spec():
    assert parse_spec("ViT-B-32:openai") == ("ViT-B-32", "openai")
    assert parse_spec("ViT-B-32") == ("ViT-B-32", None)
    assert parse_spec("ViT-B-32:random") == ("ViT-B-32", None)
    assert parse_spec("ViT-B-16:/weights/file.pt") == ("ViT-B-16", "/weights/file.pt")
    assert parse_spec("hf-hub:laion/CLIP-ViT-B-32") == ("hf-hub:laion/CLIP-ViT-B-32", None)
    with pytest.raises(BackboneError):
        parse_spec(" ")


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device(None) == torch.device("cuda")


@pytest.mark.parametrize("spec,size,ctx", [("sbirlab-nano", 32, 32), ("sbirlab-micro:random", 64, 32),
                                           ("sbirlab-tiny", 64, 32)])
def test_random_tiny_specs(spec, size, ctx):
    b = load_backbone(spec, device="auto")
    assert b.device == resolve_device("auto") and next(b.model.parameters()).device.type == b.device.type
    assert isinstance(b, Backbone)
    assert b.spec == spec and b.pretrained is None
    assert b.image_size == size and b.context_length == ctx
    assert not b.model.training
    img = Image.new("RGB", (100, 80), "white")
    assert b.preprocess(img).shape == (3, size, size)
    tok = b.tokenizer(["a sketch of a cat"])
    assert tok.shape == (1, ctx)
    with torch.no_grad():
        assert b.model.encode_text(tok).shape[0] == 1
    assert len(b.mean) == len(b.std) == 3


def test_random_real_architecture():
    b = load_backbone("ViT-B-32:random")
    assert b.arch == "ViT-B-32" and b.image_size == 224 and b.context_length == 77
    assert b.model.visual.transformer.width == 768


def test_unknown_name_and_tag():
    with pytest.raises(BackboneError, match="unknown open_clip architecture"):
        load_backbone("ViT-B-33")
    with pytest.raises(BackboneError, match="unknown pretrained tag 'nope'.*openai"):
        load_backbone("ViT-B-32:nope")


def test_pretrained_offline_fails_fast_with_help(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(BackboneError) as err:
        load_backbone("ViT-B-32:openai", cache_dir=str(tmp_path))
    assert time.monotonic() - t0 < 20
    msg = str(err.value)
    assert "Could not fetch the pretrained weights for 'ViT-B-32:openai'" in msg
    assert str(tmp_path) in msg
    assert "tiny-synthetic" in msg and "HF_HUB_OFFLINE" in msg


def test_pretrained_error_names_default_cache(monkeypatch):
    def _offline_download(*args, **kwargs):
        raise RuntimeError("offline mode is enabled")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", _offline_download)
    from huggingface_hub import constants

    with pytest.raises(BackboneError) as err:
        load_backbone("ViT-B-32:laion2b_s34b_b79k")
    msg = str(err.value)
    assert constants.HF_HUB_CACHE in msg and "~" not in msg.split("URL downloads")[0][-5:]
    assert "ViT-B-32:random" in msg


def test_unreachable_hub_uses_cache_only(monkeypatch, tmp_path):
    """No HF_HUB_OFFLINE but no network: a quick probe switches the hub to cache-only for the call."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(bb, "_hub_reachable", lambda timeout=3.0: False)
    seen = []

    def _download(*args, **kwargs):
        seen.append(constants.HF_HUB_OFFLINE)
        raise RuntimeError("not in the local cache")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", _download)
    with pytest.raises(BackboneError, match="unreachable"):
        load_backbone("ViT-B-16:openai", cache_dir=str(tmp_path))
    assert seen == [True] and constants.HF_HUB_OFFLINE is False


def test_missing_tiny_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("SBIRLAB_CHECKPOINTS", str(tmp_path))
    with pytest.raises(BackboneError) as err:
        load_backbone("tiny-synthetic")
    msg = str(err.value)
    assert str(tmp_path / "tiny-synthetic.pt") in msg and "sbirlab pretrain" in msg
    with pytest.raises(BackboneError, match="checkpoint not found"):
        load_backbone("tiny-synthetic", checkpoint=tmp_path / "nope.pt")


def test_default_checkpoint_dir(monkeypatch):
    monkeypatch.delenv("SBIRLAB_CHECKPOINTS", raising=False)
    expected = Path(sbirlab.__file__).resolve().parent.parent / "data" / "checkpoints" / "tiny-synthetic.pt"
    assert bb.tiny_checkpoint_path() == expected


def test_tiny_checkpoint_round_trip(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = open_clip.create_model("sbirlab-nano", pretrained=None).eval()
    mean, std = (0.9, 0.9, 0.9), (0.25, 0.25, 0.25)
    path = save_tiny_checkpoint(model, tmp_path / "tiny-synthetic.pt", arch="sbirlab-nano",
                                card={"data": "unit test", "steps": 0, "acc": np.float32(0.5)}, mean=mean, std=std)
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["tiny-synthetic.pt"]  # no temp file left
    payload = torch.load(path, weights_only=True)
    assert payload["arch"] == "sbirlab-nano" and payload["preprocess"]["image_size"] == 32
    assert all(v.dtype == torch.float16 for v in payload["state_dict"].values() if v.is_floating_point())
    assert payload["versions"]["open_clip"] == open_clip.__version__

    monkeypatch.setenv("SBIRLAB_CHECKPOINTS", str(tmp_path))
    for b in (load_backbone("tiny-synthetic"), load_backbone("sbirlab-nano", checkpoint=path)):
        assert b.arch == "sbirlab-nano" and b.image_size == 32
        assert b.mean == mean and b.std == std and b.card["data"] == "unit test" and b.card["acc"] == 0.5
        assert all(p.dtype == torch.float32 for p in b.model.parameters())
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            ref, got = model.encode_image(x), b.model.encode_image(x)
        torch.testing.assert_close(got, ref, atol=2e-2 * ref.abs().max().item(), rtol=1e-2)
        assert b.preprocess.mean == tuple(mean) and b.preprocess.std == tuple(std) and b.preprocess.image_size == 32

    # exact after rounding the original to fp16 precision
    rounded = open_clip.create_model("sbirlab-nano", pretrained=None).eval()
    rounded.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                             for k, v in model.state_dict().items()})
    with torch.no_grad():
        torch.testing.assert_close(b.model.encode_image(x), rounded.encode_image(x), rtol=0, atol=0)

    with pytest.raises(BackboneError, match="holds architecture 'sbirlab-nano'"):
        load_backbone("sbirlab-micro", checkpoint=path)


def test_save_is_atomic(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = open_clip.create_model("sbirlab-nano", pretrained=None)
    target = tmp_path / "ck.pt"
    target.write_bytes(b"old")

    def _crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", _crash)
    with pytest.raises(KeyboardInterrupt):
        save_tiny_checkpoint(model, target, arch="sbirlab-nano")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_bad_checkpoint_file(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"weights": {}}, path)
    with pytest.raises(BackboneError, match="not an sbirlab tiny checkpoint"):
        load_backbone("tiny-synthetic", checkpoint=path)


def test_the_backbone_preprocess_is_what_the_loader_feeds(tmp_path):
    """One transform: ``Backbone.preprocess(img)`` equals what ``ImageLoader.for_backbone`` makes of the
    same file (non-square photos: shortest side to the input size, centre crop, as open_clip's eval
    transform; square ones only resized)."""
    import numpy as np

    from sbirlab.data.base import Item
    from sbirlab.train.data import ImageLoader

    b = load_backbone("sbirlab-micro:random")
    loader = ImageLoader.for_backbone(b, cache=False)
    assert loader.preprocess is b.preprocess and loader.size == b.image_size == 64
    rng = np.random.default_rng(0)
    for w, h in ((100, 80), (64, 64), (50, 120)):
        path = tmp_path / f"p{w}x{h}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        want = b.preprocess(Image.open(path))
        got = loader.normalize(loader.load(Item(path=str(path), label="cat", modality="photo")))
        assert want.shape == (3, 64, 64) and torch.equal(got, want)
    # the crop keeps the centre: a wide image whose middle is white gives a white input
    img = Image.new("RGB", (300, 100), "black")
    img.paste(Image.new("RGB", (100, 100), "white"), (100, 0))
    x = b.preprocess(img)
    white = b.preprocess(Image.new("RGB", (64, 64), "white"))
    assert torch.allclose(x[:, 8:-8, 8:-8], white[:, 8:-8, 8:-8])
