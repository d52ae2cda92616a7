"""Overlapping text in a figure: titles, labels, tick labels, legend entries, annotations.

:func:`text_overlaps` draws the figure once and reports every pair of visible, non-empty text
boxes (in display pixels, as matplotlib's renderer lays them out) whose intersection exceeds
``min_area`` square pixels -- a figure title drawn over a panel title, a legend entry over an
axis label, two panels' tick labels running into each other. Text of one legend or one axis'
tick labels is compared like any other text.

:func:`core.output.save_figure` records the overlaps of every figure it writes when recording is
on (:func:`recording`), so a test can run every figure module and check each PNG it produced
(``tests/test_figs.py``) without the modules knowing about it.
"""
from __future__ import annotations

import contextlib

#: path -> the overlaps of the figure saved there, while :func:`recording` is active
RECORDED: dict[str, list[tuple[str, str]]] = {}
_ACTIVE = [False]


def _texts(fig, renderer):
    from matplotlib.text import Text

    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        try:
            box = t.get_window_extent(renderer)
        except (RuntimeError, ValueError):
            continue
        if box.width <= 0 or box.height <= 0:
            continue
        out.append((t, box))
    return out


def _drawn_ticklabels(fig) -> set[int]:
    """ids of the tick labels the axes actually draw (inside the view interval)."""
    ids = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():            # the ticks a draw renders
                for lab in (tick.label1, tick.label2):
                    ids.add(id(lab))
    return ids


def text_overlaps(fig, min_area: float = 4.0) -> list[tuple[str, str]]:
    """Pairs of overlapping text boxes (their texts, truncated) of ``fig`` after one draw."""
    from matplotlib.axis import Tick

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    drawn = _drawn_ticklabels(fig)
    tick_labels = {id(lab) for t in fig.findobj(Tick) for lab in (t.label1, t.label2)}
    items = [(t, b) for t, b in _texts(fig, renderer)
             if id(t) not in tick_labels or id(t) in drawn]
    found = []
    for i, (ta, ba) in enumerate(items):
        for tb, bb in items[i + 1:]:
            w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
            h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            if w > 0 and h > 0 and w * h > min_area:
                found.append((ta.get_text()[:60], tb.get_text()[:60]))
    return found


@contextlib.contextmanager
def recording():
    """Within the block, :func:`core.output.save_figure` records each figure's overlaps in
    :data:`RECORDED` (path -> pairs)."""
    RECORDED.clear()
    _ACTIVE[0] = True
    try:
        yield RECORDED
    finally:
        _ACTIVE[0] = False


def record(fig, path: str) -> None:
    if _ACTIVE[0]:
        RECORDED[path] = text_overlaps(fig)
