"""Interactive widgets: the sketch-and-retrieve pad (``notebooks/11_sketch_and_retrieve``).

* :mod:`~sbirlab.widgets.raster`: :class:`StrokeModel`, the strokes as the source of truth, drawn by the
  dataset's rasteriser (pure Python, no widgets);
* :mod:`~sbirlab.widgets.engine`: :class:`Gallery`, :class:`GalleryCache`, :class:`RetrievalEngine`
  (cached gallery embeddings, one query per stroke, the zero-shot class guess), :func:`stroke_by_stroke`;
* :mod:`~sbirlab.widgets.replay`: recorded sketches replayed stroke by stroke, rank curves and their plot;
* :mod:`~sbirlab.widgets.sketchpad`: :class:`SketchRetrievalWidget`, the ipycanvas + ipywidgets view
  (imported lazily: ``import sbirlab`` does not load ipycanvas).
"""
from .engine import (Gallery, GalleryCache, GalleryError, GalleryInfo, Result, RetrievalEngine, default_cache_dir,
                     recorded_sketches, stroke_by_stroke)
from .raster import CANVAS, DEFAULT_WIDTH, Notice, StrokeModel
from .replay import FRACTIONS, on_the_fly_metrics, pick_recorded, plot_rank_evolution, rank_curves, strokes_needed

__all__ = ["CANVAS", "DEFAULT_WIDTH", "FRACTIONS", "Gallery", "GalleryCache", "GalleryError", "GalleryInfo",
           "Notice", "Result", "on_the_fly_metrics", "RetrievalEngine", "SketchRetrievalWidget", "StrokeModel", "default_cache_dir",
           "pick_recorded", "plot_rank_evolution", "rank_curves", "recorded_sketches", "stroke_by_stroke",
           "strokes_needed"]


def __getattr__(name):
    if name == "SketchRetrievalWidget":
        from .sketchpad import SketchRetrievalWidget

        return SketchRetrievalWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
