"""HRNet for top-down pose estimation (Sun et al., CVPR 2019), built from the official config form.

`build_hrnet(extra, num_joints)` takes the official `MODEL.EXTRA` mapping and returns a network
whose `state_dict()` keys and shapes equal those of the official `PoseHighResolutionNet`, so the
released checkpoints load strictly:

    conv1/bn1/conv2/bn2            stem, two stride-2 3x3 convolutions (input / 4)
    layer1                         stage 1, Bottleneck blocks on one branch
    transitionK                    new lower-resolution branches between stages
    stage2/3/4                     HighResolutionModules: parallel branches + exchange ("fuse")
    final_layer                    1x1 (or 3x3) convolution to one heatmap per joint

Two optional keys beyond the official ones let small real-time models share the same code;
they default to the official values, which keeps official configs giving official keys:

    STEM_CHANNELS   width of conv1/conv2 (official: 64)
    STAGE1          {BLOCK, NUM_BLOCKS: [n], NUM_CHANNELS: [c]} (official: BOTTLENECK, [4], [64],
                    the form of the official classification/segmentation configs)
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from engines.errors import UserError

__all__ = ["BasicBlock", "Bottleneck", "HighResolutionModule", "PoseHighResolutionNet",
           "build_hrnet"]

BN_MOMENTUM = 0.1
DEFAULT_STEM_CHANNELS = 64
DEFAULT_STAGE1 = {"BLOCK": "BOTTLENECK", "NUM_BLOCKS": [4], "NUM_CHANNELS": [64]}
STAGE_KEYS = ("NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS", "FUSE_METHOD")


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int) -> list[nn.Module]:
    """Convolution without bias followed by BatchNorm: the (0, 1) pair inside official Sequentials."""
    return [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM)]


def projection(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    """The residual shortcut's 1x1 projection, or None when the identity fits."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(*conv_bn(in_ch, out_ch, 1, stride))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a residual connection."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def residual_stack(block: type, in_ch: int, planes: int, num_blocks: int) -> nn.Sequential:
    """`num_blocks` residual blocks; only the first may project its input to planes * expansion."""
    out_ch = planes * block.expansion
    layers = [block(in_ch, planes, 1, projection(in_ch, out_ch, 1))]
    layers += [block(out_ch, planes) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


def fuse_path(in_ch: int, out_ch: int, levels: int) -> nn.Sequential:
    """Path from branch j to branch i for levels = i - j > 0 (higher to lower resolution):
    levels stride-2 3x3 convs; the intermediate ones keep in_ch and end with ReLU, the last
    one maps to out_ch without ReLU (the sum is rectified afterwards)."""
    steps = []
    for k in range(levels):
        if k == levels - 1:
            steps.append(nn.Sequential(*conv_bn(in_ch, out_ch, 3, 2)))
        else:
            steps.append(nn.Sequential(*conv_bn(in_ch, in_ch, 3, 2), nn.ReLU(inplace=True)))
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """Parallel multi-resolution branches followed by exchange units that sum every branch
    (resampled) into each output resolution. With multi_scale_output False only output 0
    (the highest resolution) is computed, as in the official network's last module."""

    def __init__(self, block: type, num_blocks: list[int], in_channels: list[int],
                 num_channels: list[int], multi_scale_output: bool = True):
        super().__init__()
        self.num_branches = len(num_channels)
        self.branches = nn.ModuleList(
            residual_stack(block, in_channels[i], num_channels[i], num_blocks[i])
            for i in range(self.num_branches))
        self.out_channels = [c * block.expansion for c in num_channels]
        self.fuse_layers = self._make_fuse_layers(multi_scale_output) if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def _make_fuse_layers(self, multi_scale_output: bool) -> nn.ModuleList:
        ch = self.out_channels
        outputs = self.num_branches if multi_scale_output else 1
        fuse = nn.ModuleList()
        for i in range(outputs):
            row = nn.ModuleList()
            for j in range(self.num_branches):
                if j > i:  # lower resolution: 1x1 conv to ch[i], then nearest upsampling
                    row.append(nn.Sequential(*conv_bn(ch[j], ch[i], 1, 1),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:
                    row.append(fuse_path(ch[j], ch[i], i - j))
            fuse.append(row)
        return fuse

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for i, row in enumerate(self.fuse_layers):
            total = xs[i]
            for j, path in enumerate(row):
                if j != i:
                    total = total + path(xs[j])
            fused.append(self.relu(total))
        return fused


def transition(prev_channels: list[int], channels: list[int]) -> nn.ModuleList:
    """Between stages: adapt existing branches whose width changes (3x3 conv) and create each new
    branch from the lowest-resolution one with stride-2 3x3 convs (official layout, including
    None entries for branches passed through unchanged)."""
    layers = nn.ModuleList()
    for i, out_ch in enumerate(channels):
        if i < len(prev_channels):
            if out_ch == prev_channels[i]:
                layers.append(None)
            else:
                layers.append(nn.Sequential(*conv_bn(prev_channels[i], out_ch, 3, 1),
                                            nn.ReLU(inplace=True)))
            continue
        steps = []
        extra_levels = i + 1 - len(prev_channels)
        for k in range(extra_levels):
            in_ch = prev_channels[-1]
            step_out = out_ch if k == extra_levels - 1 else in_ch
            steps.append(nn.Sequential(*conv_bn(in_ch, step_out, 3, 2), nn.ReLU(inplace=True)))
        layers.append(nn.Sequential(*steps))
    return layers


class PoseHighResolutionNet(nn.Module):
    """Image (N,3,H,W) -> heatmaps (N,J,H/4,W/4). Attribute names are the official ones."""

    def __init__(self, extra: Mapping, num_joints: int):
        super().__init__()
        extra = validate_extra(extra)
        stem = extra.get("STEM_CHANNELS", DEFAULT_STEM_CHANNELS)
        stage1 = extra.get("STAGE1", DEFAULT_STAGE1)
        self.conv1 = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(stem, stem, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        block1 = BLOCKS[stage1["BLOCK"]]
        self.layer1 = residual_stack(block1, stem, stage1["NUM_CHANNELS"][0], stage1["NUM_BLOCKS"][0])
        channels = [stage1["NUM_CHANNELS"][0] * block1.expansion]

        for n in (2, 3, 4):
            cfg = extra[f"STAGE{n}"]
            block = BLOCKS[cfg["BLOCK"]]
            stage_channels = [c * block.expansion for c in cfg["NUM_CHANNELS"]]
            setattr(self, f"transition{n - 1}", transition(channels, stage_channels))
            stage, channels = self._make_stage(cfg, stage_channels, multi_scale_output=n < 4)
            setattr(self, f"stage{n}", stage)

        kernel = extra["FINAL_CONV_KERNEL"]
        self.final_layer = nn.Conv2d(channels[0], num_joints, kernel, 1, 1 if kernel == 3 else 0)

    @staticmethod
    def _make_stage(cfg: Mapping, in_channels: list[int], multi_scale_output: bool):
        modules = []
        for m in range(cfg["NUM_MODULES"]):
            last = m == cfg["NUM_MODULES"] - 1
            module = HighResolutionModule(BLOCKS[cfg["BLOCK"]], list(cfg["NUM_BLOCKS"]), in_channels,
                                          list(cfg["NUM_CHANNELS"]), multi_scale_output or not last)
            in_channels = module.out_channels
            modules.append(module)
        return nn.Sequential(*modules), in_channels

    @staticmethod
    def _enter_stage(transition_layers: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(transition_layers):
            # existing branch i adapts itself; a new branch grows from the lowest resolution.
            # (The official code feeds xs[-1] to every non-None transition, the same thing for
            # every config whose existing branches keep their width, i.e. all released ones.)
            source = xs[i] if i < len(xs) else xs[-1]
            out.append(source if layer is None else layer(source))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        xs = self.stage2(self._enter_stage(self.transition1, xs))
        xs = self.stage3(self._enter_stage(self.transition2, xs))
        xs = self.stage4(self._enter_stage(self.transition3, xs))
        return self.final_layer(xs[0])


def validate_extra(extra: Mapping) -> dict:
    """Check the config's structure; raise UserError naming the first problem found."""
    extra = dict(extra)
    stage1 = dict(DEFAULT_STAGE1, **extra.get("STAGE1", {}))
    stages = {"STAGE1": stage1}
    for n in (2, 3, 4):
        name = f"STAGE{n}"
        if name not in extra:
            raise UserError(f"HRNet config lacks {name}")
        missing = [k for k in STAGE_KEYS if k not in extra[name]]
        if missing:
            raise UserError(f"HRNet config {name} lacks {', '.join(missing)}")
        cfg = extra[name]
        if cfg["NUM_MODULES"] < 1:
            raise UserError(f"HRNet config {name}.NUM_MODULES must be >= 1")
        if cfg["FUSE_METHOD"] != "SUM":
            raise UserError(f"HRNet config {name}.FUSE_METHOD {cfg['FUSE_METHOD']!r}: only SUM exists")
        stages[name] = cfg
    for name, cfg in stages.items():
        if cfg["BLOCK"] not in BLOCKS:
            raise UserError(f"HRNet config {name}.BLOCK {cfg['BLOCK']!r}: use BASIC or BOTTLENECK")
        branches = cfg.get("NUM_BRANCHES", 1)
        if not len(cfg["NUM_BLOCKS"]) == len(cfg["NUM_CHANNELS"]) == branches:
            raise UserError(f"HRNet config {name}: NUM_BRANCHES {branches} but NUM_BLOCKS "
                            f"{list(cfg['NUM_BLOCKS'])} and NUM_CHANNELS {list(cfg['NUM_CHANNELS'])}")
    if extra.get("FINAL_CONV_KERNEL") not in (1, 3):
        raise UserError("HRNet config FINAL_CONV_KERNEL must be 1 or 3")
    extra["STAGE1"] = stage1
    return extra


def build_hrnet(extra: Mapping, num_joints: int) -> PoseHighResolutionNet:
    """The network for an official-form `MODEL.EXTRA` mapping and `num_joints` heatmaps."""
    return PoseHighResolutionNet(extra, num_joints)
