"""MPII in the official HRNet annot JSON form: a list of
`{image, center [x, y], scale, joints [[x, y] x 16], joints_vis [16]}` with MATLAB (1-based)
pixel coordinates and `scale` = person height / 200.

As in the official loader: the centre moves down by 15 * scale px, the scale grows 1.25x (square
box), and 1 is subtracted from all coordinates. Validation reports the loss on ground-truth boxes
(PCKh needs the official gt_valid.mat head boxes, which this loader does not read).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.errors import UserError
from engines.formats.coco import read_json
from engines.pose.schemas import KeypointSchema
from trainer.datasets.base import PersonRecords

__all__ = ["load_mpii"]


def load_mpii(ann_file: Path, images_dir: Path | None, schema: KeypointSchema) -> PersonRecords:
    entries = read_json(ann_file)
    if not isinstance(entries, list):
        raise UserError(f"{ann_file}: expected a list of MPII annotations (official annot JSON)")
    base = images_dir if images_dir is not None else ann_file.parent
    j = schema.num_joints
    names, rows, centers, scales, joints, vis = {}, [], [], [], [], []
    for k, a in enumerate(entries):
        try:
            c = np.asarray(a["center"], dtype=np.float64).reshape(2)
            s = float(a["scale"])
            xy = np.asarray(a["joints"], dtype=np.float64).reshape(j, 2)
            v = np.asarray(a["joints_vis"], dtype=np.float64).reshape(j)
            name = str(a["image"])
        except KeyError as exc:
            raise UserError(f"{ann_file}: entry [{k}]: missing {exc}") from None
        except (TypeError, ValueError) as exc:
            name = a.get("image", "?") if isinstance(a, dict) else repr(a)
            raise UserError(f"{ann_file}: entry [{k}] ({name}): "
                            f"bad value ({exc}); expected center [x, y], scale, {j} joints, {j} joints_vis") from None
        scale = np.array([s, s])
        if c[0] != -1:
            c[1] += 15 * scale[1]
            scale *= 1.25
        rows.append(names.setdefault(name, len(names)))
        centers.append(c - 1)
        scales.append(scale)
        joints.append(np.concatenate([xy - 1, np.zeros((j, 1))], axis=1))
        vis.append(np.repeat(np.minimum(v, 1)[:, None], 3, axis=1) * [1, 1, 0])
    n = len(rows)
    return PersonRecords([str(base / name) for name in names], np.arange(len(names), dtype=np.int64),
                         np.array(rows, np.int64), np.array(centers, np.float32).reshape(n, 2),
                         np.array(scales, np.float32).reshape(n, 2),
                         np.array(joints, np.float32).reshape(n, j, 3),
                         np.array(vis, np.float32).reshape(n, j, 3), np.ones(n, np.float32))
