"""Validation as the official HRNet code does it: flip test, heatmap decode, rescoring by the mean
of confident joint scores times the box score, OKS-NMS per image, then COCO keypoint AP
(engines.formats.coco_eval) against the annotation file."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from engines.pose.codec import decode_heatmaps, flip_back, fuse_flip
from engines.pose.geometry import PIXEL_STD
from trainer.oks_nms import oks_nms, soft_oks_nms

__all__ = ["predict", "rescore_and_nms", "to_coco_results"]



@torch.no_grad()
def predict(model: torch.nn.Module, loader, flip_order, device: torch.device, flip_test: bool = True,
            shift_heatmap: bool = True, decode: str = "standard", criterion=None,
            channels_last: bool = False, progress: bool = True) -> dict:
    """Run `model` over a validation loader; returns arrays keypoints (N,J,3), centers, scales,
    scores, image_ids, and the mean loss when `criterion` is given."""
    model.eval()
    out = {k: [] for k in ("keypoints", "centers", "scales", "scores", "image_ids", "index")}
    loss_sum, count = 0.0, 0
    memory = torch.channels_last if channels_last else torch.contiguous_format
    for batch in tqdm(loader, desc="validate", disable=not progress, leave=False, dynamic_ncols=True):
        x = batch["input"].to(device, non_blocking=True).contiguous(memory_format=memory)
        heatmaps = model(x).float()
        if criterion is not None:
            loss = criterion(heatmaps, batch["target"].to(device), batch["target_weight"].to(device))
            loss_sum += float(loss) * len(x)
            count += len(x)
        hm = heatmaps.cpu().numpy()
        if flip_test:
            flipped = model(x.flip(3)).float().cpu().numpy()
            if shift_heatmap:
                hm = fuse_flip(hm, flipped, flip_order)
            else:
                hm = (hm + flip_back(flipped, flip_order)) * 0.5
        centers, scales = batch["center"].numpy(), batch["scale"].numpy()
        out["keypoints"].append(decode_heatmaps(hm, centers, scales, method=decode))
        out["centers"].append(centers)
        out["scales"].append(scales)
        out["scores"].append(batch["score"].numpy())
        out["image_ids"].append(batch["image_id"].numpy())
        out["index"].append(batch["index"].numpy())
    result = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in out.items()}
    if criterion is not None:
        result["loss"] = loss_sum / max(count, 1)
    return result


def rescore_and_nms(keypoints: np.ndarray, box_scores: np.ndarray, areas: np.ndarray,
                    image_ids: np.ndarray, sigmas: np.ndarray, in_vis_thre: float = 0.2,
                    oks_thre: float = 0.9, soft: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Official rescoring and per-image OKS-NMS. Returns (kept row indices, new scores)."""
    confident = keypoints[..., 2] > in_vis_thre
    n_conf = confident.sum(axis=1)
    kpt_score = np.where(n_conf > 0, (keypoints[..., 2] * confident).sum(axis=1) / np.maximum(n_conf, 1), 0.0)
    scores = (kpt_score * box_scores).astype(np.float64)
    nms = soft_oks_nms if soft else oks_nms
    kept = []
    for image_id in np.unique(image_ids):
        rows = np.flatnonzero(image_ids == image_id)
        keep = nms(keypoints[rows], scores[rows], areas[rows], oks_thre, sigmas=sigmas)
        kept.extend(rows[np.asarray(keep, dtype=np.int64)].tolist() if len(keep) else [])
    return np.array(sorted(kept), dtype=np.int64), scores


def to_coco_results(pred: dict, sigmas: np.ndarray, in_vis_thre: float, oks_thre: float,
                    soft_nms: bool = False) -> list[dict]:
    """COCO keypoint results after rescoring and OKS-NMS; areas are the crop boxes' (official)."""
    areas = np.prod(pred["scales"] * PIXEL_STD, axis=1)
    keep, scores = rescore_and_nms(pred["keypoints"], pred["scores"], areas, pred["image_ids"],
                                   sigmas, in_vis_thre, oks_thre, soft_nms)
    return [{"image_id": int(pred["image_ids"][i]), "category_id": 1,
             "keypoints": pred["keypoints"][i].reshape(-1).round(3).tolist(), "score": float(scores[i])}
            for i in keep]
