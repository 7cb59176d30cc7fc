"""Matplotlib figures written to any `tf.io.gfile` path (a local folder, an artifact on an object
store): rendered in memory, written in one piece."""

from __future__ import annotations

import io
from typing import Any


def save_figure(fig: Any, path: str, dpi: int) -> None:
    """Writes `fig` as a PNG to `path` and closes it."""
    import matplotlib.pyplot as plt
    import tensorflow as tf

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
