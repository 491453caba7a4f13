"""Drawing programs: animals.

Side views (facing right, the world mirrors half of them) unless said otherwise; each program designs
its animal freely around the unit square and :func:`_fit` scales the result into ``[0.1, 0.9]^2``.
The helpers below are vectorised and cached so that a 25-part animal stays well under 0.3 ms.
"""
from __future__ import annotations

import math

import numpy as np

from ._registry import category

# ---------------------------------------------------------------------------------------------
# Fast geometry helpers (the Builder's own ellipse is ~30 us: too slow for 20 ellipses)
# ---------------------------------------------------------------------------------------------
_UNIT: dict[int, tuple] = {}     # n -> (cos, sin, [n, 2] unit circle)
_LIN: dict[int, np.ndarray] = {}  # n -> linspace(0, 1, n)
_CRB: dict[int, np.ndarray] = {}  # n -> Catmull-Rom basis [n, 4]
_IDX: dict[tuple, object] = {}    # (m, n, closed) -> spline matrices


def _unit(n):
    """Cached unit circle: ``(cos, sin)`` and the ``[n, 2]`` point array."""
    u = _UNIT.get(n)
    if u is None:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        u = _UNIT[n] = (np.cos(t), np.sin(t), np.stack([np.cos(t), np.sin(t)], 1))
    return u


def _lin(n):
    u = _LIN.get(n)
    if u is None:
        u = _LIN[n] = np.linspace(0.0, 1.0, n)
    return u


def _ell(cx, cy, rx, ry, ang=0.0, n=20):
    """Points of an ellipse (closed outline, no repeated point)."""
    U = _unit(n)[2]
    if ang:
        ca, sa = math.cos(ang), math.sin(ang)
        return U @ np.array([[rx * ca, rx * sa], [-ry * sa, ry * ca]]) + (cx, cy)
    return U * (rx, ry) + (cx, cy)


def _arc(cx, cy, rx, ry, a0, a1, n=12, ang=0.0):
    """Points of an elliptical arc from angle ``a0`` to ``a1`` (y down: negative angles are up)."""
    t = a0 + (a1 - a0) * _lin(n)
    out = np.empty((n, 2))
    out[:, 0] = np.cos(t)
    out[:, 1] = np.sin(t)
    ca, sa = math.cos(ang), math.sin(ang)
    return out @ np.array([[rx * ca, rx * sa], [-ry * sa, ry * ca]]) + (cx, cy)


def _basis(n):
    B = _CRB.get(n)
    if B is None:
        t = np.arange(n) / n
        t2, t3 = t * t, t * t * t
        B = _CRB[n] = 0.5 * np.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2], 1)
    return B


def _crm(m, n, closed):
    """The (cached) linear map from ``m`` control points to the Catmull-Rom samples."""
    k = (m, n, closed)
    M = _IDX.get(k)
    if M is None:
        P = np.eye(m)
        B = _basis(n)
        if closed:
            idx = (np.arange(m)[:, None] + np.arange(-1, 3)[None, :]) % m
            M = np.matmul(B, P[idx]).reshape(-1, m)
        else:
            ext = np.concatenate([2 * P[:1] - P[1:2], P, 2 * P[-1:] - P[-2:-1]])
            idx = np.arange(m - 1)[:, None] + np.arange(4)[None, :]
            M = np.concatenate([np.matmul(B, ext[idx]).reshape(-1, m), P[-1:]])
        _IDX[k] = M
    return M


def _crd(m, n):
    """Cached maps of an open spline: samples ``M`` and their finite-difference tangents ``D``."""
    k = (m, n, "d")
    MD = _IDX.get(k)
    if MD is None:
        M = _crm(m, n, False)
        D = np.empty_like(M)
        D[1:-1] = M[2:] - M[:-2]
        D[0] = M[1] - M[0]
        D[-1] = M[-1] - M[-2]
        MD = _IDX[k] = (M, D)
    return MD


def _cr(ctrl, n=5, closed=True):
    """A Catmull-Rom spline through the control points (any dimension), ``n`` samples per span."""
    P = np.asarray(ctrl, dtype=float)
    return _crm(len(P), n, closed) @ P


def _tube_parts(ctrl, w_lo, w_up=None, n=5):
    """Centre line, unit normals and the two half-widths of a tube along ``ctrl``.

    ``w_lo`` / ``w_up`` are full widths at each control point; for a centre line running left to
    right ``lo`` is the lower side and ``up`` the upper side (y is down).
    """
    m = len(ctrl)
    P = np.empty((m, 4))
    P[:, :2] = ctrl
    P[:, 2] = w_lo
    P[:, 3] = w_lo if w_up is None else w_up
    M, D = _crd(m, n)
    S = M @ P
    G = D @ P[:, :2]
    inv = 1.0 / (np.hypot(G[:, 0], G[:, 1]) + 1e-9)
    nrm = np.empty_like(G)
    nrm[:, 0] = -G[:, 1] * inv
    nrm[:, 1] = G[:, 0] * inv
    return S[:, :2], nrm, S[:, 2] * 0.5, S[:, 3] * 0.5


def _tube(ctrl, w_lo, w_up=None, n=5):
    """A closed outline around the spline through ``ctrl`` with per-point widths (a limb, a neck)."""
    c, nrm, lo, up = _tube_parts(ctrl, w_lo, w_up, n)
    return np.concatenate([c + nrm * lo[:, None], (c - nrm * up[:, None])[::-1]])


def _blob(rng, cx, cy, r, n=7, rough=0.3, squash=1.0):
    """An irregular roundish patch (a spot, a patch of fur): ``n`` random radii, smoothed."""
    rr = _crm(n, 3, True) @ (r * (1 + rough * (rng.random(n) - 0.5) * 2))
    c, s, _ = _unit(3 * n)
    out = np.empty((3 * n, 2))
    out[:, 0] = cx + rr * c
    out[:, 1] = cy + rr * s * squash
    return out


def _rot(pts, cx, cy, ang):
    """Rotate points about ``(cx, cy)`` by ``ang`` radians."""
    P = np.asarray(pts, dtype=float)
    ca, sa = math.cos(ang), math.sin(ang)
    x, y = P[:, 0] - cx, P[:, 1] - cy
    out = np.empty_like(P)
    out[:, 0] = cx + ca * x - sa * y
    out[:, 1] = cy + sa * x + ca * y
    return out


def _dir(a):
    return np.array([math.cos(a), math.sin(a)])


def _fit(b, lo=0.1, hi=0.9):
    """Scale and centre every part of ``b`` into the box ``[lo, hi]^2`` (aspect kept)."""
    parts = b.parts
    P = np.concatenate([p.points for p in parts])
    mn, mx = P.min(0), P.max(0)
    s = (hi - lo) / max(float((mx - mn).max()), 1e-6)
    Q = (P * s + (0.5 - (mn + mx) * 0.5 * s)).astype(np.float32)
    k = 0
    for p in parts:
        n = len(p.points)
        p.points = Q[k:k + n]
        p.width *= s
        k += n


def _P(zs):
    """Complex points (``x + 1j * y``, cheap 2-D arithmetic) to an ``[n, 2]`` float array."""
    return np.array(zs, dtype=complex).view(float).reshape(-1, 2)


def _leg(b, top, bottom, w_top, w_bot, color, detail, bend=0.0):
    """A tapered, slightly bent, roughly vertical limb from ``top`` to ``bottom`` (complex points)."""
    mid = (top + bottom) * 0.5 + bend
    return _vlimb(b, ((top.real, top.imag), (mid.real, mid.imag), (bottom.real, bottom.imag)),
                  (w_top, (w_top + w_bot) * 0.5, w_bot), color, detail)


def _vlimb(b, pts, widths, color, detail):
    """A roughly vertical limb through ``pts`` with full ``widths`` (a cheap tube: horizontal offsets)."""
    left = [(x - w * 0.5, y) for (x, y), w in zip(pts, widths)]
    right = [(x + w * 0.5, y) for (x, y), w in zip(pts, widths)]
    return b.poly(left + right[::-1], color, detail)


# ---------------------------------------------------------------------------------------------
# Long-necked, hoofed animals
# ---------------------------------------------------------------------------------------------
@category("giraffe", "animals")
def giraffe(b):
    neck_len = b.uniform("neck_len", 0.3, 0.4)
    neck_ang = b.uniform("neck_angle", 0.05, 0.45)     # forward lean from vertical
    leg_len = b.uniform("leg_len", 0.24, 0.32)
    body_len = b.uniform("body_len", 0.22, 0.32)
    head_tilt = b.uniform("head_tilt", 0.2, 0.9)      # muzzle angle below horizontal
    n_spots = b.integer("spots", 4, 8)
    col = b.choice("color", ["tan", "gold", "orange", "beige"])
    dark = "brown"
    rng = b.rng
    yb = 0.9 - leg_len                    # belly line
    xr, xf = 0.2, 0.2 + body_len          # rump, chest
    u = complex(math.sin(neck_ang), -math.cos(neck_ang))      # up the neck
    p = complex(math.cos(neck_ang), math.sin(neck_ang))       # across the neck (forward)
    nb = complex(xf - 0.02, yb - 0.11)
    nt = nb + u * neck_len
    for x in (xr + 0.09, xf - 0.09):                  # far legs first (behind the body)
        _leg(b, complex(x, yb - 0.03), complex(x + 0.005, 0.9), 0.035, 0.022, col, 1, bend=0.01)
    body = [complex(xr - 0.01, yb - 0.1), complex(xr + 0.12, yb - 0.135), complex(xf - 0.07, yb - 0.16),
            nb - p * 0.04 + u * 0.05, nt - p * 0.025 - u * 0.01, nt + p * 0.025,
            nb + p * 0.05 + u * 0.08, complex(xf + 0.04, yb - 0.05), complex(xf - 0.03, yb + 0.005),
            complex(xr + 0.12, yb + 0.005), complex(xr + 0.01, yb - 0.03)]
    b.poly(_cr(_P(body), 5), col, 0)
    for x in (xr + 0.04, xf - 0.04):                  # near legs
        _leg(b, complex(x, yb - 0.03), complex(x - 0.005, 0.9), 0.04, 0.024, col, 0, bend=0.012)
    t0 = complex(xr - 0.005, yb - 0.09)               # tail with a dark tuft
    t1 = t0 + complex(-0.04, 0.13)
    b.line(_P([t0, (t0 + t1) / 2 - 0.01, t1]), col, 1, width=0.012)
    b.poly(_ell(t1.real, t1.imag + 0.02, 0.012, 0.028, 0.3, 10), dark, 1)
    # head: muzzle forward-down from the top of the neck
    hd = complex(math.cos(head_tilt), math.sin(head_tilt))
    hc = nt + hd * 0.045 + u * 0.01
    ear = nt - p * 0.02 + u * 0.02
    b.poly(_ell(ear.real - 0.02, ear.imag, 0.028, 0.011, -0.4, 10), col, 1)
    for k in (-0.012, 0.012):                         # ossicones with knobs
        base = hc - hd * 0.03 + complex(k, -0.02)
        tip = base + complex(-0.01 + k * 0.5, -0.05)
        b.line(_P([base, tip]), dark, 1, width=0.012)
        b.poly(_ell(tip.real, tip.imag, 0.011, 0.011, 0, 8), dark, 2)
    b.poly(_ell(hc.real, hc.imag, 0.07, 0.03, head_tilt, 18), col, 0)
    e = hc - hd * 0.02 - 0.012j
    b.poly(_ell(e.real, e.imag, 0.008, 0.008, 0, 8), "black", 2)
    # patches: on the body and up the neck
    for i in range(n_spots):
        if i % 3 == 2:
            q = nb + u * (neck_len * rng.uniform(0.2, 0.75)) + p * rng.uniform(-0.01, 0.01)
            r = 0.018
        else:
            q = complex(rng.uniform(xr + 0.05, xf - 0.03), rng.uniform(yb - 0.11, yb - 0.04))
            r = rng.uniform(0.018, 0.026)
        b.poly(_blob(rng, q.real, q.imag, r, 7, 0.3), dark, 2)
    _fit(b)


@category("horse", "animals")
def horse(b):
    neck_ang = b.uniform("neck_angle", 0.55, 1.0)      # neck rise above horizontal
    head_len = b.uniform("head_len", 0.13, 0.17)
    tail_flow = b.uniform("tail_flow", 0.0, 1.0)       # 0 hanging, 1 streaming back
    stride = b.uniform("stride", 0.0, 0.3)             # leg swing: standing .. trotting
    mane = b.integer("mane_tufts", 3, 6)
    col = b.choice("color", ["brown", "black", "white", "tan", "darkgray", "gray"])
    hair = {"white": "lightgray", "tan": "brown", "gray": "darkgray"}.get(col, "black")
    x0, x1, yt, yb, ground = 0.2, 0.6, 0.36, 0.55, 0.9
    L = 0.2
    a = neck_ang
    u = complex(math.cos(a), -math.sin(a))             # up the neck
    p = complex(math.sin(a), math.cos(a))              # across the neck, forward-down
    nb = complex(x1, yt + 0.06)
    N = nb + u * L                                     # poll
    sw = stride * 0.12

    def hleg(x, swing, det, rear):
        top = complex(x, yb - 0.04)
        foot = complex(x + swing, ground)
        knee = top + (foot - top) * 0.55 + (0.025 if rear else -0.005)
        _vlimb(b, ((top.real, top.imag), (knee.real, knee.imag), (foot.real, ground - 0.03), (foot.real, ground)),
               (0.06, 0.032, 0.026, 0.03), col, det)
        b.poly(_ell(foot.real + 0.003, ground - 0.008, 0.018, 0.01, 0, 8), "darkgray", 2)

    hleg(x0 + 0.1, -sw, 1, True)                       # far legs first
    hleg(x1 - 0.07, sw, 1, False)
    fl = tail_flow                                     # tail (behind the body)
    tail = [(x0 + 0.01, yt + 0.02), (x0 - 0.05 - 0.04 * fl, yt + 0.06 - 0.02 * fl),
            (x0 - 0.08 - 0.1 * fl, yt + 0.18 - 0.06 * fl), (x0 - 0.07 - 0.16 * fl, yt + 0.33 - 0.14 * fl)]
    b.poly(_tube(tail, [0.035, 0.06, 0.07, 0.015], n=4), hair, 0)
    body = [complex(x0 + 0.03, yb - 0.01), complex(x0 - 0.015, yt + 0.07), complex(x0 + 0.04, yt - 0.005),
            complex(0.4, yt + 0.015), complex(x1 - 0.05, yt - 0.01), nb + u * (L * 0.5) - p * 0.035,
            N - p * 0.03, N + p * 0.035, nb + u * (L * 0.45) + p * 0.05, complex(x1 + 0.05, yt + 0.1),
            complex(x1 + 0.01, yb), complex(0.42, yb + 0.015)]
    b.poly(_cr(_P(body), 5), col, 0)
    hleg(x0 + 0.05, sw * 0.7, 0, True)
    hleg(x1 - 0.02, -sw * 0.7, 0, False)
    # head: a long tapered muzzle pointing forward-down
    ha = math.pi / 2 - a + 0.55
    hd = complex(math.cos(ha), math.sin(ha))
    m = N + hd * head_len
    b.poly(_tube(_P([N - hd * 0.015, N + hd * (head_len * 0.55), m]), [0.08, 0.06, 0.05], n=4), col, 0)
    b.poly(_ell(m.real, m.imag, 0.028, 0.026, 0, 10), col, 1)
    for k in (-0.012, 0.01):                           # ears
        e = N - p * 0.01 + k
        b.poly(_P([e - 0.012, e + 0.012, e + complex(0.004 + k * 0.3, -0.055)]), col, 1)
    pts = []                                           # mane: tufts along the top of the neck
    for i in range(mane + 1):
        q = nb + u * (L * (0.15 + 0.8 * i / mane)) - p * 0.035
        pts.append(q)
        if i < mane:
            pts.append(q + u * (L * 0.4 / mane) - p * 0.045 + 0.01j)
    pts += [N - p * 0.02, nb + u * (L * 0.15)]
    b.poly(_P(pts), hair, 1)
    e = N + hd * 0.04
    b.poly(_ell(e.real, e.imag - 0.012, 0.009, 0.009, 0, 8), "black", 2)
    b.poly(_ell(m.real + 0.008, m.imag - 0.004, 0.006, 0.006, 0, 6), "black", 2)
    _fit(b)


@category("cow", "animals")
def cow(b):
    horn = b.uniform("horn_len", 0.03, 0.07)
    udder = b.uniform("udder_size", 0.03, 0.055)
    head_low = b.uniform("head_low", 0.0, 0.1)
    n_patch = b.integer("patches", 2, 5)
    tail_swing = b.uniform("tail_swing", -0.06, 0.08)
    col = b.choice("color", ["white", "brown", "black", "tan"])
    spot = "black" if col in ("white", "tan") else "white"
    rng = b.rng
    x0, x1, yt, yb, ground = 0.16, 0.66, 0.35, 0.6, 0.86
    hl = head_low
    for x in (x0 + 0.12, x1 - 0.12):                   # far legs
        _vlimb(b, ((x, yb - 0.03), (x, ground)), (0.055, 0.045), col, 1)
    body = [(x0 + 0.03, yb - 0.005), (x0 - 0.01, yt + 0.1), (x0 + 0.0, yt + 0.02), (x0 + 0.05, yt - 0.01),
            (0.4, yt + 0.005), (x1 - 0.03, yt - 0.01), (x1 + 0.05, yt + 0.02 + hl * 0.5),
            (x1 + 0.07, yt + 0.12 + hl * 0.5), (x1 + 0.02, yb - 0.02), (x1 - 0.05, yb + 0.01),
            (0.42, yb + 0.02), (x0 + 0.12, yb + 0.005)]
    b.poly(_cr(body, 5), col, 0)
    ux = x0 + 0.14                                     # udder and teats
    b.poly(_ell(ux, yb + 0.01, udder * 1.2, udder, 0, 14), "pink", 1)
    b.line([(ux - udder * 0.6, yb + udder * 0.7), (ux - udder * 0.7, yb + udder + 0.025)], "pink", 2, width=0.012)
    b.line([(ux + udder * 0.5, yb + udder * 0.7), (ux + udder * 0.6, yb + udder + 0.025)], "pink", 2, width=0.012)
    for x in (x0 + 0.06, x1 - 0.06):                   # near legs + hooves
        _vlimb(b, ((x, yb - 0.03), (x, ground)), (0.06, 0.05), col, 0)
        b.poly(_ell(x, ground - 0.005, 0.028, 0.014, 0, 8), "darkgray", 2)
    t2x, t2y = x0 - 0.04 + tail_swing, yb + 0.1        # tail: thin rope with a tuft
    b.line([(x0 + 0.01, yt + 0.02), (x0 - 0.035, yt + 0.1), (t2x, t2y)], col if col != "white" else "lightgray", 1,
           width=0.012)
    b.poly(_ell(t2x, t2y + 0.02, 0.016, 0.03, 0, 10), "black" if col != "black" else "darkgray", 1)
    for _ in range(n_patch):                           # patches (the head stays on top)
        cx = rng.uniform(x0 + 0.08, x1 - 0.06)
        cy = rng.uniform(yt + 0.06, yb - 0.06)
        b.poly(_blob(rng, cx, cy, rng.uniform(0.035, 0.06), 9, 0.35, 0.8), spot, 2)
    # head: a broad, long box hanging forward-down from the poll
    th = 0.75 + head_low * 3.0                         # head angle below horizontal
    P = complex(x1 + 0.06, yt + 0.02 + hl * 0.5)
    hd = complex(math.cos(th), math.sin(th))
    hn = hd * 1j                                       # across the head (-hn: forward-up side)
    M = P + hd * 0.17
    for off in (0.018, -0.01):                         # horns: up and curving forward
        h0 = P - hn * 0.035 + hd * off
        b.poly(_P([h0 - 0.012, h0 + complex(-0.018, -horn * 0.6), h0 + complex(horn * 0.25, -horn),
                   h0 + complex(0.002, -horn * 0.5), h0 + 0.012]), "cream", 1)
    b.poly(_ell(P.real - 0.035, P.imag + 0.03, 0.045, 0.017, -0.25, 12), col, 1)   # ear sticking out back
    b.poly(_tube(_P([P - hd * 0.02, P + hd * 0.09, M]), (0.09, 0.075, 0.085), n=4), col, 0)
    b.poly(_ell(M.real, M.imag, 0.048, 0.04, th, 14), "pink", 1)                 # muzzle
    b.poly(_ell(M.real + 0.012, M.imag - 0.01, 0.008, 0.008, 0, 6), "darkgray", 2)
    e = P + hd * 0.05 - hn * 0.012
    b.poly(_ell(e.real, e.imag, 0.01, 0.01, 0, 8), "black", 2)                     # eye
    _fit(b)


@category("elephant", "animals")
def elephant(b):
    trunk = b.uniform("trunk_curl", -0.3, 1.0)         # <0 tucked back, 1 curled up forward
    ear = b.uniform("ear_size", 0.1, 0.15)
    tusk = b.uniform("tusk_len", 0.0, 0.09)
    leg = b.uniform("leg_len", 0.14, 0.22)
    body_len = b.uniform("body_len", 0.4, 0.5)
    col = b.choice("color", ["gray", "darkgray", "lightgray"])
    ground = 0.9
    yb = ground - leg
    x0, x1 = 0.12, 0.12 + body_len
    for x in (x0 + 0.15, x1 - 0.14):                   # far legs
        _vlimb(b, ((x, yb - 0.06), (x, ground)), (0.085, 0.08), col, 1)
    body = [(x0 + 0.04, yb + 0.01), (x0 - 0.01, yb - 0.12), (x0 + 0.05, yb - 0.27), (x0 + 0.2, yb - 0.33),
            (x1 - 0.06, yb - 0.32), (x1 + 0.03, yb - 0.2), (x1 + 0.0, yb - 0.03), (x1 - 0.08, yb + 0.02),
            (x0 + 0.22, yb + 0.03)]
    b.poly(_cr(body, 5), col, 0)
    for x in (x0 + 0.08, x1 - 0.07):                   # near legs with toenails
        _vlimb(b, ((x, yb - 0.06), (x, ground)), (0.095, 0.09), col, 0)
        b.poly(_arc(x, ground, 0.04, 0.02, math.pi, 2 * math.pi, 8), "lightgray", 2, closed=False, width=0.008)
    tx, ty = x0, yb - 0.2                              # tail with a tuft
    b.line([(tx, ty), (tx - 0.03, ty + 0.07), (tx - 0.035, ty + 0.15)], col, 1, width=0.012)
    b.poly(_ell(tx - 0.035, ty + 0.165, 0.01, 0.022, 0.2, 8), "darkgray", 1)
    # trunk: a chain of segments that curls forward/up as trunk_curl grows
    hx, hy = x1 + 0.08, yb - 0.24
    turn = complex(math.cos(trunk * 0.55), -math.sin(trunk * 0.55))
    step = complex(math.cos(math.pi / 2 - 0.25), math.sin(math.pi / 2 - 0.25)) * 0.055
    q = complex(hx + 0.07, hy + 0.05)
    pts = [q]
    for _ in range(5):
        q = q + step
        pts.append(q)
        step = step * turn
    b.poly(_tube(_P(pts), (0.075, 0.06, 0.05, 0.042, 0.036, 0.04), n=3), col, 0)
    b.poly(_ell(hx, hy, 0.105, 0.1, 0, 20), col, 0)   # head
    if tusk > 0.015:
        sx, sy = hx + 0.06, hy + 0.07
        b.poly([(sx, sy), (sx + tusk * 0.7, sy + tusk * 0.45), (sx + tusk, sy + tusk * 0.15),
                (sx + tusk * 0.55, sy + tusk * 0.65), (sx, sy + 0.02)], "cream", 1)
    ex, ey = hx - 0.045, hy + 0.02                     # ear flap
    b.poly(_cr(((ex - 0.01, ey - ear * 0.85), (ex - ear * 0.8, ey - ear * 0.55), (ex - ear * 0.95, ey + ear * 0.3),
                (ex - ear * 0.5, ey + ear * 1.05), (ex, ey + ear * 0.6), (ex + 0.015, ey)), 4), col, 0)
    b.poly(_ell(hx + 0.04, hy - 0.01, 0.011, 0.011, 0, 8), "black", 2)
    b.poly(_arc(hx + 0.045, hy + 0.07, 0.03, 0.018, 0.3, 2.6, 8), "darkgray", 2, closed=False, width=0.01)
    _fit(b)


# ---------------------------------------------------------------------------------------------
# Small mammals
# ---------------------------------------------------------------------------------------------
@category("cat", "animals")
def cat(b):
    hs = b.uniform("head_size", 0.12, 0.16)
    ear = b.uniform("ear_size", 0.08, 0.12)
    ear_sp = b.uniform("ear_spread", 0.4, 0.8)         # angle of the ears from the top of the head
    bw = b.uniform("body_width", 0.15, 0.23)
    curl = b.uniform("tail_curl", 0.0, 1.0)
    nwh = b.integer("whiskers", 2, 3)
    col = b.choice("color", ["orange", "gray", "black", "white", "brown", "cream"])
    cx, cy = 0.5, 0.3
    # tail first: out to the side along the floor, then curling up
    tb = np.array([cx + bw * 0.7, 0.86])
    tail = [tb, tb + (0.1, 0.01), tb + (0.18, -0.04 - 0.04 * curl), tb + (0.2 + 0.02 * curl, -0.13 - 0.12 * curl),
            tb + (0.16 + 0.06 * curl, -0.2 - 0.2 * curl)]
    b.poly(_tube(tail, [0.05, 0.045, 0.042, 0.04, 0.025], n=4), col, 1)
    body = [(cx, cy + hs * 0.7), (cx + bw * 0.55, cy + hs + 0.08), (cx + bw, 0.72), (cx + bw * 0.85, 0.88),
            (cx, 0.895), (cx - bw * 0.85, 0.88), (cx - bw, 0.72), (cx - bw * 0.55, cy + hs + 0.08)]
    b.poly(_cr(body, 5), col, 0)
    for s in (-1, 1):                                    # front legs and paws
        b.line([(cx + s * 0.045, cy + hs + 0.12), (cx + s * 0.05, 0.86)], "darkgray", 2, width=0.01)
        b.poly(_ell(cx + s * 0.065, 0.87, 0.045, 0.025, 0, 12), col, 1)
    for s in (-1, 1):                                    # ears (before the head)
        th = s * ear_sp
        d0, d1, dt = th - 0.32, th + 0.32, th + s * 0.05
        b0 = (cx + hs * 1.05 * math.sin(d0), cy - hs * math.cos(d0))
        b1 = (cx + hs * 1.05 * math.sin(d1), cy - hs * math.cos(d1))
        tip = (cx + (hs + ear) * 1.05 * math.sin(dt), cy - (hs + ear) * math.cos(dt))
        b.tri(b0, b1, tip, col, 0)
    b.poly(_ell(cx, cy, hs * 1.12, hs, 0, 24), col, 0)
    for s in (-1, 1):                                    # inner ears
        th = s * ear_sp
        tip = (cx + (hs + ear * 0.7) * 1.05 * math.sin(th), cy - (hs + ear * 0.7) * math.cos(th))
        b0 = (cx + hs * 0.95 * math.sin(th - 0.2), cy - hs * 0.95 * math.cos(th - 0.2))
        b1 = (cx + hs * 0.95 * math.sin(th + 0.2), cy - hs * 0.95 * math.cos(th + 0.2))
        b.tri(b0, b1, tip, "pink", 2)
    for s in (-1, 1):                                    # eyes with slit pupils
        ex = cx + s * hs * 0.42
        b.poly(_ell(ex, cy - hs * 0.08, hs * 0.22, hs * 0.15, 0, 12), "lime", 2)
        b.poly(_ell(ex, cy - hs * 0.08, hs * 0.05, hs * 0.14, 0, 8), "black", 2)
    ny = cy + hs * 0.28
    b.tri((cx - hs * 0.1, ny), (cx + hs * 0.1, ny), (cx, ny + hs * 0.1), "pink", 2)
    b.line([(cx - hs * 0.22, ny + hs * 0.28), (cx - hs * 0.1, ny + hs * 0.3), (cx, ny + hs * 0.12),
            (cx + hs * 0.1, ny + hs * 0.3), (cx + hs * 0.22, ny + hs * 0.28)], "black", 2, width=0.008)
    for s in (-1, 1):                                    # whiskers
        for i in range(nwh):
            dy = (i - (nwh - 1) / 2) * hs * 0.2
            b.line([(cx + s * hs * 0.3, ny + hs * 0.12 + dy * 0.3), (cx + s * hs * 1.45, ny + hs * 0.05 + dy * 1.6)],
                   "black", 1, width=0.006)
    _fit(b)


@category("rabbit", "animals")
def rabbit(b):
    ear_len = b.uniform("ear_len", 0.2, 0.3)
    ear_tilt = b.uniform("ear_tilt", -0.1, 0.5)        # lean back from vertical
    ear_gap = b.uniform("ear_gap", 0.1, 0.45)          # angle between the two ears
    body = b.uniform("body_size", 0.9, 1.15)
    head_up = b.uniform("head_up", -0.03, 0.05)
    col = b.choice("color", ["white", "gray", "brown", "tan", "beige", "darkgray"])
    s = body
    b.poly(_ell(0.2, 0.68, 0.045, 0.045, 0, 12), "white" if col != "white" else "lightgray", 1)  # tail puff
    bd = [(0.22, 0.72), (0.26, 0.56), (0.36, 0.47), (0.5, 0.46), (0.6, 0.53), (0.63, 0.66), (0.6, 0.84),
          (0.42, 0.87), (0.27, 0.84)]
    bd = [(0.42 + (x - 0.42) * s, 0.87 + (y - 0.87) * s) for x, y in bd]
    b.poly(_cr(bd, 5), col, 0)
    b.poly(_arc(0.37, 0.72, 0.12 * s, 0.12 * s, math.pi * 1.05, math.pi * 1.85, 10), "darkgray", 1,
           closed=False, width=0.01)                    # haunch
    b.poly(_ell(0.42, 0.865, 0.13, 0.028, 0, 14), col, 1)                     # hind foot
    b.poly(_ell(0.6 + 0.03 * (s - 1), 0.865, 0.045, 0.022, 0, 10), col, 1)    # front paw
    hc = np.array([0.42 + 0.2 * s + 0.02, 0.87 - 0.45 * s - head_up])
    for k, det in ((ear_gap, 0), (0.0, 0)):                  # ears (back ear first)
        a = -math.pi / 2 - ear_tilt - k
        d = _dir(a)
        base = hc + (-0.02 - 0.03 * (k > 0), -0.05)
        ec = base + d * ear_len * 0.5
        b.poly(_ell(ec[0], ec[1], ear_len * 0.5, 0.035, a, 16), col, det)
        if k == 0.0:
            b.poly(_ell(ec[0], ec[1], ear_len * 0.36, 0.015, a, 12), "pink", 2)
    b.poly(_ell(hc[0], hc[1], 0.1, 0.08, 0.25, 20), col, 0)
    b.poly(_ell(hc[0] + 0.025, hc[1] - 0.015, 0.014, 0.014, 0, 8), "black", 2)
    nose = hc + (0.095, 0.03)
    b.poly(_ell(nose[0], nose[1], 0.012, 0.009, 0, 8), "pink", 2)
    for dy in (-0.02, 0.015):
        b.line([nose + (-0.01, 0.005), nose + (0.07, dy)], "darkgray", 2, width=0.005)
    _fit(b)


# ---------------------------------------------------------------------------------------------
# Birds
# ---------------------------------------------------------------------------------------------
@category("songbird", "animals")
def songbird(b):
    tail_len = b.uniform("tail_len", 0.12, 0.22)
    tail_ang = b.uniform("tail_angle", 0.35, 1.0)      # below horizontal, radians
    beak = b.uniform("beak_len", 0.04, 0.08)
    head_tilt = b.uniform("head_tilt", -0.3, 0.3)
    crest = b.integer("crest", 0, 1)
    col = b.choice("color", ["red", "blue", "yellow", "brown", "orange", "sky"])
    branch_y = 0.78
    b.line([(0.18, branch_y + 0.01), (0.5, branch_y), (0.84, branch_y - 0.015)], "wood", 1, width=0.035)
    b.line([(0.72, branch_y - 0.005), (0.8, branch_y - 0.06)], "wood", 2, width=0.02)
    # tail feathers behind the body
    tb = np.array([0.33, 0.62])
    d = _dir(math.pi - tail_ang)
    nrm = np.array([-d[1], d[0]])
    tip = tb + d * tail_len
    b.poly([tb + nrm * 0.03, tip + nrm * 0.04, tip - d * 0.025, tip - nrm * 0.04, tb - nrm * 0.03], col, 0)
    # legs
    for x in (0.47, 0.52):
        b.line([(x, 0.66), (x - 0.01, branch_y - 0.005)], "darkgray", 1, width=0.012)
    hc = np.array([0.63, 0.37])
    head = [(0.58, 0.31), (0.63, 0.28), (0.69, 0.31), (0.71, 0.37), (0.69, 0.43), (0.66, 0.45)]
    if crest:
        head = [(0.57, 0.32), (0.55, 0.22), (0.62, 0.28)] + head[2:]
    head = _rot(head, hc[0], hc[1] + 0.05, head_tilt)
    body = [(0.3, 0.6), (0.42, 0.49), (0.55, 0.43)] + list(head) + [(0.7, 0.55), (0.62, 0.66), (0.48, 0.69),
                                                                     (0.33, 0.66)]
    b.poly(_cr(body, 5), col, 0)
    wing = [(0.58, 0.47), (0.5, 0.47), (0.38, 0.55), (0.3, 0.62), (0.42, 0.62), (0.55, 0.57)]
    b.poly(_cr(wing, 4), "darkgray" if col in ("sky", "yellow") else "brown", 1)
    b.line([(0.4, 0.58), (0.52, 0.53)], "black", 2, width=0.006)
    # beak and eye follow the head tilt
    bk = _rot([(0.705, 0.345), (0.705 + beak, 0.372), (0.7, 0.395)], hc[0], hc[1] + 0.05, head_tilt)
    b.poly(bk, "orange" if col != "orange" else "gold", 1)
    e = _rot([(0.66, 0.35)], hc[0], hc[1] + 0.05, head_tilt)[0]
    b.poly(_ell(e[0], e[1], 0.011, 0.011, 0, 8), "black", 2)
    _fit(b)


@category("duck", "animals")
def duck(b):
    neck = b.uniform("neck_len", 0.06, 0.14)
    bill = b.uniform("bill_len", 0.07, 0.12)
    tail_up = b.uniform("tail_up", 0.03, 0.11)
    head_fwd = b.uniform("head_forward", -0.03, 0.05)
    wing = b.uniform("wing_len", 0.2, 0.3)
    col = b.choice("color", ["white", "brown", "yellow", "gray", "tan"])
    H = np.array([0.66 + head_fwd, 0.42 - neck])
    r = 0.07
    body = [(0.14, 0.52 - tail_up), (0.26, 0.55), (0.45, 0.53), (0.58, 0.5), (H[0] - r * 0.6, H[1] + r * 1.1),
            (H[0] - r, H[1]), (H[0] - r * 0.1, H[1] - r), (H[0] + r * 0.85, H[1] - r * 0.35),
            (H[0] + r * 0.6, H[1] + r * 0.9), (H[0] + r * 0.35, H[1] + r * 1.6), (0.74, 0.58), (0.7, 0.69),
            (0.5, 0.72), (0.3, 0.7), (0.2, 0.6)]
    b.poly(_cr(body, 5), col, 0)
    bl = [(H[0] + r * 0.7, H[1] - r * 0.15), (H[0] + r * 0.7 + bill * 0.6, H[1] - r * 0.05),
          (H[0] + r * 0.7 + bill, H[1] + r * 0.15), (H[0] + r * 0.7 + bill * 0.85, H[1] + r * 0.45),
          (H[0] + r * 0.5, H[1] + r * 0.45)]
    b.poly(_cr(bl, 3), "orange", 0)
    b.line([(H[0] + r * 0.7, H[1] + r * 0.2), (H[0] + r * 0.7 + bill * 0.8, H[1] + r * 0.2)], "darkred", 2,
           width=0.006)
    w0 = 0.62
    wg = [(w0, 0.56), (w0 - wing * 0.5, 0.54), (w0 - wing, 0.52 - tail_up * 0.5), (w0 - wing * 0.6, 0.63),
          (w0 - 0.05, 0.65)]
    b.poly(_cr(wg, 4), "lightgray" if col == "white" else "brown" if col != "brown" else "darkgray", 1)
    for k in (0.35, 0.6):
        x = w0 - wing * k
        b.line([(x, 0.575), (x - 0.05, 0.6)], "darkgray", 2, width=0.006)
    b.poly(_ell(H[0] + r * 0.15, H[1] - r * 0.2, 0.012, 0.012, 0, 8), "black", 2)
    # water ripples
    b.line([(0.06, 0.7), (0.16, 0.68), (0.26, 0.7), (0.36, 0.68), (0.46, 0.7), (0.56, 0.68), (0.66, 0.7),
            (0.76, 0.68), (0.86, 0.7)], "blue", 1, width=0.015)
    b.line([(0.2, 0.76), (0.3, 0.74), (0.4, 0.76), (0.5, 0.74), (0.6, 0.76)], "blue", 2, width=0.012)
    _fit(b)


@category("owl", "animals")
def owl(b):
    tuft = b.uniform("tuft_size", 0.03, 0.09)
    eye = b.uniform("eye_size", 0.065, 0.09)
    bw = b.uniform("body_width", 0.19, 0.25)
    marks = b.integer("chest_marks", 2, 6)
    wing = b.uniform("wing_len", 0.25, 0.38)
    col = b.choice("color", ["brown", "tan", "gray", "white", "darkgray"])
    cx = 0.5
    b.line([(0.12, 0.85), (0.5, 0.86), (0.88, 0.84)], "wood", 1, width=0.04)
    half = [(cx + bw * 0.55, 0.21), (cx + bw * 0.85, 0.19 - tuft), (cx + bw * 0.95, 0.27), (cx + bw, 0.42),
            (cx + bw * 1.0, 0.62), (cx + bw * 0.6, 0.8), (cx, 0.84)]
    pts = [(cx, 0.22)] + half + [(2 * cx - x, y) for x, y in half[-2::-1]]
    b.poly(_cr(pts, 4), col, 0)
    wc = "brown" if col in ("tan", "white") else "darkgray" if col != "darkgray" else "black"
    for s in (-1, 1):                                 # wings along the sides
        w = [(cx + s * bw * 0.75, 0.42), (cx + s * bw * 1.05, 0.5), (cx + s * bw * 0.95, 0.42 + wing),
             (cx + s * bw * 0.6, 0.42 + wing * 0.75)]
        b.poly(_cr(w, 4), wc, 1)
    for s in (-1, 1):                                 # eye discs and pupils
        ex = cx + s * eye * 1.15
        b.poly(_ell(ex, 0.34, eye, eye, 0, 18), "white", 0)
        b.poly(_ell(ex, 0.34, eye * 0.5, eye * 0.5, 0, 12), "black", 2)
    b.tri((cx - 0.025, 0.38), (cx + 0.025, 0.38), (cx, 0.45), "orange", 1)
    rng = b.rng
    for i in range(marks):                            # chest feather marks: small v's
        x = cx + (i % 3 - 1) * bw * 0.35 + rng.uniform(-0.01, 0.01)
        y = 0.53 + (i // 3) * 0.08 + (i % 2) * 0.03
        b.line([(x - 0.025, y), (x, y + 0.02), (x + 0.025, y)], wc, 2, width=0.008)
    for s in (-1, 1):                                 # feet gripping the branch
        fx = cx + s * 0.07
        b.line([(fx - 0.02, 0.86), (fx - 0.01, 0.82), (fx, 0.86), (fx, 0.82), (fx + 0.02, 0.86)], "orange", 1,
               width=0.01)
    _fit(b)


# ---------------------------------------------------------------------------------------------
# Water animals
# ---------------------------------------------------------------------------------------------
@category("fish", "animals")
def fish(b):
    h = b.uniform("body_height", 0.12, 0.2)
    fork = b.uniform("tail_fork", 0.0, 0.08)
    ts = b.uniform("tail_size", 0.12, 0.18)
    dorsal = b.uniform("dorsal_height", 0.05, 0.12)
    stripes = b.integer("stripes", 0, 3)
    col = b.choice("color", ["orange", "blue", "yellow", "red", "silver", "teal", "gold"])
    fin = {"orange": "red", "yellow": "orange", "red": "darkred", "silver": "gray", "teal": "navy",
           "gold": "orange", "blue": "navy"}[col]
    y = 0.5
    tx = 0.3
    b.poly([(tx + 0.02, y - 0.035), (tx - ts, y - ts * 0.95), (tx - ts + 0.02 + fork, y),
            (tx - ts, y + ts * 0.95), (tx + 0.02, y + 0.035)], fin, 0)
    b.poly(_cr([(0.62, y - h * 0.95), (0.52, y - h - dorsal), (0.42, y - h - dorsal * 0.8), (0.38, y - h * 0.6)],
               4, closed=False), fin, 1)
    b.poly([(0.42, y + h * 0.7), (0.37, y + h + 0.04), (0.34, y + h * 0.45)], fin, 1)
    body = [(0.82, y + 0.02), (0.74, y - h * 0.8), (0.57, y - h), (0.4, y - h * 0.7), (tx, y - 0.04),
            (tx, y + 0.04), (0.4, y + h * 0.7), (0.57, y + h), (0.74, y + h * 0.8)]
    b.poly(_cr(body, 6), col, 0)
    for i in range(stripes):
        x = 0.6 - i * 0.08
        hh = h * (1.0 - 0.1 * i) * 0.9
        b.poly(_arc(x + 0.12, y, 0.12, hh, math.pi * 0.7, math.pi * 1.3, 8), fin, 2, closed=False, width=0.02)
    b.poly(_arc(0.57, y, 0.12, h * 0.62, -0.45, 0.45, 8, ang=math.pi), "darkgray", 2, closed=False, width=0.01)
    b.poly([(0.58, y + 0.01), (0.5, y + 0.06), (0.53, y + 0.01)], fin, 1)          # pectoral fin
    b.poly(_ell(0.73, y - h * 0.25, 0.028, 0.028, 0, 12), "white", 2)
    b.poly(_ell(0.735, y - h * 0.25, 0.013, 0.013, 0, 8), "black", 2)
    b.line([(0.82, y + 0.02), (0.78, y + 0.03)], "darkgray", 2, width=0.008)
    _fit(b)


@category("dolphin", "animals")
def dolphin(b):
    arch = b.uniform("arch", 0.04, 0.22)
    beak = b.uniform("beak_len", 0.05, 0.09)
    dorsal = b.uniform("dorsal_size", 0.06, 0.1)
    fluke = b.uniform("fluke_span", 0.06, 0.1)
    girth = b.uniform("girth", 0.1, 0.14)
    col = b.choice("color", ["gray", "sky", "silver", "blue", "lightgray", "darkgray"])
    # centre line: a quadratic Bezier from the tail (left, low) to the head (right, high)
    P0, P1, P2 = np.array([0.12, 0.64]), np.array([0.46, 0.42 - arch]), np.array([0.8, 0.5])
    us = np.array([0.0, 0.15, 0.35, 0.55, 0.72, 0.83])
    cl = ((1 - us) ** 2)[:, None] * P0 + (2 * us * (1 - us))[:, None] * P1 + (us ** 2)[:, None] * P2
    dh = 2 * ((1 - 0.83) * (P1 - P0) + 0.83 * (P2 - P1))      # tangent at the head
    dh /= np.linalg.norm(dh)
    head_end = cl[-1] + dh * 0.06
    beak_tip = head_end + dh * beak + np.array([-dh[1], dh[0]]) * girth * 0.25
    ctrl = np.concatenate([cl, [head_end, beak_tip]])
    g = girth
    w_up = [0.025, 0.05, g * 0.8, g, g * 0.95, g * 0.85, g * 0.1, 0.01]
    w_lo = [0.025, 0.05, g * 0.75, g, g * 0.9, g * 0.6, g * 0.45, 0.02]
    c, nrm, lo, up = _tube_parts(ctrl, w_lo, w_up, n=4)
    # dorsal fin (behind the body): on the upper edge, swept back
    i0 = int(len(c) * 0.36)
    base = c[i0] - nrm[i0] * up[i0]
    back = -(c[i0 + 2] - c[i0 - 2])
    back /= np.linalg.norm(back)
    b.poly(_cr([base + back * 0.06 + nrm[i0] * 0.01, base - nrm[i0] * dorsal * 0.6 + back * dorsal * 0.3,
                base - nrm[i0] * dorsal + back * dorsal * 0.9, base - back * 0.05 + nrm[i0] * 0.01], 4,
               closed=False), col, 0)
    # flukes at the tail end
    e, te = c[0], -(c[2] - c[0])
    te /= np.linalg.norm(te)
    tn = np.array([-te[1], te[0]])
    b.poly([e + tn * 0.015, e + te * fluke * 0.9 + tn * fluke, e + te * fluke * 0.45, e + te * fluke * 0.9 - tn * fluke,
            e - tn * 0.015], col, 0)
    b.poly(np.concatenate([c + nrm * lo[:, None], (c - nrm * up[:, None])[::-1]]), col, 0)
    # pectoral flipper below the front
    i1 = int(len(c) * 0.66)
    fb = c[i1] + nrm[i1] * lo[i1] * 0.8
    bk = -(c[i1 + 1] - c[i1 - 1])
    bk /= np.linalg.norm(bk)
    b.poly([fb + bk * 0.03, fb + nrm[i1] * 0.06 + bk * 0.07, fb - bk * 0.03], col, 1)
    i2 = int(len(c) * 0.8)
    ey = c[i2] - nrm[i2] * up[i2] * 0.2
    b.poly(_ell(ey[0], ey[1], 0.011, 0.011, 0, 8), "black", 2)
    b.line([c[i2 + 2] + nrm[i2 + 2] * lo[i2 + 2] * 0.3, beak_tip - dh * 0.01], "darkgray", 2, width=0.008)
    b.poly(_ell(c[i1][0], c[i1][1] + 0.02, 0.02, 0.045, math.pi / 2 + 0.3, 10), "white", 2)
    # water and splash
    b.line([(0.1, 0.84), (0.2, 0.82), (0.3, 0.84), (0.4, 0.82), (0.5, 0.84), (0.6, 0.82), (0.7, 0.84),
            (0.8, 0.82), (0.9, 0.84)], "blue", 1, width=0.015)
    _fit(b)


@category("turtle", "animals")
def turtle(b):
    dome = b.uniform("dome_height", 0.18, 0.27)
    neck = b.uniform("neck_ext", 0.04, 0.12)
    scutes = b.integer("scutes", 3, 5)
    head_up = b.uniform("head_up", -0.04, 0.08)
    spread = b.uniform("leg_spread", 0.0, 0.06)
    col = b.choice("color", ["green", "darkgreen", "olive", "brown"])
    skin = "olive" if col != "olive" else "tan"
    cx, base, rx = 0.47, 0.62, 0.28
    for x, dx in ((cx - 0.12, -spread * 0.5), (cx + 0.18, spread * 0.5)):        # far legs
        _vlimb(b, ((x, base), (x + dx, base + 0.15)), (0.06, 0.055), skin, 1)
    hx = cx + rx + neck
    hy = base - 0.01 - head_up
    b.poly(_tube([(cx + rx - 0.08, base + 0.03), (cx + rx + neck * 0.6, (base + hy) / 2 + 0.01), (hx, hy),
                  (hx + 0.05, hy + 0.01)], [0.08, 0.065, 0.085, 0.05], n=4), skin, 0)
    b.tri((cx - rx + 0.03, base), (cx - rx - 0.05, base + 0.035), (cx - rx + 0.04, base + 0.04), skin, 1)
    shell = np.concatenate([_arc(cx, base, rx, dome, math.pi, 2 * math.pi, 20),
                            [(cx + rx * 0.98, base + 0.02), (cx, base + 0.035), (cx - rx * 0.98, base + 0.02)]])
    b.poly(shell, col, 0)
    b.poly(_arc(cx, base, rx * 0.65, dome * 0.62, math.pi, 2 * math.pi, 12), "darkgreen" if col != "darkgreen"
           else "olive", 2, closed=False, width=0.01)
    for i in range(1, scutes):
        a = math.pi + math.pi * i / scutes
        p0 = (cx + rx * 0.65 * math.cos(a), base + dome * 0.62 * math.sin(a))
        p1 = (cx + rx * math.cos(a), base + dome * math.sin(a))
        b.line([p0, p1], "darkgreen" if col != "darkgreen" else "olive", 2, width=0.01)
    b.line([(cx - rx * 0.98, base), (cx + rx * 0.98, base)], "darkgray", 1, width=0.01)     # rim
    for x, dx in ((cx - 0.18, -spread), (cx + 0.12, spread)):                   # near legs
        _vlimb(b, ((x, base + 0.01), (x + dx, base + 0.16)), (0.07, 0.065), skin, 1)
    b.poly(_ell(hx + 0.01, hy - 0.01, 0.011, 0.011, 0, 8), "black", 2)
    _fit(b)


@category("crab", "animals")
def crab(b):
    claw = b.uniform("claw_size", 0.075, 0.11)
    raise_ = b.uniform("claw_raise", 0.0, 1.0)
    legs = b.integer("legs_per_side", 3, 4)
    cw = b.uniform("carapace_width", 0.18, 0.24)
    stalk = b.uniform("eye_stalk", 0.03, 0.07)
    col = b.choice("color", ["red", "orange", "brown", "darkred"])
    cx, cy = 0.5, 0.56
    for s in (-1, 1):                                   # walking legs
        for i in range(legs):
            by = cy + 0.0 + i * 0.035
            b0 = np.array([cx + s * cw * 0.85, by])
            kn = b0 + (s * (0.1 + 0.01 * i), -0.05 + 0.025 * i)
            ft = kn + (s * 0.04, 0.08 + 0.02 * i)
            b.line([b0, kn, ft], col, 1, width=0.02)
    for s in (-1, 1):                                   # claws on arms
        sh = np.array([cx + s * cw * 0.6, cy - 0.07])
        el = sh + (s * 0.09, -0.03)
        wr = el + (-s * 0.01, -0.08 - 0.06 * raise_)
        b.poly(_tube([sh, el, wr], [0.035, 0.032, 0.03], n=3), col, 0)
        ang = -math.pi / 2 - s * (0.25 + 0.2 * raise_)
        loc = np.array([[0, -0.45], [0.55, -0.6], [1.2, -0.4], [1.75, -0.02], [1.05, -0.06], [0.9, 0.08],
                        [1.45, 0.32], [0.9, 0.5], [0.3, 0.5], [0, 0.3]]) * claw * np.array([1.0, s])
        pc = _rot(loc + wr, wr[0], wr[1], ang)
        b.poly(pc, col, 0)
    for s in (-1, 1):                                   # eye stalks
        e0 = (cx + s * 0.035, cy - 0.09)
        e1 = (cx + s * 0.05, cy - 0.09 - stalk)
        b.line([e0, e1], col, 1, width=0.012)
        b.poly(_ell(e1[0], e1[1], 0.014, 0.014, 0, 8), "black", 2)
    half = [(cx + cw * 0.6, cy - 0.1), (cx + cw, cy - 0.04), (cx + cw * 0.85, cy + 0.06), (cx + cw * 0.4, cy + 0.11)]
    pts = [(cx, cy - 0.1)] + half + [(cx, cy + 0.12)] + [(2 * cx - x, y) for x, y in half[::-1]]
    b.poly(_cr(pts, 4), col, 0)
    b.poly(_arc(cx, cy - 0.02, cw * 0.45, 0.04, 0.3, math.pi - 0.3, 8), "darkred", 2, closed=False, width=0.01)
    _fit(b)


# ---------------------------------------------------------------------------------------------
# Small crawling things
# ---------------------------------------------------------------------------------------------
@category("snail", "animals")
def snail(b):
    r = b.uniform("shell_size", 0.17, 0.24)
    turns = b.uniform("spiral_turns", 2.0, 3.3)
    stalk = b.uniform("stalk_len", 0.07, 0.13)
    body_len = b.uniform("body_len", 0.6, 0.8)
    shell_x = b.uniform("shell_pos", -0.06, 0.04)
    col = b.choice("color", ["brown", "tan", "orange", "pink", "olive", "gold"])
    skin = "beige" if col not in ("tan", "gold") else "lightgray"
    y = 0.8
    x0, x1 = 0.5 - body_len / 2, 0.5 + body_len / 2
    hx, hy = x1 - 0.02, y - 0.1
    for dx, det in ((0.045, 1), (0.0, 1)):                    # eye stalks
        tip = (hx + dx + 0.03, hy - 0.04 - stalk * (1 - dx * 3))
        b.line([(hx + dx * 0.5, hy - 0.02), tip], skin, det, width=0.012)
        b.poly(_ell(tip[0], tip[1], 0.014, 0.014, 0, 8), "darkgray", 2)
    foot = [(x0, y + 0.03), (0.5, y), (x1 - 0.08, y - 0.02), (hx, hy)]
    b.poly(_tube(foot, [0.01, 0.075, 0.07, 0.065], [0.01, 0.07, 0.065, 0.07], n=5), skin, 0)
    sc = np.array([0.5 + shell_x, y - 0.02 - r * 0.85])
    b.poly(_ell(sc[0], sc[1], r, r * 0.93, 0, 28), col, 0)
    n = 40
    t = np.linspace(0, 2 * np.pi * turns, n)
    rr = r * 0.88 * (1 - t / (2 * np.pi * (turns + 0.35)))
    sp = np.stack([sc[0] + 0.02 * (t / t[-1]) + rr * np.cos(t + 0.3), sc[1] + rr * 0.93 * np.sin(t + 0.3)], 1)
    b.line(sp, "darkgray" if col != "brown" else "black", 0, width=0.015)
    b.line([(hx + 0.05, hy + 0.03), (hx + 0.02, hy + 0.04)], "darkgray", 2, width=0.006)
    _fit(b)


@category("spider", "animals")
def spider(b):
    span = b.uniform("leg_span", 0.28, 0.4)
    abd = b.uniform("abdomen_size", 0.1, 0.15)
    bend = b.uniform("leg_bend", 0.2, 0.7)
    thread = b.integer("thread", 0, 1)
    mark = b.choice("marking", ["none", "cross", "hourglass", "spots"])
    col = b.choice("color", ["black", "brown", "darkgray", "tan"])
    mk = "red" if col in ("black", "darkgray") else "white"
    cx, cy = 0.5, 0.42
    if thread:
        b.line([(cx, 0.0), (cx, cy - 0.07)], "lightgray", 1, width=0.008)
    angs = (-1.05, -0.4, 0.25, 0.85)
    for s in (-1, 1):
        for i, a in enumerate(angs):
            p0 = np.array([cx + s * 0.05, cy + 0.012 * (i - 1.5)])
            d1 = _dir(a - 0.35 * bend - 0.1)
            d2 = _dir(a + 0.5 * bend + (0.3 if i < 2 else 0.2))
            kn = p0 + d1 * np.array([s, 1.0]) * span * 0.5
            ft = kn + d2 * np.array([s, 1.0]) * span * 0.6
            b.line([p0, kn, ft], col, 0, width=0.022)
    ay = cy + 0.07 + abd * 0.9
    b.poly(_ell(cx, ay, abd * 0.85, abd, 0, 22), col, 0)
    b.poly(_ell(cx, cy, 0.065, 0.075, 0, 16), col, 0)
    if mark == "cross":
        b.line([(cx, ay - abd * 0.6), (cx, ay + abd * 0.5)], mk, 2, width=0.012)
        b.line([(cx - abd * 0.4, ay - abd * 0.15), (cx + abd * 0.4, ay - abd * 0.15)], mk, 2, width=0.012)
    elif mark == "hourglass":
        w = abd * 0.3
        b.poly([(cx - w, ay - abd * 0.45), (cx + w, ay - abd * 0.45), (cx, ay), (cx + w, ay + abd * 0.45),
                (cx - w, ay + abd * 0.45), (cx, ay)], mk, 2)
    elif mark == "spots":
        for k in (-1, 1):
            b.poly(_ell(cx + k * abd * 0.35, ay, abd * 0.15, abd * 0.15, 0, 8), mk, 2)
    for s in (-1, 1):
        b.poly(_ell(cx + s * 0.022, cy - 0.05, 0.012, 0.012, 0, 8), "white" if col != "tan" else "black", 2)
        b.line([(cx + s * 0.02, cy - 0.07), (cx + s * 0.035, cy - 0.11)], col, 2, width=0.012)
    _fit(b)


@category("butterfly", "animals")
def butterfly(b):
    span = b.uniform("wing_span", 0.3, 0.4)
    lower = b.uniform("hindwing_size", 0.5, 0.8)
    tilt = b.uniform("wing_tilt", -0.2, 0.25)
    ant = b.uniform("antenna_len", 0.12, 0.2)
    spots = b.integer("spots", 0, 2)
    tails = b.integer("tails", 0, 1)
    col = b.choice("color", ["orange", "blue", "yellow", "purple", "pink", "red", "sky"])
    edge = "black" if col in ("orange", "yellow", "sky") else "navy" if col == "blue" else "darkgray"
    cx = 0.5
    for s in (-1, 1):
        up = [(cx + 0.015, 0.44), (cx + 0.05, 0.3), (cx + span * 0.55, 0.18), (cx + span, 0.15),
              (cx + span * 0.95, 0.3), (cx + span * 0.6, 0.45), (cx + 0.03, 0.5)]
        up = _rot(up, cx, 0.47, -tilt)
        lo_s = span * lower
        low = [(cx + 0.02, 0.5), (cx + lo_s * 0.8, 0.5), (cx + lo_s, 0.63), (cx + lo_s * 0.7, 0.76)]
        if tails:
            low += [(cx + lo_s * 0.5, 0.78), (cx + lo_s * 0.45, 0.9), (cx + lo_s * 0.3, 0.78)]
        low += [(cx + lo_s * 0.2, 0.74), (cx + 0.02, 0.6)]
        up, low = np.asarray(up), np.asarray(low)
        if s < 0:
            up[:, 0] = 2 * cx - up[:, 0]
            low[:, 0] = 2 * cx - low[:, 0]
        b.poly(_cr(up, 4), col, 0)
        b.poly(_cr(low, 4), col, 0)
        for k in range(spots):
            q = up[3] * (0.65 - 0.2 * k) + np.array([cx, 0.45]) * (0.35 + 0.2 * k)
            b.poly(_ell(q[0], q[1], 0.025, 0.025, 0, 10), "white" if k == 0 else edge, 2)
        q = low[2] * 0.6 + np.array([cx, 0.55]) * 0.4
        b.poly(_ell(q[0], q[1], 0.022, 0.022, 0, 10), edge, 2)
    b.poly(_ell(cx, 0.52, 0.022, 0.16, 0, 16), "darkgray", 0)
    b.poly(_ell(cx, 0.35, 0.028, 0.028, 0, 10), "darkgray", 0)
    for s in (-1, 1):
        tip = (cx + s * ant * 0.5, 0.33 - ant)
        b.line([(cx + s * 0.01, 0.33), (cx + s * ant * 0.2, 0.33 - ant * 0.6), tip], "black", 1, width=0.008)
        b.poly(_ell(tip[0], tip[1], 0.012, 0.012, 0, 8), "black", 2)
    _fit(b)


@category("snake", "animals")
def snake(b):
    waves = b.uniform("waves", 1.0, 2.0)
    amp = b.uniform("amplitude", 0.06, 0.12)
    thick = b.uniform("thickness", 0.05, 0.075)
    head_raise = b.uniform("head_raise", 0.0, 0.2)
    bands = b.integer("bands", 0, 7)
    col = b.choice("color", ["green", "lime", "brown", "yellow", "red", "olive", "orange"])
    dark = "darkgreen" if col in ("green", "lime", "olive") else "black"
    m = 15
    u = _lin(m)
    x = 0.1 + 0.6 * u
    y = 0.6 + amp * np.sin(2 * np.pi * waves * u) - head_raise * np.clip((u - 0.6) / 0.4, 0, 1) ** 2
    ctrl = np.stack([x, y], 1)
    d = ctrl[-1] - ctrl[-2]
    d /= np.linalg.norm(d)
    head = ctrl[-1] + d * 0.055
    snout = ctrl[-1] + d * 0.11
    ctrl = np.concatenate([ctrl, [head, snout]])
    w = np.full(m + 2, thick)
    w[:4] = [0.006, thick * 0.45, thick * 0.75, thick * 0.95]
    w[-3:] = [thick * 0.8, thick * 1.6, thick * 0.8]
    c, nrm, lo, up = _tube_parts(ctrl, w, n=5)
    tn = snout + d * 0.015
    fork = tn + d * 0.04
    nn = np.array([-d[1], d[0]])
    b.line([tn, fork, fork + d * 0.025 + nn * 0.02, fork, fork + d * 0.025 - nn * 0.02], "red", 1, width=0.008)
    b.poly(np.concatenate([c + nrm * lo[:, None], (c - nrm * up[:, None])[::-1]]), col, 0)
    L = len(c)
    for k in range(bands):
        i = int(L * (0.2 + 0.6 * (k + 0.5) / bands))
        b.line([c[i] + nrm[i] * lo[i], c[i] - nrm[i] * up[i]], dark, 2, width=0.015)
    e = head + d * 0.01 - nn * thick * 0.3
    b.poly(_ell(e[0], e[1], 0.011, 0.011, 0, 8), "black", 2)
    _fit(b)
