"""Scenes: cluttered textured backgrounds, clothing textures, lighting, sensor noise, motion blur."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

TILE = 64   # clothing texture period (px); every pattern repeats seamlessly at this size
NOISE_PAD = 64


@lru_cache(maxsize=1)
def clothing_patterns() -> np.ndarray:
    """(K, TILE, TILE) uint8 multiplicative textures (255 = unchanged): plain, stripes, checks,
    dots, mottled, diagonal. Fixed (seeded once), so every run draws from the same bank."""
    rng = np.random.default_rng(20261124)
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    out = [np.ones((TILE, TILE)), np.ones((TILE, TILE))]
    for period in (4, 8, 16):
        out.append(np.where((yy // (period // 2)) % 2 == 0, 1.0, 0.72))  # horizontal stripes
        out.append(np.where((xx // (period // 2)) % 2 == 0, 1.0, 0.75))  # vertical stripes
    for period in (8, 16):
        out.append(np.where(((yy // period) + (xx // period)) % 2 == 0, 1.0, 0.7))  # checks
    dots = np.ones((TILE, TILE))
    for cx, cy in rng.integers(0, TILE, (14, 2)):
        for dx in (-TILE, 0, TILE):  # wrapped copies keep the tile seamless
            for dy in (-TILE, 0, TILE):
                cv2.circle(dots, (int(cx + dx), int(cy + dy)), 3, 0.65, -1)
    out.append(dots)
    noise = np.tile(rng.uniform(0.7, 1.1, (TILE, TILE)), (3, 3))
    mottled = cv2.GaussianBlur(noise, (0, 0), 3)[TILE:2 * TILE, TILE:2 * TILE]
    out.append(mottled / mottled.max())
    out.append(np.where(((xx + yy) // 4) % 2 == 0, 1.0, 0.78))
    return np.round(np.stack(out) * 255).astype(np.uint8)


@lru_cache(maxsize=4)
def tiled_patterns(height: int, width: int) -> np.ndarray:
    """The pattern bank repeated to (K, height + TILE, width + TILE), so any frame-sized window
    at any phase is a plain slice."""
    reps = (1, height // TILE + 2, width // TILE + 2)
    return np.ascontiguousarray(np.tile(clothing_patterns(), reps)[:, :height + TILE, :width + TILE])


def background(rng: np.random.Generator, width: int, height: int, clutter: float = 1.0) -> np.ndarray:
    """A cluttered indoor/outdoor-like backdrop (H, W, 3) uint8: gradient sky/wall and floor,
    textured blocks, poles, blobs and lines, lightly blurred."""
    top = rng.uniform(40, 230, 3)
    bottom = rng.uniform(30, 200, 3)
    horizon = int(height * rng.uniform(0.25, 0.6))
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    col = (top * (1 - t) + bottom * t).astype(np.float32)
    img = np.repeat(col[:, None, :], width, axis=1)
    img[horizon:] = img[horizon:] * rng.uniform(0.6, 1.0) + rng.uniform(-30, 30, 3)
    img = np.clip(img, 0, 255).astype(np.uint8)
    k = width / 640  # shape sizes and counts follow the frame size
    n_shapes = int(rng.integers(10, 40) * clutter * max(1.0, k))
    for _ in range(n_shapes):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 5)
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        if kind == 0:  # block (building, furniture)
            w, h = int(rng.integers(10, width // 3)), int(rng.integers(10, height // 2))
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
            if rng.random() < 0.5:  # windows / shelves
                step = int(rng.integers(6, 20) * k) + 1
                shade = tuple(int(c * 0.6) for c in colour)
                for yy in range(y + step // 2, y + h, step):
                    cv2.line(img, (x, yy), (x + w, yy), shade, 1)
        elif kind == 1:  # pole
            w = int(rng.integers(3, 14) * k) + 1
            cv2.rectangle(img, (x, 0 if rng.random() < 0.5 else y), (x + w, height), colour, -1)
        elif kind == 2:  # blob (tree, bush, lamp)
            cv2.ellipse(img, (x, y), (int(rng.integers(5, 60) * k) + 1, int(rng.integers(5, 60) * k) + 1),
                        float(rng.uniform(0, 180)), 0, 360, colour, -1)
        elif kind == 3:  # line (wire, edge)
            cv2.line(img, (x, y), (int(rng.integers(0, width)), int(rng.integers(0, height))), colour,
                     int(rng.integers(1, 4) * k) + 1)
        else:  # polygon
            pts = (np.array([x, y]) + k * rng.integers(-50, 50, (int(rng.integers(3, 6)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], colour)
    noise_tex = rng.normal(0, rng.uniform(3, 14), (height // 4 + 1, width // 4 + 1, 1)).astype(np.float32)
    tex = cv2.resize(noise_tex, (width, height), interpolation=cv2.INTER_LINEAR)[..., None]
    img = np.clip(img.astype(np.float32) + tex, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0)


def foreground(rng: np.random.Generator, width: int, height: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` pillars or hoardings standing between the camera and the people, from the top of
    the frame to the bottom, each 12-25% of the width: people walking behind one vanish for a
    second or more. Returns the image (H, W, 3) uint8 and where it covers (H, W) bool."""
    image = np.zeros((height, width, 3), np.uint8)
    mask = np.zeros((height, width), np.uint8)
    for _ in range(count):
        w = int(width * rng.uniform(0.12, 0.25))
        x = int(rng.integers(0, max(1, width - w)))
        colour = rng.uniform(40, 220, 3)
        shade = np.linspace(0.8, 1.1, w, dtype=np.float32)[None, :, None]   # a rounded, lit face
        image[:, x:x + w] = np.clip(colour * shade + rng.normal(0, 6, (height, 1, 3)), 0, 255).astype(np.uint8)
        mask[:, x:x + w] = 1
    return image, mask.astype(bool)


class Noise:
    """Pre-drawn sensor noise; `apply` adds a random window of it (cheap per frame)."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, sigma: float):
        shape = (height + NOISE_PAD, width + NOISE_PAD, 3)
        n = rng.normal(0, sigma, shape) if sigma > 0 else np.zeros(shape)
        self.plus = np.clip(n, 0, 255).astype(np.uint8)
        self.minus = np.clip(-n, 0, 255).astype(np.uint8)
        self.sigma = sigma

    def apply(self, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.sigma <= 0:
            return frame
        h, w = frame.shape[:2]
        dx, dy = (int(v) for v in rng.integers(0, NOISE_PAD, 2))
        out = cv2.add(frame, self.plus[dy:dy + h, dx:dx + w])
        return cv2.subtract(out, self.minus[dy:dy + h, dx:dx + w])


def lighting(frame: np.ndarray, gain: float, bias: float) -> np.ndarray:
    """Global exposure change (saturating)."""
    return cv2.convertScaleAbs(frame, alpha=gain, beta=bias)


def motion_blur(frame: np.ndarray, length: int, angle_deg: float) -> np.ndarray:
    """Linear motion blur of `length` px along `angle_deg`."""
    if length < 2:
        return frame
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    d = np.array([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))]) * c
    cv2.line(k, (int(round(c - d[0])), int(round(c - d[1]))), (int(round(c + d[0])), int(round(c + d[1]))), 1.0, 1)
    return cv2.filter2D(frame, -1, k / k.sum())
