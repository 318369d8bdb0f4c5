"""The model catalogue: one entry per model, holding everything a user or a backend needs.

In the spirit of timm's `pretrained_cfg`: a pose entry names its architecture preset (network,
input and heatmap size, keypoint schema), its input normalisation, where its weights come from
(a file bundled in engines/assets, or a URL with its hash, fetched into the cache on first use),
its licence and the accuracy its publisher reports. A detector entry does the same for a person
detector. `python -m engines fetch --list` prints the catalogue with what is cached.

Which model runs when: real footage defaults to real-world models (tracker/app.py picks them per
device); the bundled ones were trained here on synthetic people and serve the offline demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from engines.errors import UserError
from engines.models.presets import Preset, get_preset

__all__ = ["Weights", "PoseModel", "DetectorModel", "CATALOGUE", "get_model", "names", "IMAGENET_MEAN",
           "IMAGENET_STD"]

# the input normalisation of every pose model here (RGB, on the 0..1 scale)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Weights:
    """Where a model's weights come from: a bundled file, or a URL checked by its SHA-256 (the
    full hash, or the leading hex digits a model zoo puts in its file names). None of both: the
    model has no weights file (OpenCV's HOG)."""

    bundled: str | None = None
    url: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None

    @property
    def filename(self) -> str:
        """The file's name in engines/assets or in the cache."""
        return self.bundled or PurePosixPath(self.url or "").name

    @property
    def fetched(self) -> bool:
        return self.url is not None


@dataclass(frozen=True)
class PoseModel:
    name: str
    preset: str                       # engines.models.presets name: network, sizes, schema
    weights: Weights
    licence: str
    accuracy: str                     # what its publisher reports, with the data set
    # the heatmap decode's rule of the family's publisher (engines.pose.codec): "mmpose" for
    # mmpose's model zoo, "hrnet" for the official HRNet code and this project's trainer
    decode_rule: str = "hrnet"
    mean: tuple[float, float, float] = IMAGENET_MEAN   # input normalisation, RGB, 0..1 scale
    std: tuple[float, float, float] = IMAGENET_STD
    task: str = "pose"

    @property
    def architecture(self) -> Preset:
        return get_preset(self.preset)

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the network input."""
        return self.architecture.image_size

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.architecture.heatmap_size

    @property
    def schema(self) -> str:
        return self.architecture.schema


@dataclass(frozen=True)
class DetectorModel:
    name: str
    kind: str                         # "centernet", "hog", "yolox" or "yolo" (engines.detectors)
    input_size: tuple[int, int] | None
    weights: Weights
    licence: str
    accuracy: str
    task: str = "detector"
    # the tracker's score thresholds (TrackerConfig names) suited to this detector's scores, from
    # `python -m engines calibrate`; None: the tracker's defaults
    low_score: float | None = None
    high_score: float | None = None
    new_track_score: float | None = None

    @property
    def tracker_thresholds(self) -> dict[str, float]:
        """The calibrated thresholds this entry sets, by TrackerConfig name."""
        named = {"low_score": self.low_score, "high_score": self.high_score,
                 "new_track_score": self.new_track_score}
        return {name: value for name, value in named.items() if value is not None}


_MMPOSE = "https://download.openmmlab.com/mmpose/top_down/"
_YOLOX = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/"
_BUNDLED_NOTE = "trained here on synthetic people only"

CATALOGUE: dict[str, PoseModel | DetectorModel] = {m.name: m for m in (
    # pose, real-world (COCO val2017 AP with flip test and detected people, as published)
    PoseModel("hrnet-w32-coco", "w32_256x192",
              Weights(url=_MMPOSE + "hrnet/hrnet_w32_coco_256x192-c78dce93_20200708.pth", sha256_prefix="c78dce93"),
              "Apache-2.0 (mmpose)", "COCO AP 74.6 (mmpose)", decode_rule="mmpose"),
    PoseModel("hrnet-w48-coco", "w48_384x288",
              Weights(url=_MMPOSE + "hrnet/hrnet_w48_coco_384x288-314c8528_20200708.pth", sha256_prefix="314c8528"),
              "Apache-2.0 (mmpose)", "COCO AP 78.1 (mmpose)", decode_rule="mmpose"),
    PoseModel("litehrnet18-coco", "litehrnet18_256x192",
              Weights(url=_MMPOSE + "litehrnet/litehrnet18_coco_256x192-6bace359_20211230.pth",
                      sha256_prefix="6bace359"),
              "Apache-2.0 (mmpose)", "COCO AP 64.2 (mmpose)", decode_rule="mmpose"),
    PoseModel("litehrnet30-coco", "litehrnet30_256x192",
              Weights(url=_MMPOSE + "litehrnet/litehrnet30_coco_256x192-4176555b_20210626.pth",
                      sha256_prefix="4176555b"),
              "Apache-2.0 (mmpose)", "COCO AP 67.6 (mmpose)", decode_rule="mmpose"),
    PoseModel("litehrnet18-coco-384x288", "litehrnet18_384x288",
              Weights(url=_MMPOSE + "litehrnet/litehrnet18_coco_384x288-8d4dac48_20211230.pth",
                      sha256_prefix="8d4dac48"),
              "Apache-2.0 (mmpose)", "COCO AP 67.6 (mmpose)", decode_rule="mmpose"),
    PoseModel("litehrnet30-coco-384x288", "litehrnet30_384x288",
              Weights(url=_MMPOSE + "litehrnet/litehrnet30_coco_384x288-a3aef5c4_20210626.pth",
                      sha256_prefix="a3aef5c4"),
              "Apache-2.0 (mmpose)", "COCO AP 70.0 (mmpose)", decode_rule="mmpose"),
    # pose, bundled
    PoseModel("lite_w32_160x128", "lite_w32_160x128", Weights(bundled="lite_w32_160x128.pth"),
              "MIT (this project)", f"synthetic OKS AP 67.4; {_BUNDLED_NOTE}"),
    PoseModel("lite_w16_160x128", "lite_w16_160x128", Weights(bundled="lite_w16_160x128.pth"),
              "MIT (this project)", f"synthetic OKS AP 61.1, 2.5x faster than lite_w32; {_BUNDLED_NOTE}"),
    # person detectors (YOLOX: COCO val2017 box AP over 80 classes, as published; the release
    # publishes no checksums: these SHA-256 are of the 0.1.1rc0 files as pinned downstream)
    # thresholds by the share rule on the 26 real people of ../shared/data (COCO and PoseTrack18
    # samples; README "Models"): `python -m engines calibrate --rule share --det yolox:NANO.onnx
    # --data coco_sample/test_coco.json --data posetrack18_sample/annotations/test_posetrack18_val.json
    # --images coco_sample --images posetrack18_sample`, on an export of the same weights
    DetectorModel("yolox-nano", "yolox", (416, 416),
                  Weights(url=_YOLOX + "yolox_nano.onnx",
                          sha256="c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d"),
                  "Apache-2.0 (Megvii)", "COCO box AP 25.8",
                  low_score=0.192, high_score=0.276, new_track_score=0.412),
    DetectorModel("yolox-tiny", "yolox", (416, 416),
                  Weights(url=_YOLOX + "yolox_tiny.onnx",
                          sha256="427cc366d34e27ff7a03e2899b5e3671425c262ea2291f88bb942bc1cc70b0f7"),
                  "Apache-2.0 (Megvii)", "COCO box AP 32.8"),
    DetectorModel("yolox-s", "yolox", (640, 640),
                  Weights(url=_YOLOX + "yolox_s.onnx",
                          sha256="c5c2d13e59ae883e6af3b45daea64af4833a4951c92d116ec270d9ddbe998063"),
                  "Apache-2.0 (Megvii)", "COCO box AP 40.5"),
    # run (and last fine-tuned) at 512x288, where the 80-160 px people of synthetic videos are found
    # more often (model card). Its scores run low (true detections' median 0.47): tracker thresholds from
    # `python -m engines calibrate --det centernet --data data/synth/val/annotations.json` (300
    # held-out frames, seed 2)
    DetectorModel("centernet", "centernet", (512, 288), Weights(bundled="centernet_512x288.pth"),
                  "MIT (this project)", f"synthetic box AP50 70.5; {_BUNDLED_NOTE}",
                  low_score=0.243, high_score=0.302, new_track_score=0.338),
    DetectorModel("hog", "hog", None, Weights(), "BSD-3-Clause (OpenCV)",
                  "Dalal-Triggs pedestrians; weak on real footage"),
)}


def names(task: str) -> list[str]:
    """Catalogue names of one task ("pose" or "detector"), in catalogue order."""
    return [name for name, model in CATALOGUE.items() if model.task == task]


def get_model(name: str, task: str | None = None) -> PoseModel | DetectorModel:
    """The entry called `name` (of `task` when given); UserError listing the names otherwise."""
    model = CATALOGUE.get(name)
    if model is None or (task is not None and model.task != task):
        if model is not None:
            raise UserError(f"{name} is a {model.task} model, not a {task} model")
        known = ", ".join(names(task) if task else CATALOGUE)
        raise UserError(f"unknown model {name!r}; known: {known}")
    return model
