"""Figures and views for the notebooks; each module imports its heavy libraries (matplotlib, umap,
ipywidgets / ipycanvas) inside the functions that need them, so ``import sbirlab`` stays fast.

- :mod:`.grids` / :mod:`.plots`: image grids, top-k panels, confusion matrices, bars;
- :mod:`.training`: live training curves, saved histories, method bars, rank histograms;
- :mod:`.attention`: attention of every layer and head of a prompted ViT (CLS / prompt maps, rollout, overlays);
- :mod:`.embeddings`: UMAP projections of sketch and photo embeddings (one reducer for several models),
  static plots and an interactive view.
"""
