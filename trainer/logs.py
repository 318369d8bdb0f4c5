"""Per-epoch training records as a CSV table and PNG plots (TensorBoard gets the same scalars).

A row is a dict: epoch, lr, train_loss, val_loss, AP, AP .5, AR, seconds; "" where not measured.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from engines.common.files import atomic_path, write_text_atomic

__all__ = ["CSV_FIELDS", "write_metrics_csv", "write_plots"]

CSV_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "AP", "AP .5", "AR", "seconds")


def write_metrics_csv(history: list[dict], path: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(path, text.getvalue())


def write_plots(history: list[dict], run_dir: Path) -> None:
    """loss.png (train and validation loss) and ap.png (AP, AP .5, AR) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, keys, ylabel in (("loss.png", ("train_loss", "val_loss"), "loss"),
                               ("ap.png", ("AP", "AP .5", "AR"), "COCO keypoint metric")):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for key in keys:
            pts = [(r["epoch"], r[key]) for r in history if r.get(key, "") != ""]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        fig.tight_layout()
        with atomic_path(run_dir / name) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
