"""Video sequences: people walk in and out of a slightly moving camera view, cross each other,
come back after leaving (after `away` seconds), pass behind pillars in the foreground, and
perform in-place motions; ground truth per frame with track ids. A person keeps their track id
and their clothes all sequence long, whether they leave the view or stay hidden for seconds.

World: x right, z away from the camera (body heights); a pinhole camera at chest height looks
along z with the horizon at a fixed image row. Each person keeps one track id (their row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from . import scene
from .figure import Placed, place, sample_looks
from .motion import CYCLE_S, MOTION_ID, MOTIONS, STRIDE, blend, motion_angles
from .skeleton import sample_bodies
from .stills import Truth, render_frame

WALKING = ("walk", "run")
IN_PLACE = ("stand", "wave", "squat", "jump", "turn")
Z_NEAR, Z_FAR = 2.2, 7.0
BLEND_S = 0.4        # seconds to blend from one motion into the next
TURN_RATE = 2.5      # rad/s for heading changes of walkers
SPIN_RATE = 1.6      # rad/s while doing the "turn" motion
OFF_SCREEN = 0.75    # body heights beyond the image border where nothing of a person shows


@dataclass(frozen=True)
class VideoKnobs:
    width: int = 640
    height: int = 360
    people: tuple[int, int] = (2, 8)
    frames: int = 100
    fps: float = 25.0
    occlusion: float = 0.5   # how strongly people are packed into a narrow depth band (crossings)
    motions: tuple[str, ...] = ("stand", "walk", "run", "wave", "squat", "jump", "turn")
    noise: float = 4.0
    blur: float = 0.15       # chance per sequence that camera shake also blurs
    shake: float = 4.0       # camera motion amplitude (px)
    depth: tuple[float, float] = (Z_NEAR, Z_FAR)  # distance range of the people (body heights)
    soften: float = 0.0      # lens softness, Gaussian sigma in px (also makes MP4s much smaller)
    away: tuple[float, float] = (0.3, 2.5)  # seconds a walker who left waits off-screen before coming back
    occluders: int = 0       # pillars in the foreground that hide whoever walks behind them


class Camera:
    def __init__(self, knobs: VideoKnobs):
        self.f = 1.6 * knobs.height
        self.cx = knobs.width / 2
        self.horizon = 0.3 * knobs.height
        self.height_above_ground = 0.9

    def project(self, x: np.ndarray, z: np.ndarray, body_height: np.ndarray):
        """Foot image position (P,2) and px per body height (P,) for people standing at (x, z)."""
        foot = np.stack([self.cx + self.f * x / z, self.horizon + self.f * self.height_above_ground / z], 1)
        return foot, self.f * body_height / z

    def x_range(self, z: np.ndarray, width: int, margin: float):
        """World x at the left and right image borders at depth z, widened by `margin` body heights
        (negative: narrowed)."""
        return -self.cx * z / self.f - margin, (width - self.cx) * z / self.f + margin


class Crowd:
    """The people of one sequence as rows of state arrays, advanced one frame at a time."""

    def __init__(self, rng: np.random.Generator, knobs: VideoKnobs):
        self.rng, self.knobs, self.cam = rng, knobs, Camera(knobs)
        n = int(rng.integers(knobs.people[0], knobs.people[1] + 1))
        self.n = n
        self.bodies = sample_bodies(rng, n)
        self.looks = sample_looks(rng, n, len(scene.clothing_patterns()))
        self.body_height = rng.uniform(0.85, 1.1, n)
        self.amp = rng.uniform(0.7, 1.2, n)
        self.side = rng.choice([-1.0, 1.0], n)
        walking = [m for m in knobs.motions if m in WALKING]
        still = [m for m in knobs.motions if m in IN_PLACE]
        p_walk = 0.7 if walking and still else (1.0 if walking else 0.0)
        self.walker = rng.random(n) < p_walk
        self.walking, self.still = walking, still
        # Depth: occlusion packs everyone into a narrower band so paths cross in front of each other.
        near, far = knobs.depth
        band = (far - near) * (1.0 - 0.7 * knobs.occlusion)
        z0 = rng.uniform(near, far - band)
        self.z = z0 + rng.uniform(0, band, n)
        lo, hi = self.cam.x_range(self.z, knobs.width, -0.2)
        spread = (rng.permutation(n) + rng.uniform(0.2, 0.8, n)) / n  # one person per slice of the width
        self.x = lo + (hi - lo) * spread
        heading = rng.choice([-1.0, 1.0], n)  # +1 walks to the image right
        self.yaw = heading * np.pi / 2 + rng.uniform(-0.35, 0.35, n)
        self.yaw[~self.walker] = rng.uniform(-1.2, 1.2, (~self.walker).sum())
        # Some walkers start just outside the frame and enter.
        enter = self.walker & (rng.random(n) < 0.4)
        lo, hi = self.cam.x_range(self.z, knobs.width, OFF_SCREEN)
        self.x[enter] = np.where(heading[enter] > 0, lo[enter], hi[enter])
        self.target_yaw = self.yaw.copy()
        self.kind = np.array([MOTION_ID[rng.choice(walking)] if w else MOTION_ID[rng.choice(still)]
                              for w in self.walker])
        self.speed = np.where(self.kind == MOTION_ID["run"], rng.uniform(1.2, 1.6, n), rng.uniform(0.6, 0.9, n))
        self.phase = rng.random(n)
        self.time_left = rng.uniform(1.5, 4.0, n)  # in-place motion duration / off-screen wait
        self.waiting = np.zeros(n, bool)
        self.blend_w = np.ones(n)  # 1: the current motion alone; below 1: still mixing in `prev`
        self.prev = motion_angles(self.kind, self.phase, self.amp, self.side)
        self.shown = None  # what pose() last displayed, reused by step() to blend from

    def current(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Displayed joint angles and lift: the motion, blended with the one it replaced."""
        angles, lift = motion_angles(self.kind, self.phase, self.amp, self.side)
        a_prev, lift_prev = self.prev
        return blend(a_prev, angles, self.blend_w), lift_prev * (1 - self.blend_w) + lift * self.blend_w

    def step(self, dt: float) -> None:
        rng, n = self.rng, self.n
        shown_angles, shown_lift = self.shown if self.shown is not None else self.current()
        # Walkers: move along the heading; off-screen, wait, then come back the other way.
        w = self.walker & ~self.waiting
        vx = self.speed * np.sin(self.yaw)
        vz = -self.speed * np.cos(self.yaw)
        self.x[w] += vx[w] * dt
        self.z[w] += vz[w] * dt
        stride = np.where(self.kind == MOTION_ID["run"], STRIDE["run"], STRIDE["walk"])
        self.phase[w] += self.speed[w] * dt / (stride[w] * self.body_height[w])
        # Keep walkers inside the depth range by steering back.
        too_near, too_far = self.z < self.knobs.depth[0], self.z > self.knobs.depth[1]
        going_right = np.sin(self.target_yaw) >= 0
        base = np.where(going_right, np.pi / 2, -np.pi / 2)
        self.target_yaw = np.where(w & too_far, base - np.sign(base) * 0.3, self.target_yaw)
        self.target_yaw = np.where(w & too_near, base + np.sign(base) * 0.3, self.target_yaw)
        lo, hi = self.cam.x_range(self.z, self.knobs.width, OFF_SCREEN + 0.05)
        gone = w & (((self.x < lo) & (vx < 0)) | ((self.x > hi) & (vx > 0)))
        self.waiting[gone] = True
        self.time_left[gone] = rng.uniform(*self.knobs.away, gone.sum())
        waiting = self.waiting.copy()
        self.time_left[waiting] -= dt
        back = waiting & (self.time_left <= 0)
        if back.any():  # re-enter facing the other way, maybe at another depth
            self.waiting[back] = False
            self.z[back] = np.clip(self.z[back] + rng.uniform(-0.8, 0.8, back.sum()), *self.knobs.depth)
            flip = np.where(np.sin(self.yaw[back]) > 0, -np.pi / 2, np.pi / 2)
            self.yaw[back] = self.target_yaw[back] = flip + rng.uniform(-0.3, 0.3, back.sum())
            lo, hi = self.cam.x_range(self.z, self.knobs.width, OFF_SCREEN)
            self.x[back] = np.where(flip > 0, lo[back], hi[back])
        turn = np.clip(self.target_yaw - self.yaw, -TURN_RATE * dt, TURN_RATE * dt)
        self.yaw = self.yaw + np.where(self.walker, turn, 0.0)
        # In-place performers: run through a schedule of motions.
        s = ~self.walker
        self.phase[s] += dt / np.array([CYCLE_S.get(MOTIONS[k], 1.0) for k in self.kind])[s]
        spinning = s & (self.kind == MOTION_ID["turn"])
        self.yaw[spinning] += SPIN_RATE * dt * self.side[spinning]
        self.time_left[s] -= dt
        done = s & (self.time_left <= 0)
        if done.any():
            for i in np.flatnonzero(done):
                self.kind[i] = MOTION_ID[self.rng.choice(self.still)]
            self.phase[done] = 0.0
            self.time_left[done] = rng.uniform(1.5, 4.0, done.sum())
            # Blend out of what was on screen, so a switch never jumps.
            a_prev, lift_prev = self.prev
            self.prev = ({k: np.where(done, shown_angles[k], a_prev[k]) for k in a_prev},
                         np.where(done, shown_lift, lift_prev))
            self.blend_w[done] = 0.0
        self.blend_w = np.minimum(1.0, self.blend_w + dt / BLEND_S)
        self.shown = None

    def pose(self, cam_offset: np.ndarray) -> Placed:
        angles, lift = self.shown = self.current()
        foot, scale = self.cam.project(self.x, self.z, self.body_height)
        foot = foot - cam_offset
        depth = np.where(self.waiting, 1e9, self.z)
        return place(self.bodies, angles, self.yaw, lift, foot, scale, depth)


@dataclass
class Frame:
    index: int
    image: np.ndarray
    truth: Truth
    track_ids: np.ndarray
    keep: np.ndarray   # people worth annotating in this frame (enough of them visible)
    labels: np.ndarray


def annotate_mask(truth: Truth, min_area: float = 64.0, min_visible: int = 2) -> np.ndarray:
    """People that count as present: some visible pixels and at least `min_visible` visible joints."""
    return (truth.areas >= min_area) & ((truth.flags == 2).sum(axis=1) >= min_visible)


def frames(rng: np.random.Generator, knobs: VideoKnobs) -> Iterator[Frame]:
    """Render one sequence frame by frame."""
    w, h = knobs.width, knobs.height
    margin = int(np.ceil(knobs.shake)) + 2
    stage = scene.background(rng, w + 2 * margin, h + 2 * margin)
    noise = scene.Noise(rng, w, h, knobs.noise)
    crowd = Crowd(rng, knobs)
    front = scene.foreground(rng, w + 2 * margin, h + 2 * margin, knobs.occluders) if knobs.occluders else None
    shake_freq = rng.uniform(0.1, 0.5, 2)
    shake_phase = rng.uniform(0, 2 * np.pi, 2)
    light_freq, light_phase, light_amp = rng.uniform(0.05, 0.2), rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.2)
    bias = rng.uniform(-15, 15)
    blurs = rng.random() < knobs.blur
    dt = 1.0 / knobs.fps
    prev_off = None
    for t in range(knobs.frames):
        sec = t * dt
        off = np.round(knobs.shake * np.sin(2 * np.pi * shake_freq * sec + shake_phase)).astype(int)
        window = np.s_[margin + off[1]:margin + off[1] + h, margin + off[0]:margin + off[0] + w]
        base = stage[window]
        foreground = None if front is None else (front[0][window], front[1][window])
        placed = crowd.pose(off.astype(float))
        gain = 1.0 + light_amp * np.sin(2 * np.pi * light_freq * sec + light_phase)
        blur = (0, 0.0)
        if blurs and prev_off is not None:
            d = off - prev_off
            length = int(2 * np.hypot(*d)) + 1
            blur = (length, float(np.degrees(np.arctan2(d[1], d[0])))) if length >= 2 else (0, 0.0)
        image, truth, labels = render_frame(base, placed, crowd.looks, noise, rng, gain, bias, blur, knobs.soften,
                                            foreground)
        yield Frame(t, image, truth, np.arange(crowd.n), annotate_mask(truth), labels)
        prev_off = off
        crowd.step(dt)
