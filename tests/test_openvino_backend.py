"""The openvino backend (`--backend openvino`): the same heatmaps as torch eager, in batch order
across its streams, and one-line refusals of what it cannot do."""

import numpy as np
import pytest
import torch

from engines.errors import UserError
from engines.models.presets import build_network
from engines.runtimes.backends import BackendOptions, create_backend

pytest.importorskip("openvino", reason="the openvino extra is not installed")


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_openvino_heatmaps_equal_torch_in_batch_order(batch):
    torch.manual_seed(3)
    model = build_network("lite_w16_160x128").eval()
    images = np.random.default_rng(batch).standard_normal((batch, 3, 160, 128)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    got = create_backend("openvino", model, (128, 160), BackendOptions(workers=2))(images)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-3)


def test_openvino_refuses_gpu_and_torch_options():
    model = build_network("lite_w16_160x128")
    with pytest.raises(UserError, match="runs on the CPU"):
        create_backend("openvino", model, (128, 160), BackendOptions(device="cuda"))
    with pytest.raises(UserError, match="torch backend options"):
        create_backend("openvino", model, (128, 160), BackendOptions(half=True))
