"""Drawing programs: everyday objects."""
from __future__ import annotations

import numpy as np

from . import category


@category("cup", "objects")
def cup(b):
    w = b.uniform("width", 0.28, 0.42)           # body half-width... proportions
    h = b.uniform("height", 0.35, 0.55)
    taper = b.uniform("taper", 0.0, 0.08)
    col = b.choice("color", ["white", "red", "blue", "yellow", "teal"])
    x0, x1, y0, y1 = 0.5 - w / 2 - 0.05, 0.5 + w / 2 - 0.05, 0.5 - h / 2, 0.5 + h / 2
    body = [(x0, y0), (x1, y0), (x1 - taper, y1), (x0 + taper, y1)]
    b.poly(body, col, detail=0)
    # handle: a thick arc on the right
    hr = b.uniform("handle", 0.08, 0.13)
    cy = 0.5 - h * 0.05
    b.arc(x1 - 0.01, cy, hr, hr * 1.2, -np.pi / 2, np.pi / 2, col, detail=0, width=0.035)
    b.ellipse((x0 + x1) / 2, y0, w / 2, 0.03, color="darkgray", detail=1)   # rim / coffee
    if b.integer("stripes", 0, 2):
        for k in range(int(b.attrs["stripes"])):
            yy = y0 + h * (0.35 + 0.2 * k)
            b.line([(x0 + taper * 0.5, yy), (x1 - taper * 0.5, yy)], "darkred", detail=2, width=0.025)
    b.ellipse(0.45, y1 + 0.03, w * 0.8, 0.03, color="lightgray", detail=1)   # saucer


@category("umbrella", "objects")
def umbrella(b):
    r = b.uniform("radius", 0.3, 0.42)
    top = b.uniform("top", 0.18, 0.3)
    ribs = b.integer("ribs", 3, 6)
    col = b.choice("color", ["red", "blue", "purple", "yellow", "green", "black"])
    cx = 0.5
    canopy_y = top + r * 0.7
    pts = [(cx + r * np.cos(t), canopy_y - r * 0.7 * np.sin(t)) for t in np.linspace(0, np.pi, 20)]
    # scalloped lower edge
    xs = np.linspace(cx - r, cx + r, ribs + 1)
    for i in range(ribs, 0, -1):
        mid = (xs[i] + xs[i - 1]) / 2
        pts.append((mid, canopy_y - 0.04))
        pts.append((xs[i - 1], canopy_y))
    b.poly(pts, col, detail=0)
    for x in xs[1:-1]:
        b.line([(cx, top), (x, canopy_y)], "darkgray", detail=2, width=0.01)
    shaft_len = b.uniform("shaft", 0.38, 0.5)
    b.line([(cx, top - 0.04), (cx, canopy_y + shaft_len)], "darkgray", detail=0, width=0.02)
    hook = b.uniform("hook", 0.04, 0.07)
    b.arc(cx - hook, canopy_y + shaft_len, hook, hook, 0, np.pi, "brown", detail=0, width=0.03)
