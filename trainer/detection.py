"""Training the bundled person detector (engines.detectors.centernet) with the same Trainer:
`MODEL.KIND centernet` in a config selects the parts defined here.

Data: any COCO-format annotation file (COCO itself, or `python -m trainer synth images`), one
sample per image with all its non-crowd people. Training images go through a random affine into
the network input (scale 1 +- DATASET.SCALE_FACTOR around the letterbox fit, random placement,
horizontal flip) and a brightness/contrast/colour jitter; validation images are letterboxed
exactly as CenterNetDetector does at run time. Loss: the penalty-reduced focal loss on the centre
heatmap, as CenterNet, plus L1 on the log of the box size and on the centre offset (weight 1
each; the log makes the size loss scale-free and trains much faster than CenterNet's pixel L1
in the few thousand steps a CPU affords). Validation: COCO box AP (pycocotools) in frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset
from tqdm import tqdm

from engines.formats.coco_eval import coco_ap
from engines.detectors.centernet import NARROW, CenterNetNet, decode_centernet, widths_of
from engines.common.letterbox import PAD_VALUE, letterbox
from engines.errors import UserError
from engines.formats.coco import PersonBoxes, load_person_boxes
from trainer.datasets.base import read_image, resolve
from trainer.distributed import unwrap
from trainer.targets import encode_centernet_targets
from trainer.train import Trainer
from trainer.widen import widened

__all__ = ["DetectorTrainer", "DetectionDataset", "PersonBoxes", "load_person_boxes", "centernet_loss",
           "predict_boxes", "MIN_KEPT_AREA"]

MIN_KEPT_AREA = 0.3    # a person cut by the input border stays a target with this much of its box


def random_affine(image_wh, input_wh, rng: np.random.Generator, scale_factor: float, flip: bool) -> np.ndarray:
    """2x3 matrix: letterbox fit times a random scale, a random place in the input, maybe mirrored."""
    (w, h), (out_w, out_h) = image_wh, input_wh
    a = min(out_w / w, out_h / h) * rng.uniform(1 - scale_factor, 1 + scale_factor)
    spare_x, spare_y = out_w - a * w, out_h - a * h
    tx = rng.uniform(min(0.0, spare_x), max(0.0, spare_x))
    ty = rng.uniform(min(0.0, spare_y), max(0.0, spare_y))
    if flip and rng.random() < 0.5:
        return np.array([[-a, 0, a * w + tx], [0, a, ty]], np.float64)
    return np.array([[a, 0, tx], [0, a, ty]], np.float64)


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray, input_wh) -> np.ndarray:
    """Boxes through an axis-aligned affine, clipped to the input; those left with less than
    MIN_KEPT_AREA of their area, or under 2 pixels, are dropped."""
    xs = boxes[:, [0, 2]] * matrix[0, 0] + matrix[0, 2]
    ys = boxes[:, [1, 3]] * matrix[1, 1] + matrix[1, 2]
    moved = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], 1)
    clipped = moved.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, input_wh[0])
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, input_wh[1])

    def area(b):
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    keep = (area(clipped) >= MIN_KEPT_AREA * area(moved)) & (clipped[:, 2:] - clipped[:, :2] >= 2).all(1)
    return clipped[keep]


def jitter_colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast, brightness and per-channel gain (lighting and white balance)."""
    gain = rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, size=3)
    bias = rng.uniform(-25, 25)
    return np.clip(image.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


class DetectionDataset(Dataset):
    """One sample per image: RGB input in [0,1] and the CenterNet targets. Augmentation is seeded
    by (seed, epoch, index) like JointsDataset, so a resumed run sees the same samples."""

    def __init__(self, people: PersonBoxes, input_wh, train: bool, scale_factor: float = 0.35,
                 flip: bool = True, seed: int = 0):
        self.people, self.input_wh, self.train = people, tuple(input_wh), train
        self.scale_factor, self.flip, self.seed, self.epoch = scale_factor, flip, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.people)

    def __getitem__(self, index: int) -> dict:
        image = read_image(self.people.image_paths[index], rgb=True)
        h, w = image.shape[:2]
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            matrix = random_affine((w, h), self.input_wh, rng, self.scale_factor, self.flip)
            canvas = cv2.warpAffine(image, matrix, self.input_wh, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)
            canvas = jitter_colour(canvas, rng)
            ratio = 0.0  # unused in training
        else:
            canvas, box = letterbox(image, self.input_wh, centred=False)
            matrix = np.array([[box.ratio, 0, 0], [0, box.ratio, 0]])
            ratio = box.ratio
        boxes = transform_boxes(self.people.boxes[index], matrix, self.input_wh)
        heat, size, offset, mask = encode_centernet_targets(boxes, self.input_wh)
        return {"input": torch.from_numpy(canvas.transpose(2, 0, 1).astype(np.float32) / 255.0),
                "heat": torch.from_numpy(heat), "size": torch.from_numpy(size),
                "offset": torch.from_numpy(offset), "mask": torch.from_numpy(mask),
                "image_id": int(self.people.image_ids[index]), "ratio": ratio}


def centernet_loss(outputs, batch) -> torch.Tensor:
    """Focal loss (alpha 2, beta 4) on the centre heatmap, normalised by the number of people,
    plus the L1 losses on log size and offset at the centre cells."""
    heat_logits, size, offset = (o.float() for o in outputs)
    gt, mask = batch["heat"], batch["mask"].unsqueeze(1).float()
    positive = (gt == 1).float()
    p = torch.sigmoid(heat_logits)
    pos = F.logsigmoid(heat_logits) * (1 - p) ** 2 * positive
    neg = F.logsigmoid(-heat_logits) * p ** 2 * (1 - gt) ** 4 * (1 - positive)
    count = mask.sum().clamp(min=1)
    focal = -(pos.sum() + neg.sum()) / count
    log_ratio = torch.log(size.clamp(min=1e-3)) - torch.log(batch["size"].clamp(min=1e-3))
    size_l1 = (torch.abs(log_ratio) * mask).sum() / count
    offset_l1 = (torch.abs(offset - batch["offset"]) * mask).sum() / count
    return focal + size_l1 + offset_l1


@torch.no_grad()
def predict_boxes(model: torch.nn.Module, loader, device: torch.device, progress: bool = False) -> list[dict]:
    """COCO detection results in frame pixels for a validation loader."""
    model.eval()
    results = []
    for batch in tqdm(loader, desc="detect", disable=not progress, leave=False):
        heat, size, offset = model(batch["input"].to(device))
        people = decode_centernet(torch.sigmoid(heat).float().cpu().numpy(), size.float().cpu().numpy(),
                                  offset.float().cpu().numpy(), score_thresh=0.01)
        for boxes, image_id, ratio in zip(people, batch["image_id"].tolist(), batch["ratio"].tolist()):
            xyxy = boxes[:, :4] / ratio
            for (x1, y1, x2, y2), score in zip(xyxy.tolist(), boxes[:, 4].tolist()):
                results.append({"image_id": image_id, "category_id": 1, "score": round(score, 5),
                                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]})
    return results


@dataclass
class DetectionData:
    train: DetectionDataset
    val: DetectionDataset
    val_annotations: dict


class DetectorTrainer(Trainer):
    """The Trainer with the detector's data, network, loss and box-AP validation."""

    def build_data(self) -> DetectionData:
        cfg, d = self.cfg, self.cfg.DATASET
        if d.NAME not in ("coco", "synthetic"):
            raise UserError(f"MODEL.KIND centernet trains on COCO-format files (DATASET.NAME coco or "
                            f"synthetic), not {d.NAME}")
        size = tuple(cfg.MODEL.IMAGE_SIZE or (384, 224))
        if size[0] % 32 or size[1] % 32:
            raise UserError(f"MODEL.IMAGE_SIZE for the detector must be multiples of 32, got {list(size)}")
        splits = {}
        for split in ("TRAIN", "VAL"):
            ann = resolve(d.ROOT, getattr(d, f"{split}_ANNOTATIONS"))
            if not ann.exists():
                raise UserError(f"DATASET.{split}_ANNOTATIONS not found: {ann}")
            folder = getattr(d, f"{split}_IMAGES")
            splits[split] = load_person_boxes(ann, resolve(d.ROOT, folder) if folder else None)
        train = DetectionDataset(splits["TRAIN"], size, True, d.SCALE_FACTOR, d.FLIP, cfg.SEED)
        val = DetectionDataset(splits["VAL"], size, False)
        return DetectionData(train, val, splits["VAL"].ground_truth)

    def build_model(self) -> torch.nn.Module:
        model = CenterNetNet(tuple(self.cfg.MODEL.WIDTHS or NARROW))  # the heatmap bias starts at a 0.1 prior
        if self.cfg.MODEL.PRETRAINED:
            from engines.models.weights import load_state_dict_file, load_weights

            state = load_state_dict_file(self.cfg.MODEL.PRETRAINED)
            if widths_of(state) != model.widths:
                state = widened(state, model)
            load_weights(model, state)
        return model

    def build_criterion(self):
        return centernet_loss

    def batch_loss(self, batch, autocast) -> torch.Tensor:
        batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with autocast:
            outputs = self.model(batch["input"].contiguous(memory_format=self.memory_format))
        return self.criterion(outputs, batch)

    def validate(self, results_path: Path | None = None) -> dict:
        results = predict_boxes(unwrap(self.model), self.val_loader, self.device, self.progress)
        if results_path is not None:
            from engines.common.files import write_json_atomic

            write_json_atomic(results_path, results)
        stats = coco_ap(self.data.val_annotations, results, "bbox")
        return {"val_loss": "", "AP": stats[0], "AP .5": stats[1], "AR": stats[8]}
