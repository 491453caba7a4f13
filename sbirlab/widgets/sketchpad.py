"""The sketch-and-retrieve widget: an ipycanvas pad wired to a :class:`~sbirlab.widgets.engine.RetrievalEngine`.

Draw on the pad; after every stroke the top-k photos of the chosen gallery and the zero-shot class guess
are refreshed. This module is the thin view only: the strokes live in a
:class:`~sbirlab.widgets.raster.StrokeModel` (the source of truth, rasterised by the dataset's own
rasteriser, never read back from the browser), retrieval in the engine.

Browser facts it is built around (docs/methods.md §8.4.2): draw commands sent before the page's view
exists are lost, so the pad is repainted from the stroke list in ``on_client_ready`` (every time the page
connects or reconnects); the canvas image sync is asynchronous, so it is never used. Every handler is
guarded: bad input (an empty pad, a single dot, a stroke outside the pad, a folder without a readable
image) and unexpected errors become one line in the status bar, never a traceback.
"""
from __future__ import annotations

import functools
import html
import io
import logging
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from .engine import Gallery, GalleryError, Result, RetrievalEngine
from .raster import CANVAS, DEFAULT_WIDTH, MAX_WIDTH, MIN_WIDTH, Notice, StrokeModel

log = logging.getLogger(__name__)

FOLDER_CHOICE = "a folder of photos..."
READY = "Draw on the pad: the photos are refreshed after every stroke."


def _guarded(fn):
    """Run a handler; any exception becomes a status message (details in the log at DEBUG level)."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except GalleryError as e:
            self._say(str(e), "error")
        except Exception as e:  # noqa: BLE001 - a widget handler must never print a traceback
            log.debug("sketch widget: %s failed", fn.__name__, exc_info=True)
            self._say(f"Something went wrong ({type(e).__name__}: {e}). The pad is unchanged.", "error")
        return None
    return wrapper


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class SketchRetrievalWidget:
    """Pad + controls + results. Display it as the last expression of a cell (or ``display(w.box)``).

    Args:
        engines: ``{name: engine}`` of the methods / runs to choose from; a value may also be a zero-arg
            callable returning an engine (loaded when first chosen).
        galleries: ``{name: gallery}`` (or zero-arg callables); the widget adds a choice for any folder.
        k: photos shown.
        pad_size: side of the pad in screen pixels (strokes are stored in the 256 frame regardless).
        width: initial pen width in canvas units (the dataset's drawers use 2-5).
        recorded: ``{name: (strokes, widths, label)}`` of recorded sketches the Replay button can draw.
        thumb_size: side of the result thumbnails in pixels.
        replay_delay: seconds between strokes of a replay from the button.
    """

    def __init__(self, engines: Mapping[str, RetrievalEngine | Callable], galleries: Mapping[str, Gallery | Callable],
                 k: int = 8, pad_size: int = 256, width: float = DEFAULT_WIDTH,
                 recorded: Mapping[str, tuple] | None = None, thumb_size: int = 72, replay_delay: float = 0.4):
        import ipywidgets as W
        from ipycanvas import Canvas

        if not engines:
            raise ValueError("SketchRetrievalWidget needs at least one engine (a trained method)")
        if not galleries:
            raise ValueError("SketchRetrievalWidget needs at least one gallery")
        self.k, self.thumb_size, self.replay_delay = int(k), int(thumb_size), float(replay_delay)
        self._engines = dict(engines)
        self._galleries = dict(galleries)
        self.recorded = dict(recorded or {})
        self.model = StrokeModel(canvas=CANVAS, view_size=float(pad_size), width=width)
        self.engine: RetrievalEngine | None = None
        self.result: Result | None = None
        self.message, self.level = "", "info"
        self.refreshes: list[float] = []  # seconds per refresh (stroke end -> panel updated)
        self._gallery_name: str | None = None

        # -- the pad
        self.canvas = Canvas(width=pad_size, height=pad_size,
                             layout=W.Layout(width=f"{pad_size}px", height=f"{pad_size}px"))
        self.canvas.on_client_ready(self.redraw)
        self.canvas.on_mouse_down(self.on_mouse_down)
        self.canvas.on_mouse_move(self.on_mouse_move)
        self.canvas.on_mouse_up(self.on_mouse_up)
        self.canvas.on_mouse_out(self.on_mouse_out)
        self.canvas.on_touch_start(lambda t: t and self.on_mouse_down(*t[0]))
        self.canvas.on_touch_move(lambda t: t and self.on_mouse_move(*t[0]))
        self.canvas.on_touch_end(lambda t: self.on_mouse_up(*t[0]) if t else self.on_mouse_up())
        pad = W.Box([self.canvas], layout=W.Layout(border="1px solid #888", width=f"{pad_size + 2}px",
                                                   height=f"{pad_size + 2}px"))
        pad.add_class("sbirlab-pad")
        self.width_slider = W.FloatSlider(value=self.model.width, min=MIN_WIDTH, max=MAX_WIDTH, step=0.5,
                                          description="pen width", continuous_update=False,
                                          layout=W.Layout(width=f"{pad_size + 2}px"))
        self.width_slider.observe(lambda ch: self.set_width(ch["new"]), names="value")
        self.undo_button = W.Button(description="Undo", icon="undo", layout=W.Layout(width="80px"))
        self.clear_button = W.Button(description="Clear", icon="trash", layout=W.Layout(width="80px"))
        self.undo_button.on_click(lambda _: self.undo())
        self.clear_button.on_click(lambda _: self.clear())
        self.recorded_select = W.Dropdown(options=list(self.recorded) or ["(no recordings)"],
                                          layout=W.Layout(width="170px"))
        self.replay_button = W.Button(description="Replay", icon="play", layout=W.Layout(width="80px"),
                                      disabled=not self.recorded, tooltip="draw a recorded sketch stroke by stroke")
        self.replay_button.on_click(lambda _: self.replay_recorded(self.recorded_select.value, self.replay_delay))
        self.sketch_view = W.Image(format="png", layout=W.Layout(width="64px", height="64px", border="1px solid #ccc"))

        # -- choices
        self.engine_select = W.Dropdown(options=list(self._engines), description="method",
                                        layout=W.Layout(width="320px"))
        self.gallery_select = W.Dropdown(options=[*self._galleries, FOLDER_CHOICE], description="gallery",
                                         layout=W.Layout(width="320px"))
        self.folder_text = W.Text(placeholder="/path/to/a/folder/of/photos", layout=W.Layout(width="320px"))
        self.folder_button = W.Button(description="Load folder", icon="folder-open", layout=W.Layout(width="110px"))
        self.folder_box = W.HBox([self.folder_text, self.folder_button], layout=W.Layout(display="none"))
        self.engine_select.observe(lambda ch: self.select_engine(ch["new"]), names="value")
        self.gallery_select.observe(lambda ch: self._on_gallery_choice(ch["new"]), names="value")
        self.folder_button.on_click(lambda _: self.load_folder(self.folder_text.value))

        # -- results
        self.status = W.HTML()
        self.status.add_class("sbirlab-status")
        self.guess_html = W.HTML()
        self.guess_html.add_class("sbirlab-guess")
        self.thumbs = [W.Image(format="png", layout=W.Layout(width=f"{thumb_size}px", height=f"{thumb_size}px"))
                       for _ in range(self.k)]
        self.captions = [W.HTML(layout=W.Layout(width=f"{thumb_size + 8}px")) for _ in range(self.k)]
        self.slots = [W.VBox([im, cap], layout=W.Layout(display="none", margin="2px"))
                      for im, cap in zip(self.thumbs, self.captions)]
        for s in self.slots:
            s.add_class("sbirlab-result")
        self.results_box = W.HBox(self.slots, layout=W.Layout(flex_flow="row wrap", width="100%"))
        self.results_box.add_class("sbirlab-results")

        left = W.VBox([pad, self.width_slider,
                       W.HBox([self.undo_button, self.clear_button]),
                       W.HBox([self.recorded_select, self.replay_button]),
                       W.HBox([W.HTML("<small>what the model sees:</small>"), self.sketch_view])],
                      layout=W.Layout(flex="0 0 auto", width=f"{pad_size + 8}px"))
        panel_w = max(480, (thumb_size + 16) * min(self.k, 8) + 24)  # up to 8 photos per row
        right = W.VBox([self.engine_select, self.gallery_select, self.folder_box, self.status, self.guess_html,
                        self.results_box], layout=W.Layout(width=f"{panel_w}px", margin="0 0 0 12px", flex="0 0 auto"))
        self.box = W.HBox([left, right], layout=W.Layout(flex_flow="row wrap"))  # narrow screens: results below
        self.box.add_class("sbirlab-sketch-widget")

        self.select_engine(self.engine_select.value)
        if self.engine is not None:
            self._on_gallery_choice(self.gallery_select.value)

    # ------------------------------------------------------------------------------------ display
    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)

    def _say(self, message: str, level: str = "info") -> None:
        self.message, self.level = message, level
        color = {"info": "#333", "warn": "#a05a00", "error": "#b00020"}.get(level, "#333")
        self.status.value = f'<span style="color:{color}" data-level="{level}">{html.escape(message)}</span>'

    def _notice(self, n: Notice | None) -> bool:
        if n is not None:
            self._say(n.message, "warn")
            return True
        return False

    # --------------------------------------------------------------------------------- drawing
    def _pen(self, width: float) -> None:
        c = self.canvas
        c.stroke_style, c.fill_style = "black", "black"
        c.line_cap, c.line_join = "round", "round"
        c.line_width = max(1.0, width / self.model.scale)

    def _draw_stroke(self, points: np.ndarray, width: float) -> None:
        v = self.model.to_view(points)
        self._pen(width)
        if len(v) == 1 or (np.ptp(v, axis=0).max() < 1e-6):
            self.canvas.fill_circle(float(v[0, 0]), float(v[0, 1]), max(1.0, width / self.model.scale / 2))
        else:
            self.canvas.stroke_lines(v.tolist())

    @_guarded
    def redraw(self) -> None:
        """Repaint the pad from the stroke list (on every page (re)connection, undo, clear, replay)."""
        from ipycanvas import hold_canvas
        from ipycanvas import canvas as _ic

        mgr = getattr(_ic, "_CANVAS_MANAGER", None)
        if mgr is not None and hasattr(mgr, "_current_canvas"):
            mgr._current_canvas = None  # the page may have missed the canvas switch: send it again
        with hold_canvas():
            self.canvas.clear()
            self.canvas.fill_style = "white"
            self.canvas.fill_rect(0, 0, self.canvas.width, self.canvas.height)
            for s, w in zip(self.model.strokes, self.model.widths):
                self._draw_stroke(s, w)
            if self.model.drawing and len(self.model.current):
                self._draw_stroke(self.model.current, self.model.width)

    @_guarded
    def on_mouse_down(self, x: float, y: float) -> None:
        self.model.begin(x, y)
        self._draw_stroke(self.model.current, self.model.width)

    @_guarded
    def on_mouse_move(self, x: float, y: float) -> None:
        if self.model.drawing and self.model.extend(x, y):
            self._draw_stroke(self.model.current[-2:], self.model.width)

    @_guarded
    def on_mouse_up(self, x: float | None = None, y: float | None = None) -> None:
        if not self.model.drawing:
            return
        n_before = len(self.model)
        notice = self.model.end(x, y)
        if notice is not None:
            self.redraw()  # show what was kept, not what the mouse traced
        if notice is not None and len(self.model) == n_before:
            self._notice(notice)  # nothing stored: keep the previous results
            return
        self.refresh(notice)

    @_guarded
    def on_mouse_out(self, x: float, y: float) -> None:
        """Leaving the pad ends the stroke (the button may be released outside, where no event comes)."""
        if self.model.drawing:
            self.on_mouse_up(x, y)

    # --------------------------------------------------------------------------------- editing
    @_guarded
    def set_width(self, width: float) -> None:
        self.model.set_width(width)

    @_guarded
    def undo(self) -> None:
        if self._notice(self.model.undo()):
            return
        self.redraw()
        self.refresh()

    @_guarded
    def clear(self) -> None:
        self.model.clear()
        self.redraw()
        self.refresh()

    @_guarded
    def add_stroke(self, points, width: float | None = None, clip: bool = True) -> Result | None:
        """Add one stroke in canvas units (as if drawn), repaint it and refresh; returns the result."""
        n_before = len(self.model)
        notice = self.model.add_stroke(points, width, clip=clip)
        for s, w in zip(self.model.strokes[n_before:], self.model.widths[n_before:]):
            self._draw_stroke(s, w)
        if notice is not None and len(self.model) == n_before:
            self._notice(notice)
            return None
        return self.refresh(notice)

    def replay(self, strokes: Sequence, widths: Sequence[float] | None = None, delay: float = 0.0) -> list:
        """Clear the pad and draw ``strokes`` (canvas units) one by one, refreshing after each.

        Works headless (no browser needed). Returns the :class:`Result` after each stroke.
        """
        self.clear()
        ws = list(widths) if widths is not None else [None] * len(strokes)
        out = []
        for s, w in zip(strokes, ws):
            out.append(self.add_stroke(s, w, clip=False))
            if delay > 0:
                time.sleep(delay)
        return out

    @_guarded
    def replay_recorded(self, name: str, delay: float = 0.0) -> list | None:
        """Replay the recording ``name`` of :attr:`recorded`."""
        if name not in self.recorded:
            self._say(f"No recorded sketch named {name!r}.", "warn")
            return None
        strokes, widths, label = self.recorded[name]
        out = self.replay(strokes, widths, delay)
        if self.result is not None:
            r = self.result.rank_of(label)
            self._say(f"Replayed {name} ({label}, {len(strokes)} strokes): the first {label} photo is at rank "
                      f"{r if r is not None else 'n/a'}.", "info")
        return out

    # --------------------------------------------------------------------------------- choices
    @_guarded
    def select_engine(self, name: str) -> None:
        e = self._engines[name]
        if not isinstance(e, RetrievalEngine):
            self._say(f"Loading {name}...")
            e = self._engines[name] = e()
        previous = self.engine.gallery if self.engine is not None else None
        self.engine = e
        if previous is not None:  # same photos, this method's embeddings
            self.use_gallery(previous)

    def _on_gallery_choice(self, name: str) -> None:
        self.folder_box.layout.display = "" if name == FOLDER_CHOICE else "none"
        if name == FOLDER_CHOICE:
            self._say("Type the path of a folder of photos (sub-folders are classes) and press Load folder.")
            return
        self.select_gallery(name)

    @_guarded
    def select_gallery(self, name: str) -> None:
        g = self._galleries[name]
        if not isinstance(g, Gallery):
            g = self._galleries[name] = g()
        self.use_gallery(g)

    @_guarded
    def load_folder(self, folder: str) -> None:
        """Search the photos of ``folder`` (every image file below it; sub-folders name the classes)."""
        g = Gallery.from_folder(folder)  # GalleryError -> status message
        self.use_gallery(g)              # GalleryError (nothing decodes) -> status message, old gallery kept
        self._galleries[g.name] = g
        opts = [o for o in self.gallery_select.options if o != FOLDER_CHOICE]
        if g.name not in opts:
            opts.append(g.name)
        self._gallery_name = g.name
        self.gallery_select.options = [*opts, FOLDER_CHOICE]
        self.gallery_select.value = g.name

    def use_gallery(self, gallery: Gallery) -> None:
        """Point the current engine at ``gallery`` (cached embeddings) and refresh."""
        if self.engine is None:
            raise RuntimeError("no method selected")
        if self.engine.gallery is gallery and self.engine.feats is not None and self.engine.info is not None:
            info = self.engine.info  # already set up (e.g. by the notebook before building the widget)
        else:
            self._say(f"Embedding {gallery.name} ({len(gallery)} photos)...")
            old = self.engine.gallery
            try:
                info = self.engine.set_gallery(gallery)
            except GalleryError:
                if old is not None:
                    self.engine.set_gallery(old)
                raise
        self._gallery_name = gallery.name
        how = "from the cache" if info.from_cache else f"computed in {info.seconds:.1f} s and cached"
        skipped = (f"; {info.n_skipped} unreadable file(s) skipped (e.g. {info.skipped_example})"
                   if info.n_skipped else "")
        self.refresh()
        if self.model.problem() is not None:
            self._say(f"{gallery.name}: {info.n_photos} photos, embeddings {how}{skipped}. {READY}",
                      "warn" if skipped else "info")

    # --------------------------------------------------------------------------------- results
    def _hide_results(self) -> None:
        for s in self.slots:
            s.layout.display = "none"
        self.guess_html.value = ""
        self.result = None

    @_guarded
    def refresh(self, notice: Notice | None = None) -> Result | None:
        """Query with the current strokes and update the panel (or say why not)."""
        t0 = time.perf_counter()
        problem = self.model.problem()
        if self.engine is None or self.engine.feats is None:
            self._hide_results()
            if problem is None:
                self._say("Choose a gallery first.", "warn")
            return None
        if problem is not None:
            self._hide_results()
            self.sketch_view.value = _png(self.model.rasterize(self.engine.image_size))
            self._notice(problem)
            return None
        r = self.engine.query(self.model, k=self.k)
        self.result = r
        self.sketch_view.value = _png(r.sketch)
        for j, slot in enumerate(self.slots):
            if j < len(r.indices):
                self.thumbs[j].value = self.engine.thumbnail(int(r.indices[j]), self.thumb_size)
                lab = html.escape(r.labels[j] or "-")
                self.captions[j].value = (f'<div style="font-size:11px;line-height:1.25">{j + 1}. {lab}<br>'
                                          f"cos {r.scores[j]:.2f}</div>")
                slot.layout.display = ""
            else:
                slot.layout.display = "none"
        if r.guess:
            top = ", ".join(f"<b>{html.escape(c)}</b> {p:.0%}" if i == 0 else f"{html.escape(c)} {p:.0%}"
                            for i, (c, p) in enumerate(r.guess[:3]))
            self.guess_html.value = f"Zero-shot class guess (text encoder): {top}"
        else:
            self.guess_html.value = "<i>no class guess: this method has no text encoder</i>"
        msg = (f"top-{len(r.indices)} of {len(self.engine.feats)} photos after {r.n_strokes} stroke(s) "
               f"({self.engine.name}, {(time.perf_counter() - t0) * 1000:.0f} ms)")
        if notice is not None:
            self._say(f"{notice.message} {msg}", "warn")
        else:
            self._say(msg, "info")
        self.refreshes.append(time.perf_counter() - t0)
        return r

    @property
    def shown(self) -> int:
        """Result photos currently visible."""
        return sum(s.layout.display != "none" for s in self.slots)
