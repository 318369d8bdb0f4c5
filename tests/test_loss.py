"""JointsMSELoss against the official implementation's outputs (tests/fixtures/loss_ref.npz)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.loss import JointsMSELoss

REF = np.load(Path(__file__).parent / "fixtures" / "loss_ref.npz")


@pytest.mark.parametrize("case", [0, 1])
def test_matches_official_loss(case):
    out, tgt, w = (torch.from_numpy(REF[f"loss{case}_{k}"]) for k in ("output", "target", "target_weight"))
    loss = JointsMSELoss(use_target_weight=bool(REF[f"loss{case}_use_target_weight"]))(out, tgt, w)
    assert abs(loss.item() - float(REF[f"loss{case}_value"])) <= 1e-6


def test_target_weight_zero_ignores_joint():
    rng = np.random.default_rng(0)
    out = torch.from_numpy(rng.random((2, 4, 8, 6), dtype=np.float32))
    tgt = torch.zeros_like(out)
    w = torch.ones(2, 4, 1)
    w[:, 1] = 0
    weighted = JointsMSELoss(True)(out, tgt, w)
    expected = 0.5 * (out[:, [0, 2, 3]] ** 2).mean() * 3 / 4
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-6)


def test_ohkm_averages_the_hardest_joints_per_sample():
    rng = np.random.default_rng(1)
    out = torch.from_numpy(rng.random((3, 17, 8, 6), dtype=np.float32))
    tgt = torch.from_numpy(rng.random((3, 17, 8, 6), dtype=np.float32))
    w = torch.from_numpy(rng.integers(0, 2, (3, 17, 1)).astype(np.float32))
    per_joint = (0.5 * ((out - tgt) * w[..., None]) ** 2).flatten(2).mean(2).numpy()
    expected = np.sort(per_joint, axis=1)[:, -8:].mean(axis=1).mean()
    got = JointsMSELoss(True, use_ohkm=True, topk=8)(out, tgt, w).item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert got > JointsMSELoss(True)(out, tgt, w).item()
