"""Motions as joint angles over a phase: walk, run, wave, squat, jump, turn, stand, and random
poses for still images. Angles are smooth, periodic in the phase, and clipped to joint limits
by the skeleton."""

from __future__ import annotations

import numpy as np

from .skeleton import LIMITS

MOTIONS = ("stand", "walk", "run", "wave", "squat", "jump", "turn", "pose")
MOTION_ID = {m: i for i, m in enumerate(MOTIONS)}
# Stride (body heights travelled per motion cycle) for the moving gaits; others stay in place.
STRIDE = {"walk": 0.85, "run": 1.5}
# Seconds per cycle for the in-place motions.
CYCLE_S = {"stand": 4.0, "wave": 1.0, "squat": 2.2, "jump": 1.1, "turn": 4.0, "pose": 1.0}

ANGLE_NAMES = tuple(
    f"{s}_{j}" for s in ("l", "r")
    for j in ("shoulder_flex", "shoulder_abd", "elbow_flex", "forearm_abd", "hip_flex", "hip_abd", "knee_flex")
) + ("lean", "head_turn")


def _rest(n: int) -> dict[str, np.ndarray]:
    a = {k: np.zeros(n) for k in ANGLE_NAMES}
    for s in ("l_", "r_"):
        a[s + "shoulder_abd"][:] = 0.12
        a[s + "elbow_flex"][:] = 0.15
        a[s + "forearm_abd"][:] = 0.08
        a[s + "hip_abd"][:] = 0.05
        a[s + "knee_flex"][:] = 0.04
    return a


def motion_angles(kind: np.ndarray, phase: np.ndarray, amp: np.ndarray, side: np.ndarray,
                  rng: np.random.Generator | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Joint angles for each person (rows) and a vertical lift (body heights, for jumps).

    kind: (P,) motion ids; phase: (P,) cycles (any real); amp: (P,) 0.5..1.5 intensity;
    side: (P,) +1 or -1 picks the arm used by one-armed motions. `rng` is needed for "pose".
    """
    n = len(kind)
    a = _rest(n)
    lift = np.zeros(n)
    ph = 2 * np.pi * phase
    sn, cs = np.sin(ph), np.cos(ph)
    first = side > 0  # True: the left arm waves

    def put(mask, name, value):
        a[name][mask] = value[mask] if np.ndim(value) else value

    present = set(np.unique(kind).tolist())

    if MOTION_ID["stand"] in present:
        m = kind == MOTION_ID["stand"]
        put(m, "head_turn", 0.25 * amp * np.sin(0.5 * ph))
        put(m, "l_shoulder_flex", 0.05 * sn)
        put(m, "r_shoulder_flex", -0.05 * sn)

    for name, hip_amp, knee_amp, arm_amp, elbow, lean in (
            ("walk", 0.42, 0.75, 0.4, 0.25, 0.05), ("run", 0.65, 1.2, 0.7, 1.5, 0.22)):
        if MOTION_ID[name] not in present:
            continue
        m = kind == MOTION_ID[name]
        for s, sign in (("l_", 1.0), ("r_", -1.0)):
            put(m, s + "hip_flex", sign * hip_amp * amp * sn)
            # The knee bends while the thigh swings forward (hip flexion increasing).
            swing = np.maximum(0.0, sign * np.cos(ph - 0.3))
            put(m, s + "knee_flex", 0.06 + knee_amp * amp * swing ** 1.5)
            put(m, s + "shoulder_flex", -sign * arm_amp * amp * sn)
            put(m, s + "elbow_flex", elbow + 0.2 * amp * (1 + sign * sn))
        put(m, "lean", lean * amp)
        if name == "run":
            lift[m] = (0.04 * amp * np.abs(np.sin(ph)))[m]

    if MOTION_ID["wave"] in present:
        m = kind == MOTION_ID["wave"]
        for s, is_waving in (("l_", first), ("r_", ~first)):
            w = m & is_waving
            put(w, s + "shoulder_abd", 1.35 + 0.1 * amp)
            put(w, s + "shoulder_flex", 0.25)
            put(w, s + "elbow_flex", 0.1)
            put(w, s + "forearm_abd", 2.55 + 0.3 * amp * sn)
        put(m, "head_turn", 0.15 * np.where(first, 1.0, -1.0))

    if MOTION_ID["squat"] in present:
        m = kind == MOTION_ID["squat"]
        depth = amp.clip(0.5, 1.2) * (0.5 - 0.5 * cs)
        for s in ("l_", "r_"):
            put(m, s + "hip_flex", 1.55 * depth)
            put(m, s + "knee_flex", 0.04 + 2.0 * depth)
            put(m, s + "hip_abd", 0.05 + 0.2 * depth)
            put(m, s + "shoulder_flex", 1.4 * depth)
            put(m, s + "elbow_flex", 0.15 + 0.3 * depth)
        put(m, "lean", 0.55 * depth)

    if MOTION_ID["jump"] in present:
        m = kind == MOTION_ID["jump"]
        up = np.maximum(0.0, sn)        # airborne half of the cycle
        crouch = np.maximum(0.0, -sn)   # crouching half
        for s in ("l_", "r_"):
            put(m, s + "hip_flex", 0.6 * crouch + 0.15 * up)
            put(m, s + "knee_flex", 0.04 + 1.0 * crouch + 0.35 * up)
            put(m, s + "shoulder_flex", -0.5 * crouch + 2.3 * up * amp.clip(0.5, 1.2))
            put(m, s + "elbow_flex", 0.2)
        put(m, "lean", 0.3 * crouch)
        lift[m] = (0.22 * amp * up ** 1.5)[m]

    if MOTION_ID["turn"] in present:
        m = kind == MOTION_ID["turn"]
        for s, sign in (("l_", 1.0), ("r_", -1.0)):
            put(m, s + "hip_flex", sign * 0.15 * np.sin(4 * ph))
            put(m, s + "knee_flex", 0.05 + 0.2 * np.maximum(0.0, sign * np.sin(4 * ph)))

    if MOTION_ID["pose"] in present:
        m = kind == MOTION_ID["pose"]
        if rng is None:
            raise ValueError("motion 'pose' needs an rng")
        for name in ANGLE_NAMES:
            lo, hi = LIMITS[name[2:] if name[:2] in ("l_", "r_") else name]
            # Stay clear of the extremes of hips, knees and lean, where random mixes look broken.
            hi = {"hip_flex": 1.6, "knee_flex": 2.0, "lean": 0.5}.get(name[2:] if name[:2] in ("l_", "r_") else name, hi)
            a[name][m] = rng.uniform(lo, hi, n)[m]
    return a, lift


def blend(a: dict[str, np.ndarray], b: dict[str, np.ndarray], w: np.ndarray) -> dict[str, np.ndarray]:
    """Per-person linear mix of two angle sets (w=0 -> a, w=1 -> b), for smooth transitions."""
    return {k: a[k] * (1 - w) + b[k] * w for k in a}
