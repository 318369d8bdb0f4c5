"""Lite-HRNet-18/-30 for top-down pose estimation (Yu et al., CVPR 2021), equal to the official code.

`build_litehrnet(variant)` returns a network whose `state_dict()` keys and shapes equal the
released mmpose 0.x checkpoints (`backbone.*` with mmcv ConvModule names `conv`/`bn`, head
`keypoint_head.final_layer.*`), so those files load as they are (engines.models.weights also
takes mmpose 1.x's `head.final_layer.*`):

    backbone.stem              3x3/2 conv, then a ShuffleNet-like stride-2 block (input / 4)
    backbone.transitionS       adapt / create branches before stage S
    backbone.stageS            LiteHRModules: conditional channel weighting blocks + fuse layers
    backbone.head_layer        IterativeHead: low to high resolution, sum and depthwise-separable conv
    keypoint_head.final_layer  1x1 conv to one heatmap per joint

Image (N,3,H,W), H and W multiples of 32, normalised with ImageNet mean/std in RGB order ->
heatmaps (N,J,H/4,W/4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.errors import UserError

__all__ = ["LiteHRNetConfig", "VARIANTS", "LiteHRNet", "LiteHRNetPose", "build_litehrnet"]


@dataclass(frozen=True)
class LiteHRNetConfig:
    """The official `extra` of the COCO configs; the variants differ only in modules per stage."""
    num_modules: tuple[int, ...]
    num_channels: tuple[tuple[int, ...], ...] = ((40, 80), (40, 80, 160), (40, 80, 160, 320))
    num_blocks: int = 2       # conditional channel weighting blocks per module
    reduce_ratio: int = 8     # cross-resolution weighting bottleneck
    stem_channels: int = 32   # stem width in and out (official expand_ratio 1)


VARIANTS = {"18": LiteHRNetConfig(num_modules=(2, 4, 2)),
            "30": LiteHRNetConfig(num_modules=(3, 8, 3))}


class ConvModule(nn.Module):
    """mmcv's ConvModule as Lite-HRNet uses it: conv (bias only without BN) -> BN -> activation,
    with the parameter names `conv` and `bn` that the checkpoints carry."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                 norm: bool = True, act: nn.Module | None = None):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=not norm)
        self.bn = nn.BatchNorm2d(out_ch) if norm else None
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return x if self.act is None else self.act(x)


def depthwise(ch: int, stride: int) -> ConvModule:
    """3x3 depthwise conv + BN, no activation."""
    return ConvModule(ch, ch, 3, stride, groups=ch)


def dw_pw_step(in_ch: int, out_ch: int, stride: int, relu: bool) -> nn.Sequential:
    """Plain Sequential (numeric keys 0..3): depthwise 3x3 + BN + 1x1 + BN (+ ReLU); the form of
    the transitions and of the fuse layers' downsampling steps."""
    layers = [nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False), nn.BatchNorm2d(in_ch),
              nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


def concat_shuffled(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Channel shuffle (2 groups) of cat([a, b]): channels interleaved a0 b0 a1 b1 ... Stacking
    does it in one copy; ONNX Runtime ran the reshape-transpose-reshape form ~2x slower."""
    n, c, h, w = a.shape
    return torch.stack([a, b], dim=2).reshape(n, 2 * c, h, w)


def average_pool_to(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """adaptive_avg_pool2d(x, size) where size divides x's: a reshape and a mean, which ONNX
    Runtime runs several times faster than the AveragePool it exports otherwise."""
    (h, w), (sh, sw) = x.shape[-2:], size
    if h % sh or w % sw:
        return F.adaptive_avg_pool2d(x, size)
    n, c = x.shape[:2]
    return x.reshape(n, c, sh, h // sh, sw, w // sw).mean(dim=(3, 5))


class Stem(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv1 = ConvModule(3, channels, 3, stride=2, act=nn.ReLU())
        self.branch1 = nn.Sequential(depthwise(half, 2), ConvModule(half, half, 1, act=nn.ReLU()))
        self.expand_conv = ConvModule(half, channels, 1, act=nn.ReLU())
        self.depthwise_conv = depthwise(channels, 2)
        self.linear_conv = ConvModule(channels, half, 1, act=nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.conv1(x).chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return concat_shuffled(self.branch1(x1), x2)


class CrossResolutionWeighting(nn.Module):
    """Channel gates computed from all branches pooled to the smallest one's size."""

    def __init__(self, channels: list[int], ratio: int):
        super().__init__()
        self.channels = channels
        total = sum(channels)
        self.conv1 = ConvModule(total, int(total / ratio), 1, act=nn.ReLU())
        self.conv2 = ConvModule(int(total / ratio), total, 1, act=nn.Sigmoid())

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        smallest = xs[-1].shape[-2:]
        pooled = torch.cat([average_pool_to(x, smallest) for x in xs[:-1]] + [xs[-1]], dim=1)
        gates = self.conv2(self.conv1(pooled)).split(self.channels, dim=1)
        # the smallest branch's gates already have its size (no resampling op for it)
        return [x * (g if g.shape[-2:] == x.shape[-2:] else F.interpolate(g, size=x.shape[-2:], mode="nearest"))
                for x, g in zip(xs, gates)]


class SpatialWeighting(nn.Module):
    """Squeeze-and-excitation gate (ratio 4, convs with bias, no BN)."""

    def __init__(self, channels: int, ratio: int = 4):
        super().__init__()
        self.conv1 = ConvModule(channels, int(channels / ratio), 1, norm=False, act=nn.ReLU())
        self.conv2 = ConvModule(int(channels / ratio), channels, 1, norm=False, act=nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv2(self.conv1(x.mean(dim=(2, 3), keepdim=True)))


class ConditionalChannelWeighting(nn.Module):
    """Half of each branch's channels pass through; the other half is gated across resolutions,
    filtered depthwise and gated spatially; then both halves are concatenated and shuffled."""

    def __init__(self, channels: list[int], reduce_ratio: int):
        super().__init__()
        halves = [c // 2 for c in channels]
        self.cross_resolution_weighting = CrossResolutionWeighting(halves, reduce_ratio)
        self.depthwise_convs = nn.ModuleList(depthwise(c, 1) for c in halves)
        self.spatial_weighting = nn.ModuleList(SpatialWeighting(c) for c in halves)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        kept, gated = zip(*(x.chunk(2, dim=1) for x in xs))
        gated = self.cross_resolution_weighting(list(gated))
        gated = [sw(dw(x)) for x, dw, sw in zip(gated, self.depthwise_convs, self.spatial_weighting)]
        return [concat_shuffled(a, b) for a, b in zip(kept, gated)]


def fuse_path(channels: list[int], i: int, j: int) -> nn.Sequential:
    """Branch j resampled to branch i: 1x1 + BN + nearest upsampling from lower resolutions,
    stride-2 steps from higher ones (intermediate steps keep the width and end with ReLU)."""
    if j > i:
        return nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False),
                             nn.BatchNorm2d(channels[i]),
                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"))
    steps = i - j
    return nn.Sequential(*(dw_pw_step(channels[j], channels[i] if k == steps - 1 else channels[j], 2,
                                      relu=k < steps - 1) for k in range(steps)))


class LiteHRModule(nn.Module):
    def __init__(self, channels: list[int], num_blocks: int, reduce_ratio: int):
        super().__init__()
        self.layers = nn.Sequential(*(ConditionalChannelWeighting(channels, reduce_ratio)
                                      for _ in range(num_blocks)))
        n = len(channels)
        # None on the diagonal keeps the official indices (fuse_layers.i.j)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(None if i == j else fuse_path(channels, i, j) for j in range(n))
            for i in range(n))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.layers(xs)
        f = self.fuse_layers
        # The official loop starts output 0 with `y = out[0]` and adds in place, so out[0] becomes
        # the pre-ReLU sum s0 (out[0] counted twice), and every later output starts with
        # f_i0(out[0]) and adds f_i0(out[0]) again, both on s0. The released weights were trained
        # with this; the closed form below reproduces it without in-place ops.
        s0 = out[0] + out[0]
        for j in range(1, len(out)):
            s0 = s0 + f[0][j](out[j])
        fused = [F.relu(s0)]
        for i in range(1, len(out)):
            a = f[i][0](s0)
            y = a + a
            for j in range(1, len(out)):
                y = y + (out[j] if j == i else f[i][j](out[j]))
            fused.append(F.relu(y))
        return fused


def transition(prev: list[int], channels: list[int]) -> nn.ModuleList:
    """Existing branches that change width get a stride-1 step; a new branch grows from the
    lowest-resolution one with stride-2 steps; None where a branch passes through."""
    layers = nn.ModuleList()
    for i, out_ch in enumerate(channels):
        if i < len(prev):
            layers.append(None if out_ch == prev[i] else dw_pw_step(prev[i], out_ch, 1, relu=True))
        else:
            steps = i + 1 - len(prev)
            layers.append(nn.Sequential(*(dw_pw_step(prev[-1], out_ch if k == steps - 1 else prev[-1],
                                                     2, relu=True) for k in range(steps))))
    return layers


class DepthwiseSeparable(nn.Module):
    """mmcv's DepthwiseSeparableConvModule: depthwise 3x3 + BN, then 1x1 + BN + ReLU."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.depthwise_conv = depthwise(in_ch, 1)
        self.pointwise_conv = ConvModule(in_ch, out_ch, 1, act=nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class IterativeHead(nn.Module):
    """From the lowest resolution up: add the previous (bilinearly upsampled) result, project to
    the next higher branch's width. Returns outputs highest resolution first."""

    def __init__(self, channels: list[int]):
        super().__init__()
        rev = channels[::-1]
        self.projects = nn.ModuleList(DepthwiseSeparable(c, rev[min(k + 1, len(rev) - 1)])
                                      for k, c in enumerate(rev))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out, last = [], None
        for x, project in zip(xs[::-1], self.projects):
            if last is not None:
                x = x + F.interpolate(last, size=x.shape[-2:], mode="bilinear", align_corners=True)
            last = project(x)
            out.append(last)
        return out[::-1]


class LiteHRNet(nn.Module):
    """The backbone: image -> 40-channel features at 1/4 resolution (the head's highest output)."""

    def __init__(self, cfg: LiteHRNetConfig):
        super().__init__()
        self.stem = Stem(cfg.stem_channels)
        prev = [cfg.stem_channels]
        for s, (modules, channels) in enumerate(zip(cfg.num_modules, cfg.num_channels)):
            channels = list(channels)
            setattr(self, f"transition{s}", transition(prev, channels))
            setattr(self, f"stage{s}", nn.Sequential(*(LiteHRModule(channels, cfg.num_blocks,
                                                                    cfg.reduce_ratio)
                                                       for _ in range(modules))))
            prev = channels
        self.num_stages = len(cfg.num_modules)
        self.head_layer = IterativeHead(prev)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [self.stem(x)]
        for s in range(self.num_stages):
            entered = []
            for i, layer in enumerate(getattr(self, f"transition{s}")):
                source = xs[i] if i < len(xs) else xs[-1]  # new branches grow from the lowest
                entered.append(source if layer is None else layer(source))
            xs = getattr(self, f"stage{s}")(entered)
        return self.head_layer(xs)[0]


class KeypointHead(nn.Module):
    """mmpose's TopdownHeatmapSimpleHead without deconvolutions: one 1x1 conv."""

    def __init__(self, in_ch: int, num_joints: int):
        super().__init__()
        self.final_layer = nn.Conv2d(in_ch, num_joints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(x)


class LiteHRNetPose(nn.Module):
    """Backbone + heatmap head, named as in mmpose 0.x top-down checkpoints."""

    def __init__(self, cfg: LiteHRNetConfig, num_joints: int = 17):
        super().__init__()
        self.backbone = LiteHRNet(cfg)
        self.keypoint_head = KeypointHead(cfg.num_channels[-1][0], num_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keypoint_head(self.backbone(x))


def build_litehrnet(variant: str, num_joints: int = 17) -> LiteHRNetPose:
    """Lite-HRNet-18 or -30 (random initial weights)."""
    cfg = VARIANTS.get(str(variant))
    if cfg is None:
        raise UserError(f"unknown Lite-HRNet variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return LiteHRNetPose(cfg, num_joints)
