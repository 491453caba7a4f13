"""CLIP backbones for sbirlab: one factory over open_clip, plus the shipped offline tiny CLIP.

CLIP: Radford et al., *Learning Transferable Visual Models From Natural Language Supervision*,
ICML 2021; OpenCLIP: Cherti et al., *Reproducible scaling laws for contrastive language-image
learning*, CVPR 2023 (https://github.com/mlfoundations/open_clip).

:func:`load_backbone` mirrors open_clip's ``create_model_and_transforms`` and returns a
:class:`Backbone` bundling the model, its eval / train transforms, its tokenizer and its
normalisation constants. Specs:

- ``"NAME:TAG"``: any open_clip architecture with a pretrained tag (``"ViT-B-32:openai"``,
  ``"ViT-B-16:openai"``, ``"ViT-B-32:laion2b_s34b_b79k"``), downloaded and cached by open_clip itself.
  ``TAG`` may also be a path to an open_clip checkpoint file. Tags trained with QuickGELU (the OpenAI
  ones) get ``force_quick_gelu=True``, which open_clip itself only warns about. Offline, a
  :class:`BackboneError` explains where open_clip caches weights and that ``"tiny-synthetic"`` works
  offline; without ``HF_HUB_OFFLINE`` a 3-second probe of the hub decides whether to look in the cache
  only, instead of letting huggingface_hub retry for about a minute.
- ``"NAME"`` or ``"NAME:random"``: the architecture with random weights (never touches the network);
  unit tests use it for the real architectures (``"ViT-B-32:random"``) and sbirlab's tiny configs
  (``"sbirlab-nano"``, ``"sbirlab-micro"``, ``"sbirlab-tiny"``).
- ``"tiny-synthetic"``: the small CLIP shipped in ``data/checkpoints/tiny-synthetic.pt``
  (architecture ``sbirlab-micro``, pretrained on sbirlab's synthetic world by ``sbirlab pretrain``).
  The directory can be moved with the ``SBIRLAB_CHECKPOINTS`` environment variable.

A tiny checkpoint is a ``torch.save``-d dict::

    {"format": "sbirlab-tiny-clip", "format_version": 1,
     "arch": "sbirlab-micro",
     "state_dict": {...},            # floating tensors stored as fp16, cast back to fp32 on load
     "preprocess": {"mean": [...], "std": [...], "image_size": 64},
     "card": {...},                  # model card: data, recipe, metrics (free-form, JSON-able)
     "versions": {"sbirlab": ..., "open_clip": ..., "torch": ...}}

The synthetic world has its own normalisation (sketches are mostly white), so the checkpoint records
``mean`` / ``std``; without them open_clip's OpenAI constants are used.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch

from ..data.images import Preprocess
from ..io import atomic_torch_save

logger = logging.getLogger(__name__)

__all__ = [
    "Backbone",
    "BackboneError",
    "TINY_SPEC",
    "TINY_ARCH",
    "TINY_CHECKPOINT_NAME",
    "checkpoints_dir",
    "tiny_checkpoint_path",
    "load_backbone",
    "load_tiny_checkpoint",
    "save_tiny_checkpoint",
    "resolve_device",
    "parse_spec",
]

TINY_SPEC = "tiny-synthetic"
TINY_ARCH = "sbirlab-micro"
TINY_CHECKPOINT_NAME = "tiny-synthetic.pt"
CHECKPOINT_FORMAT = "sbirlab-tiny-clip"
CHECKPOINT_FORMAT_VERSION = 1
RANDOM_TAGS = ("", "random", "none")


class BackboneError(RuntimeError):
    """A backbone could not be built: unknown name or tag, weights not fetchable, bad checkpoint."""


@dataclass
class Backbone:
    """A loaded CLIP with everything needed to feed it.

    Attributes:
        model: the open_clip model (``CLIP`` or ``CustomTextCLIP``), in eval mode.
        preprocess: the image transform, PIL image -> normalised tensor ``[3, H, W]``
            (:class:`sbirlab.data.images.Preprocess`: shortest side to ``image_size``, centre crop, the
            model's mean / std, as open_clip's eval transform); :meth:`sbirlab.train.data.ImageLoader.for_backbone`
            feeds every image through this same object (training augmentation is the data side's).
        tokenizer: callable ``list[str] -> LongTensor [N, context_length]``.
        spec: the spec string the backbone was loaded from.
        image_size: input side in pixels (square models).
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.
        arch: open_clip architecture name.
        pretrained: pretrained tag, checkpoint path, or ``None`` for random weights.
        device: the device the model lives on.
        card: model card of a tiny checkpoint (empty otherwise).
    """

    model: torch.nn.Module
    preprocess: Preprocess
    tokenizer: Callable
    spec: str
    image_size: int
    mean: tuple
    std: tuple
    arch: str = ""
    pretrained: Optional[str] = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    card: dict = field(default_factory=dict)

    @property
    def context_length(self) -> int:
        """Text context length of the tokenizer / text tower."""
        return int(getattr(self.tokenizer, "context_length", getattr(self.model, "context_length", 77)))


# --------------------------------------------------------------------------------------------------
# helpers


def resolve_device(device: Union[str, torch.device, None] = "auto") -> torch.device:
    """Turn ``"auto"`` (or ``None``) into ``cuda`` when available, else ``cpu``; pass others through.

    Args:
        device: ``"auto"``, ``None``, a device string such as ``"cpu"`` / ``"cuda:1"``, or a device.

    Returns:
        A ``torch.device``.
    """
    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def checkpoints_dir() -> Path:
    """Directory holding shipped checkpoints: ``$SBIRLAB_CHECKPOINTS`` or ``<repo>/data/checkpoints``."""
    env = os.environ.get("SBIRLAB_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    import sbirlab

    return Path(sbirlab.__file__).resolve().parent.parent / "data" / "checkpoints"


def tiny_checkpoint_path() -> Path:
    """Where the shipped ``tiny-synthetic`` checkpoint is expected."""
    return checkpoints_dir() / TINY_CHECKPOINT_NAME


def parse_spec(spec: str) -> tuple[str, Optional[str]]:
    """Split a backbone spec into ``(name, tag)``; ``tag`` is ``None`` for random weights.

    ``"ViT-B-32:openai"`` -> ``("ViT-B-32", "openai")``; ``"ViT-B-32"`` / ``"ViT-B-32:random"`` ->
    ``("ViT-B-32", None)``; ``hf-hub:`` / ``local-dir:`` specs are returned whole as the name (open_clip
    resolves them) unless they carry nothing after the schema.
    """
    spec = spec.strip()
    if not spec:
        raise BackboneError("empty backbone spec; try 'tiny-synthetic' or 'ViT-B-32:openai'")
    for schema in ("hf-hub:", "local-dir:"):
        if spec.startswith(schema):
            return spec, None
    name, _, tag = spec.partition(":")
    tag = tag.strip()
    if tag.lower() in RANDOM_TAGS:
        tag = None
    return name.strip(), tag


def _default_cache_locations() -> str:
    """Human-readable description of where open_clip caches downloaded weights."""
    try:
        from huggingface_hub import constants as hf_constants

        hf_cache = hf_constants.HF_HUB_CACHE
    except Exception:  # pragma: no cover - huggingface_hub is an open_clip dependency
        hf_cache = os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")
    return (
        f"Hugging Face hub cache {hf_cache} (set HF_HOME or HF_HUB_CACHE to move it) for hub-hosted "
        f"weights, and {os.path.expanduser('~/.cache/clip')} for URL downloads"
    )


def _hf_offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Quick TCP probe of the Hugging Face endpoint (skipped, i.e. assumed reachable, behind a proxy).

    Without it, huggingface_hub retries for about a minute before failing when there is no network.
    """
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        from huggingface_hub import constants as hf_constants

        endpoint = urlparse(hf_constants.ENDPOINT)
    except Exception:  # pragma: no cover
        endpoint = urlparse("https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def _hub_offline(enabled: bool):
    """Temporarily put huggingface_hub in offline mode: cached weights still load, missing ones fail fast."""
    if not enabled:
        yield
        return
    from huggingface_hub import constants as hf_constants

    previous = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = previous


@contextmanager
def _quiet_random_init_warning():
    """Drop open_clip's "No pretrained weights loaded" warning (root logger) while building a model
    whose weights are loaded from an sbirlab checkpoint right after."""

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("No pretrained weights loaded")

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _preprocess(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Preprocess:
    return Preprocess(int(image_size), tuple(float(m) for m in mean), tuple(float(s) for s in std))


def _image_size(model: torch.nn.Module) -> int:
    size = getattr(model.visual, "image_size", 224)
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            logger.warning("non-square image size %s; reporting the height", size)
        size = size[0]
    return int(size)


# --------------------------------------------------------------------------------------------------
# tiny checkpoints


def _plain(card: Mapping[str, Any]) -> dict:
    """JSON-plain copy of a model card (numpy / torch scalars -> numbers, other objects -> str), so the
    checkpoint loads with ``torch.load(weights_only=True)``."""
    import json

    def default(o):
        if hasattr(o, "item") and callable(o.item):
            try:
                return o.item()
            except (ValueError, RuntimeError):
                pass
        if hasattr(o, "tolist") and callable(o.tolist):
            return o.tolist()
        return str(o)

    return json.loads(json.dumps(dict(card), default=default))


def save_tiny_checkpoint(
    model: torch.nn.Module,
    path: Union[str, os.PathLike],
    arch: str = TINY_ARCH,
    card: Optional[Mapping[str, Any]] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
) -> Path:
    """Save a CLIP as a compact sbirlab tiny checkpoint (fp16 weights), atomically.

    The file is written to a temporary file in the same directory and moved into place with
    ``os.replace``, so a crash never leaves a half-written checkpoint behind.

    Args:
        model: an open_clip CLIP of architecture ``arch``.
        path: destination file.
        arch: open_clip architecture name the weights belong to (must be registered when loading).
        card: model card (free-form, JSON-able): data, recipe, metrics.
        mean: image normalisation mean the model was trained with (default: OpenAI CLIP's).
        std: image normalisation std (default: OpenAI CLIP's).

    Returns:
        The checkpoint path.
    """
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    import sbirlab

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        state[key] = value.to(torch.float16) if value.is_floating_point() else value.clone()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "arch": arch,
        "state_dict": state,
        "preprocess": {
            "mean": [float(m) for m in (mean if mean is not None else OPENAI_DATASET_MEAN)],
            "std": [float(s) for s in (std if std is not None else OPENAI_DATASET_STD)],
            "image_size": _image_size(model),
        },
        "card": _plain(card or {}),
        "versions": {"sbirlab": str(sbirlab.__version__), "open_clip": str(open_clip.__version__),
                     "torch": str(torch.__version__)},
    }
    atomic_torch_save(payload, path)
    logger.info("saved tiny checkpoint (%s) to %s", arch, path)
    return path


def load_tiny_checkpoint(path: Union[str, os.PathLike], map_location: Union[str, torch.device] = "cpu") -> dict:
    """Read a tiny checkpoint file and validate its layout (weights stay as stored, fp16).

    Raises:
        BackboneError: the file is missing or is not an sbirlab tiny checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt file, or pickled objects outside the weights-only allowlist
        raise BackboneError(f"could not read checkpoint {path}: {e}") from e
    if not isinstance(payload, dict) or "state_dict" not in payload or "arch" not in payload:
        raise BackboneError(
            f"{path} is not an sbirlab tiny checkpoint (expected a dict with 'arch' and 'state_dict'; "
            f"write one with sbirlab.models.backbone.save_tiny_checkpoint)")
    return payload


def _missing_tiny_message(path: Path) -> str:
    return (
        f"The shipped tiny CLIP checkpoint is missing: {path}. Create it with `sbirlab pretrain` "
        f"(writes {TINY_CHECKPOINT_NAME} into the checkpoints directory), point SBIRLAB_CHECKPOINTS at a "
        f"directory that holds it, or pass checkpoint=<file>. For random weights of the same architecture "
        f"use the spec '{TINY_ARCH}'."
    )


def _build_from_tiny_checkpoint(path: Path, spec: str, device: torch.device) -> Backbone:
    import open_clip

    payload = load_tiny_checkpoint(path)
    arch = payload["arch"]
    if open_clip.get_model_config(arch) is None:
        raise BackboneError(f"{path}: architecture '{arch}' is not registered with open_clip "
                            f"(sbirlab registers its tiny configs on import)")
    pre = payload.get("preprocess") or {}
    try:
        with _quiet_random_init_warning():  # the weights are loaded right below
            model = open_clip.create_model(arch, pretrained=None, device="cpu")
    except Exception as e:
        raise BackboneError(f"could not build architecture '{arch}' for {path}: {e}") from e
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise BackboneError(f"{path}: weights do not match architecture '{arch}': {e}") from e
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    mean = tuple(float(m) for m in pre.get("mean", OPENAI_DATASET_MEAN))
    std = tuple(float(s) for s in pre.get("std", OPENAI_DATASET_STD))
    image_size = int(pre.get("image_size", _image_size(model)))
    if image_size != _image_size(model):
        raise BackboneError(f"{path}: preprocess image_size {image_size} differs from the architecture's "
                            f"{_image_size(model)}")
    model.to(device).eval()
    return Backbone(
        model=model, preprocess=_preprocess(image_size, mean, std),
        tokenizer=open_clip.get_tokenizer(arch), spec=spec, image_size=image_size, mean=mean, std=std,
        arch=arch, pretrained=str(path), device=device, card=dict(payload.get("card") or {}),
    )


# --------------------------------------------------------------------------------------------------
# the factory


def load_backbone(
    spec: str = TINY_SPEC,
    device: Union[str, torch.device] = "cpu",
    checkpoint: Union[str, os.PathLike, None] = None,
    cache_dir: Optional[str] = None,
) -> Backbone:
    """Build a CLIP backbone from a spec (see the module docstring).

    Args:
        spec: ``"tiny-synthetic"``, ``"NAME"``, ``"NAME:random"`` or ``"NAME:TAG"``.
        device: ``"cpu"``, ``"cuda"``, ``"auto"`` (cuda if available) or a ``torch.device``.
        checkpoint: an sbirlab tiny checkpoint file to load instead of the spec's weights. With
            ``spec="tiny-synthetic"`` it replaces the shipped file; otherwise the file's ``arch`` must
            match the spec's name.
        cache_dir: download cache for open_clip (default: open_clip's / Hugging Face's own).

    Returns:
        A :class:`Backbone` with the model in eval mode on ``device``.

    Raises:
        BackboneError: unknown architecture or tag; pretrained weights that cannot be fetched (offline,
            ``HF_HUB_OFFLINE=1``); a missing or malformed tiny checkpoint.
    """
    import open_clip

    import sbirlab  # noqa: F401  (registers the tiny configs)

    device = resolve_device(device)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise BackboneError(f"checkpoint not found: {path}")
        backbone = _build_from_tiny_checkpoint(path, spec, device)
        if spec != TINY_SPEC:
            name, _ = parse_spec(spec)
            if name != backbone.arch:
                raise BackboneError(f"checkpoint {path} holds architecture '{backbone.arch}', "
                                    f"not the spec's '{name}'")
        return backbone

    if spec == TINY_SPEC:
        path = tiny_checkpoint_path()
        if not path.is_file():
            raise BackboneError(_missing_tiny_message(path))
        return _build_from_tiny_checkpoint(path, spec, device)

    name, tag = parse_spec(spec)
    is_schema = name.startswith(("hf-hub:", "local-dir:"))
    if not is_schema and open_clip.get_model_config(name) is None:
        import difflib

        close = difflib.get_close_matches(name, open_clip.list_models(), n=5, cutoff=0.5)
        raise BackboneError(f"unknown open_clip architecture '{name}' in spec '{spec}'"
                            + (f"; did you mean one of {close}?" if close else "")
                            + f" ('{TINY_SPEC}' is sbirlab's offline model)")
    kwargs: dict[str, Any] = {}
    if tag is not None and not is_schema:
        from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

        tag_cfg = get_pretrained_cfg(name, tag)
        if not tag_cfg and not os.path.isfile(tag):
            raise BackboneError(f"unknown pretrained tag '{tag}' for {name}; available: "
                                f"{list_pretrained_tags_by_model(name)} (or 'random', or a weights file path)")
        if tag_cfg.get("quick_gelu", False) and not open_clip.get_model_config(name).get("quick_gelu", False):
            # OpenAI weights were trained with QuickGELU; open_clip only warns on the mismatch.
            kwargs["force_quick_gelu"] = True
    needs_download = (is_schema and name.startswith("hf-hub:")) or (tag is not None and not os.path.isfile(tag))
    offline = _hf_offline_env()
    unreachable = needs_download and not offline and not _hub_reachable()
    if unreachable:
        logger.info("Hugging Face hub unreachable: looking for '%s' in the local cache only", spec)
    try:
        with _hub_offline(unreachable):
            model = open_clip.create_model(name, pretrained=tag, device=device, cache_dir=cache_dir, **kwargs)
    except Exception as e:
        if needs_download:
            where = f"the directory {cache_dir}" if cache_dir else _default_cache_locations()
            why = ("HF_HUB_OFFLINE=1 is set, which forbids it" if offline
                   else "the hub is unreachable from this machine" if unreachable else "")
            raise BackboneError(
                f"Could not fetch the pretrained weights for '{spec}' ({type(e).__name__}: {e}).\n"
                f"open_clip downloads weights once and caches them in {where}.\n"
                f"Fetching needs network access to the Hugging Face hub"
                + (f" and {why}" if why else "")
                + "; alternatively place a copy of the weights in that cache.\n"
                f"Offline alternatives: '{TINY_SPEC}' (sbirlab's shipped tiny CLIP) or '{name}:random' "
                f"(the same architecture with random weights)."
            ) from e
        raise BackboneError(f"could not build '{spec}': {type(e).__name__}: {e}") from e
    pp = getattr(model.visual, "preprocess_cfg", {}) or {}
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    model.eval()
    mean, std = tuple(pp.get("mean", OPENAI_DATASET_MEAN)), tuple(pp.get("std", OPENAI_DATASET_STD))
    return Backbone(
        model=model, preprocess=_preprocess(_image_size(model), mean, std),
        tokenizer=open_clip.get_tokenizer(name, cache_dir=cache_dir), spec=spec,
        image_size=_image_size(model), mean=mean, std=std, arch=name, pretrained=tag, device=device,
    )
