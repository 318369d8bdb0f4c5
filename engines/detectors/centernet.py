"""A small CenterNet-style person detector (Zhou et al., "Objects as Points", 2019) that the
trainer can train on synthetic people: the network, its training-target encoder, the decoder,
and a Detector that runs it.

Output maps at stride 4: a centre heatmap (1 channel, logits), box size (w, h in input pixels,
predicted as a log so that one head covers small and large people) and the sub-cell centre
offset (dx, dy in cells). Targets: an elliptical Gaussian per person
(sigma = 0.54 * size / 6 per axis, as TTFNet) peaking at 1 on the centre's cell; size and offset
are supervised on that cell only.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import maximum_filter
from torch import nn

from engines.detectors.base import Detector
from engines.common.letterbox import letterbox

__all__ = ["CenterNetNet", "widths_of", "PackedHeads", "decode_centernet", "CenterNetDetector",
           "load_centernet", "STRIDE", "BUNDLED", "BUNDLED_INPUT"]

STRIDE = 4
SIZE_UNIT = 32.0                # the size head predicts log(size / SIZE_UNIT)
BUNDLED = "centernet_512x288"   # engines/assets/<BUNDLED>.pth, trained by trainer.detection
BUNDLED_INPUT = (512, 288)
NARROW = (16, 24, 48, 96)       # the widths of detectors up to stage 4


def _conv(cin, cout, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class CenterNetNet(nn.Module):
    """Plain conv encoder to stride 16 (a dilated last layer widens the view to about 160 input
    pixels, enough for the tallest people) and a two-step top-down path back to stride 4."""

    def __init__(self, widths=NARROW, head_width: int = 32):
        super().__init__()
        self.widths = tuple(widths)
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(_conv(3, w0, 2), _conv(w0, w1, 2), _conv(w1, w1))        # /4
        self.down8 = nn.Sequential(_conv(w1, w2, 2), _conv(w2, w2))                       # /8
        self.down16 = nn.Sequential(_conv(w2, w3, 2), _conv(w3, w3), _conv(w3, w3, dilation=2))  # /16
        self.lat8 = nn.Conv2d(w2, w3, 1)
        self.reduce8 = nn.Conv2d(w3, head_width, 1)     # narrow before the costly stride-4 maps
        self.lat4 = nn.Conv2d(w1, head_width, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = _conv(head_width, head_width)
        self.heat = nn.Conv2d(head_width, 1, 1)
        self.size = nn.Conv2d(head_width, 2, 1)
        self.offset = nn.Conv2d(head_width, 2, 1)
        # start the centre logits at a 0.1 prior so early focal-loss steps are stable (CenterNet)
        nn.init.constant_(self.heat.bias, -2.19)
        # and the sizes at a typical standing person, 40x80 pixels
        with torch.no_grad():
            self.size.bias.copy_(torch.log(torch.tensor([40.0, 80.0]) / SIZE_UNIT))

    def forward(self, x):
        c4 = self.stem(x)
        c8 = self.down8(c4)
        c16 = self.down16(c8)
        p8 = self.up(c16) + self.lat8(c8)
        p4 = self.up(self.reduce8(p8)) + self.lat4(c4)
        f = self.fuse(p4)
        return self.heat(f), torch.exp(self.size(f).clamp(max=8.0)) * SIZE_UNIT, self.offset(f)


def widths_of(state: dict) -> tuple[int, int, int, int]:
    """The encoder widths a CenterNetNet state_dict was saved with (read off its weights' shapes)."""
    keys = ("stem.0.0.weight", "stem.1.0.weight", "down8.0.0.weight", "down16.0.0.weight")
    if not all(k in state for k in keys):
        return NARROW   # not a CenterNetNet: load_weights then names what does not fit
    return tuple(int(state[k].shape[0]) for k in keys)


def decode_centernet(heat: np.ndarray, size: np.ndarray, offset: np.ndarray, stride: int = STRIDE,
                     score_thresh: float = 0.1, top_k: int = 100) -> list[np.ndarray]:
    """Per image, boxes (K,5) xyxy+score in input pixels from heat (B,1,h,w) *probabilities*,
    size (B,2,h,w) and offset (B,2,h,w): the peaks of the heatmap (3x3 local maxima) above
    `score_thresh`, best `top_k` first."""
    heat = np.asarray(heat, dtype=np.float32)
    peaks = (heat == maximum_filter(heat, size=(1, 1, 3, 3), mode="constant", cval=-np.inf)) & (heat >= score_thresh)
    results = []
    for b in range(heat.shape[0]):
        cy, cx = np.nonzero(peaks[b, 0])
        scores = heat[b, 0, cy, cx]
        best = np.argsort(-scores, kind="stable")[:top_k]
        cy, cx, scores = cy[best], cx[best], scores[best]
        centre = (np.stack([cx, cy], 1) + offset[b][:, cy, cx].T) * stride
        half = size[b][:, cy, cx].T / 2
        results.append(np.concatenate([centre - half, centre + half, scores[:, None]], 1).astype(np.float32))
    return results


class PackedHeads(nn.Module):
    """A CenterNetNet with its three outputs in one (B,5,h,w) tensor: centre logits, box size,
    offset. One output is the form every pose backend runs (and ONNX Runtime exports)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.cat(self.net(x), dim=1)


class CenterNetDetector(Detector):
    """Runs a CenterNetNet on letterboxed frames (RGB, /255, top-left padding) through a pose
    backend: by default ONNX Runtime on the CPU (the network at 512x288: 2.0 ms against torch's
    4.6 ms here) and torch on CUDA."""

    def __init__(self, model: nn.Module, input_size_wh=BUNDLED_INPUT, device: str = "cpu",
                 backend: str | None = None, **options):
        from engines.runtimes.backends import BackendOptions, create_backend, default_backend

        super().__init__(**options)
        self.input_size = (int(input_size_wh[0]), int(input_size_wh[1]))
        # one frame at a time: one ONNX Runtime session with every thread, which must not spin
        # once done, as the pose network runs next (demo clip: pose 10.3 -> 6.1 ms a frame)
        self.network = create_backend(backend or default_backend(device), PackedHeads(model).float(),
                                      self.input_size, BackendOptions(device=device, workers=1, spin=False))

    def candidates(self, frames):
        boxed = [letterbox(f, self.input_size, centred=False) for f in frames]
        x = np.stack([img[..., ::-1].transpose(2, 0, 1) for img, _ in boxed]).astype(np.float32) / 255.0
        maps = self.network(x)
        heat = 1.0 / (1.0 + np.exp(-np.clip(maps[:, :1], -30.0, 30.0)))   # sigmoid, no overflow
        people = decode_centernet(heat, maps[:, 1:3], maps[:, 3:5], score_thresh=min(self.score_thresh, 0.1))
        for boxes, (_, lb) in zip(people, boxed):
            boxes[:, :4] = lb.to_frame(boxes[:, :4])
        return people


def load_centernet(weights: str | None = None, input_size_wh=BUNDLED_INPUT, device: str = "cpu",
                   **options) -> CenterNetDetector:
    """The bundled detector, or a CenterNetNet checkpoint written by `python -m trainer` with
    `MODEL.KIND centernet` (run it at the input size it was trained at)."""
    from engines.models.weights import bundled_weights, load_state_dict_file, load_weights

    # its scores run lower than YOLO's: on held-out synthetic frames 0.25 keeps ~85% of people at
    # ~7% false detections (0.3: 81% / 3%)
    options.setdefault("score_thresh", 0.25)
    # box NMS at 0.7, not 0.5: the person behind another often has a box over theirs, which the
    # tracker keeps when its pose is someone else's (TrackerConfig.contested_oks; crowded synthetic
    # set, mAP / MOTA 57.3 / 46.6 -> 58.7 / 48.0)
    options.setdefault("nms_thresh", 0.7)
    state = load_state_dict_file(weights or bundled_weights(BUNDLED))
    model = load_weights(CenterNetNet(widths_of(state)), state).float()
    return CenterNetDetector(model, input_size_wh, device, **options)
