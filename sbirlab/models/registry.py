"""One registry for every method: ``build_method("clip-at", clip, setting="zs", classnames=...)``.

Names: ``frozen`` (zero-shot CLIP, nothing trains), ``b-ft``, ``b-lin``, ``b-cond``, ``b-ip``, ``b-mm``, ``b-deep`` (CLIP-AT Table 1 baselines),
``clip-at``, ``dp-clip`` (Gao et al.), ``splip`` (Singha et al., ECCV 2024); the FG twins (B-FG-*) are the same
names with ``setting="fg"``. Every method accepts ``setting="gzs"`` (built as ``"zs"``).
"""
from __future__ import annotations

from typing import Any

from .methods.base import SBIRMethod
from .methods.baselines import BFT, BIP, BMM, BCond, BDeep, BLin, Frozen
from .methods.clip_at import CLIPAT
from .methods.dp_clip import DPCLIP
from .methods.splip import SpLIP

METHODS: dict[str, type[SBIRMethod]] = {
    c.name: c for c in (Frozen, BFT, BLin, BCond, BIP, BMM, BDeep, CLIPAT, DPCLIP, SpLIP)}

#: the rows of CLIP-AT's Table 1, in the paper's order
TABLE1 = ("b-ft", "b-lin", "b-cond", "b-ip", "b-mm", "b-deep", "clip-at")


def register_method(cls: type[SBIRMethod]) -> type[SBIRMethod]:
    """Add a method class to the registry (usable as a decorator)."""
    METHODS[cls.name] = cls
    return cls


def method_names() -> list[str]:
    return list(METHODS)


def build_method(name: str, clip: Any, setting: str = "zs", classnames=(), tokenizer=None, **cfg) -> SBIRMethod:
    """Build method ``name`` on ``clip`` (a :class:`~sbirlab.models.backbone.Backbone` or an open_clip model).

    Args:
        name: a registered method name (see :data:`METHODS`).
        clip: the backbone; with a bare open_clip model pass ``tokenizer`` too.
        setting: ``"zs"`` (category level), ``"gzs"`` (generalised: trained and built exactly as ``"zs"``,
            only the test set differs; the method's ``setting`` is ``"zs"``) or ``"fg"`` (fine-grained).
        classnames: the training (seen) classes, for methods with text-side losses.
        **cfg: the method's config fields (unknown keys raise).
    """
    key = name.lower()
    if key not in METHODS:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(METHODS)}")
    model = getattr(clip, "model", clip)
    tokenizer = tokenizer or getattr(clip, "tokenizer", None)
    if tokenizer is None:
        import open_clip
        tokenizer = open_clip.get_tokenizer("ViT-B-32")
    if setting == "gzs":  # generalised ZS trains as ZS (SEM-PCYC's recipe); only the evaluation differs
        setting = "zs"
    return METHODS[key](model, tokenizer, classnames, setting=setting, **cfg)
