"""Named architecture presets: network (HRNet with its official `MODEL.EXTRA` config, or
Lite-HRNet-18/30), input size, heatmap size, keypoint schema and the training target's Gaussian
sigma. `build_network(preset)` returns the network with random weights; the model catalogue
(engines.models.catalogue) pairs presets with weights.

Cost per crop (MACs of the convolutions, counted by `engines.tools.bench.count_macs`; Lite-HRNet's
as executed once per module) and speed on this project's 2-core CPU (random weights, batch 8,
medians of `python -m engines bench`, 2026-11-30, reference workload 2.0 ms; the README has more):

| preset              | input (w x h) | GMAC | params | onnxruntime ms/crop | torch ms/crop |
| ------------------- | ------------- | ---- | ------ | ------------------- | ------------- |
| w32_256x192         | 192 x 256     | 7.65 | 28.5 M | 34.4                | 60.6          |
| w48_384x288         | 288 x 384     | 35.3 | 63.6 M | (not measured)      |               |
| litehrnet30_256x192 | 192 x 256     | 0.31 | 1.76 M | 13.2                | 30.6          |
| litehrnet18_256x192 | 192 x 256     | 0.20 | 1.13 M | 7.9                 | 20.6          |
| lite_w16_160x128    | 128 x 160     | 0.19 | 1.25 M | 1.0                 | 2.1           |

Lite-HRNet's depthwise convolutions, shuffles and gates are memory-bound: it does 25x fewer MACs
than W32 but runs only 2.6x faster. lite_w16 (`lite_extra` below, this project's design) keeps
five people at 25 FPS to a fifth of this CPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from engines.errors import UserError

__all__ = ["Preset", "PRESETS", "get_preset", "resized_preset", "official_extra", "lite_extra", "build_network", "NETWORKS"]

NETWORKS = ("hrnet", "litehrnet")


def stage(num_modules: int, widths: list[int], blocks: int, block: str = "BASIC") -> dict:
    return {"NUM_MODULES": num_modules, "NUM_BRANCHES": len(widths), "BLOCK": block,
            "NUM_BLOCKS": [blocks] * len(widths), "NUM_CHANNELS": list(widths), "FUSE_METHOD": "SUM"}


def official_extra(width: int) -> dict:
    """`MODEL.EXTRA` of the official pose_hrnet W`width` configs (w32_*.yaml, w48_*.yaml)."""
    w = width
    return {
        "PRETRAINED_LAYERS": ["conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                              "transition2", "stage3", "transition3", "stage4"],
        "FINAL_CONV_KERNEL": 1,
        "STAGE2": stage(1, [w, 2 * w], 4),
        "STAGE3": stage(4, [w, 2 * w, 4 * w], 4),
        "STAGE4": stage(3, [w, 2 * w, 4 * w, 8 * w], 4),
    }


@dataclass(frozen=True)
class Preset:
    """Everything needed to build, feed and train one pose network. Sizes are (width, height).
    `extra` is the official `MODEL.EXTRA` of an HRNet, or {"VARIANT": "18"|"30"} of a Lite-HRNet."""

    name: str
    extra: dict
    image_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    num_joints: int = 17
    sigma: float = 2.0
    schema: str = "coco17"
    description: str = field(default="", compare=False)
    network: str = "hrnet"

    def __post_init__(self):
        if self.network not in NETWORKS:
            raise UserError(f"preset {self.name}: unknown network {self.network!r}; one of {', '.join(NETWORKS)}")
        w, h = self.image_size
        if w % 32 or h % 32:
            # four stride-2 levels below the /4 stem; nearest upsampling must land on equal sizes
            raise UserError(f"preset {self.name}: image size {w}x{h} must be multiples of 32")
        if (w // 4, h // 4) != tuple(self.heatmap_size):
            raise UserError(f"preset {self.name}: heatmap size must be image size / 4")


# Real-time design. The stem and stage 1 hold most of the cost of small HRNets at low resolution
# (official: 64-ch stem + four 256-ch Bottlenecks), so they shrink to a 32-ch stem and one
# Bottleneck (32 -> 128 ch); the branches are W16 (16/32/64/128) with 2 BasicBlocks each and one
# module per stage, keeping the repeated multi-scale fusion that makes HRNet accurate. lite_w24 and
# lite_w32 are the same layout with wider branches (the trainer grows lite_w16 weights into them).
def lite_extra(width: int) -> dict:
    w = width
    return {
        "STEM_CHANNELS": 32,
        "STAGE1": {"BLOCK": "BOTTLENECK", "NUM_BLOCKS": [1], "NUM_CHANNELS": [32]},
        "FINAL_CONV_KERNEL": 1,
        "STAGE2": stage(1, [w, 2 * w], 2),
        "STAGE3": stage(1, [w, 2 * w, 4 * w], 2),
        "STAGE4": stage(1, [w, 2 * w, 4 * w, 8 * w], 2),
    }

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("w32_256x192", official_extra(32), (192, 256), (48, 64), sigma=2.0,
           description="official HRNet-W32 COCO 256x192 (AP 74.4 with flip test)"),
    Preset("w48_384x288", official_extra(48), (288, 384), (72, 96), sigma=3.0,
           description="official HRNet-W48 COCO 384x288 (AP 76.3 with flip test)"),
    Preset("lite_w16_160x128", lite_extra(16), (128, 160), (32, 40), sigma=2.0,
           description="real-time HRNet-W16 lite, 160x128 input (this project's design)"),
    Preset("lite_w24_160x128", lite_extra(24), (128, 160), (32, 40), sigma=2.0,
           description="lite_w16's layout with W24 branches, 160x128 input"),
    Preset("lite_w32_160x128", lite_extra(32), (128, 160), (32, 40), sigma=2.0,
           description="lite_w16's layout with W32 branches, 160x128 input"),
    Preset("litehrnet18_256x192", {"VARIANT": "18"}, (192, 256), (48, 64), sigma=2.0, network="litehrnet",
           description="Lite-HRNet-18 COCO 256x192 (mmpose AP 64.2)"),
    Preset("litehrnet18_384x288", {"VARIANT": "18"}, (288, 384), (72, 96), sigma=3.0, network="litehrnet",
           description="Lite-HRNet-18 COCO 384x288 (mmpose AP 67.6)"),
    Preset("litehrnet30_256x192", {"VARIANT": "30"}, (192, 256), (48, 64), sigma=2.0, network="litehrnet",
           description="Lite-HRNet-30 COCO 256x192 (mmpose AP 67.6)"),
    Preset("litehrnet30_384x288", {"VARIANT": "30"}, (288, 384), (72, 96), sigma=3.0, network="litehrnet",
           description="Lite-HRNet-30 COCO 384x288 (mmpose AP 70.0)"),
)}


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a known one at another input size: `lite_w16_256x192` is
    lite_w16_160x128's network at 256x192 (height x width, multiples of 32), what `python -m
    trainer` trains with a MODEL.IMAGE_SIZE override. UserError listing the known names otherwise."""
    if name in PRESETS:
        return PRESETS[name]
    resized = re.fullmatch(r"(.+)_(\d+)x(\d+)", name)
    family = resized and next((p for p in PRESETS.values() if p.name.rsplit("_", 1)[0] == resized[1]), None)
    if family is None:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)} "
                        "(or one of their networks at another HEIGHTxWIDTH)")
    return resized_preset(family, (int(resized[3]), int(resized[2])))


def resized_preset(base: Preset, image_size_wh) -> Preset:
    """`base`'s network and training target at another input size, named after it."""
    w, h = image_size_wh
    family = base.name.rsplit("_", 1)[0]
    return replace(base, name=f"{family}_{h}x{w}", image_size=(w, h), heatmap_size=(w // 4, h // 4),
                   description=f"{base.description}, at {h}x{w}")


def build_network(preset: str | Preset):
    """The network of a preset name or Preset, with random initial weights."""
    p = preset if isinstance(preset, Preset) else get_preset(preset)
    if p.network == "litehrnet":
        from engines.models.litehrnet import build_litehrnet

        return build_litehrnet(p.extra["VARIANT"], p.num_joints)
    from engines.models.hrnet import build_hrnet

    return build_hrnet(p.extra, p.num_joints)
