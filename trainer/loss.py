"""Heatmap regression losses of the official HRNet trainer.

JointsMSELoss = 0.5 * mean(((pred - target) * w)^2) over batch, joints and pixels, where w is
the per-joint target weight (0 for unlabelled joints). The official code loops over joints and
averages per-joint means, which is the same number since every joint has H*W pixels.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["JointsMSELoss", "build_loss"]


class JointsMSELoss(nn.Module):
    """MSE between predicted and target heatmaps (N,J,H,W), optionally weighted per joint and
    with online hard keypoint mining (OHKM: per sample, the mean of its `topk` largest joint losses)."""

    def __init__(self, use_target_weight: bool = True, use_ohkm: bool = False, topk: int = 8):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.use_ohkm = use_ohkm
        self.topk = topk

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor) -> torch.Tensor:
        output, target = output.float(), target.float()
        diff = output - target
        if self.use_target_weight:
            diff = diff * target_weight.float().reshape(*target_weight.shape[:2], 1, 1)
        per_joint = 0.5 * diff.pow(2).flatten(2).mean(dim=2)  # (N, J)
        if not self.use_ohkm:
            return per_joint.mean()
        k = min(self.topk, per_joint.shape[1])
        return per_joint.topk(k, dim=1).values.mean(dim=1).mean()


def build_loss(loss_cfg) -> JointsMSELoss:
    return JointsMSELoss(loss_cfg.USE_TARGET_WEIGHT, loss_cfg.USE_OHKM, loss_cfg.TOPK)
