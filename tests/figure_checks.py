"""Checks of written figures shared by the figure and CLI tests."""
import os

import numpy as np
from matplotlib import image as mpimg


def check_png(path, min_w=400, min_h=300):
    """A real, non-blank matplotlib figure: PNG signature, size, colours, ink and coloured lines
    (an empty axes box, a blank canvas or a non-PNG file fail)."""
    path = os.fspath(path)
    assert path.endswith(".png") and os.path.isfile(path), path
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n", path
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4), (path, img.shape)
    h, w = img.shape[:2]
    assert min_w <= w <= 8000 and min_h <= h <= 8000, (path, img.shape)
    rgb = img[..., :3].astype(np.float64)
    assert rgb.std() > 0.01, f"{path}: uniform image"
    q = np.round(rgb * 255).astype(np.int64)
    packed = (q[..., 0] << 16) | (q[..., 1] << 8) | q[..., 2]
    assert np.unique(packed).size > 16, f"{path}: too few colours"
    ink = (rgb < 0.9).any(axis=-1).mean()
    assert 0.003 < ink < 0.9, f"{path}: ink fraction {ink}"
    chroma = rgb.max(axis=-1) - rgb.min(axis=-1)
    assert (chroma > 0.25).mean() > 1e-4, f"{path}: no coloured curves drawn"
