"""sbirlab: learn, run and analyse zero-shot sketch-based image retrieval with CLIP.

Importing the package registers sbirlab's tiny CLIP architectures with open_clip (papermill kernels
are fresh processes, so this must happen on import). Heavy optional imports stay inside functions.
"""
from __future__ import annotations

__version__ = "0.1.0"


def _register_configs() -> None:
    from pathlib import Path

    try:
        import open_clip
    except ImportError:  # the data layer works without open_clip
        return
    open_clip.add_model_config(Path(__file__).parent / "models" / "configs")


_register_configs()
