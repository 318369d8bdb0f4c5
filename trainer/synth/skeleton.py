"""Kinematic skeleton: body proportions and forward kinematics for a batch of people.

Each person is a row. Joint angles (radians) are arrays of shape (P,). The body frame has
axes l (the person's left), u (up) and f (forward); lengths are in units of body height.
Yaw turns the body frame about the vertical axis; yaw 0 faces the camera, so the person's
left appears on the image right. World axes: x right in the image, y up, z away from camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Skeleton points. 0-16 are COCO-17 in COCO order; the rest complete the body.
POINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
    "head_top", "head_bottom", "head_center", "neck", "pelvis",
    "left_hand", "right_hand", "left_toe", "right_toe",
)
P = {name: i for i, name in enumerate(POINTS)}
NUM_POINTS = len(POINTS)

# Face points as directions on the head ellipsoid (l, u, f), with the facing threshold used
# to decide whether the point is turned towards the camera: cos(angle to camera) > threshold.
FACE_POINTS = {
    "nose": ((0.0, -0.12, 1.0), -0.05),
    "left_eye": ((0.38, 0.22, 0.9), 0.05),
    "right_eye": ((-0.38, 0.22, 0.9), 0.05),
    "left_ear": ((1.0, 0.0, -0.05), -0.35),
    "right_ear": ((-1.0, 0.0, -0.05), -0.35),
}
FACE_RADIUS = 0.82  # face points sit this far out on the head (fraction of head radius)
HEAD_ASPECT = 1.15  # head ellipse height / width

# Joint limits (radians) that every motion is clipped to.
LIMITS = {
    "shoulder_flex": (-1.0, 3.0),
    "shoulder_abd": (0.0, 2.9),
    "elbow_flex": (0.0, 2.6),
    "forearm_abd": (-0.3, 3.0),
    "hip_flex": (-0.5, 2.0),
    "hip_abd": (0.0, 0.7),
    "knee_flex": (0.0, 2.4),
    "lean": (-0.25, 0.9),
    "head_turn": (-0.8, 0.8),
}


@dataclass
class Bodies:
    """Per-person proportions (P,) in units of body height, and thickness radii."""

    head_r: np.ndarray
    neck: np.ndarray
    torso: np.ndarray
    shoulder_w: np.ndarray
    hip_w: np.ndarray
    chest_depth: np.ndarray
    upper_arm: np.ndarray
    forearm: np.ndarray
    thigh: np.ndarray
    shin: np.ndarray
    foot: np.ndarray
    build: np.ndarray  # thickness multiplier (slim < 1 < broad)

    def __len__(self) -> int:
        return len(self.head_r)

    def take(self, idx) -> "Bodies":
        return Bodies(**{k: v[idx] for k, v in self.__dict__.items()})

    @property
    def radii(self) -> dict[str, np.ndarray]:
        """Half-thickness of each limb segment, in units of body height."""
        b = self.build
        return {
            "neck": 0.032 * b, "upper_arm": 0.034 * b, "forearm": 0.029 * b, "hand": 0.03 * b,
            "thigh": 0.055 * b, "shin": 0.04 * b, "foot": 0.024 * b,
        }


def sample_bodies(rng: np.random.Generator, n: int) -> Bodies:
    """Random adult/teen proportions: each segment varies independently by a few percent."""
    def jitter(mean, spread):
        return (mean * (1.0 + rng.uniform(-spread, spread, n))).astype(np.float64)

    head_r = jitter(0.062, 0.12)
    leg_scale = rng.uniform(0.92, 1.08, n)
    thigh = 0.245 * leg_scale * (1 + rng.uniform(-0.04, 0.04, n))
    shin = 0.245 * leg_scale * (1 + rng.uniform(-0.04, 0.04, n))
    ankle_h = 0.04
    neck = jitter(0.04, 0.2)
    # The torso takes what is left of the unit height after legs, neck and head.
    torso = 1.0 - (thigh + shin + ankle_h + neck + 2 * HEAD_ASPECT * head_r)
    return Bodies(
        head_r=head_r, neck=neck, torso=torso,
        shoulder_w=jitter(0.23, 0.12), hip_w=jitter(0.16, 0.12), chest_depth=jitter(0.065, 0.2),
        upper_arm=jitter(0.17, 0.06), forearm=jitter(0.15, 0.06),
        thigh=thigh, shin=shin, foot=jitter(0.11, 0.1), build=rng.uniform(0.8, 1.3, n),
    )


def limb_direction(flex, abd, side):
    """Unit vector (P,3) in the body frame (l, u, f) for a limb hanging down, swung forward by
    `flex` and sideways-outward by `abd`; side is +1 for the left limbs, -1 for the right."""
    c = np.cos(abd)
    return np.stack([side * np.sin(abd), -c * np.cos(flex), c * np.sin(flex)], axis=-1)


def forward_kinematics(bodies: Bodies, angles: dict[str, np.ndarray]) -> np.ndarray:
    """Body-frame points (P, NUM_POINTS, 3) with the pelvis at the origin.

    `angles` holds (P,) arrays: l_/r_shoulder_flex, l_/r_shoulder_abd, l_/r_elbow_flex,
    l_/r_forearm_abd, l_/r_hip_flex, l_/r_hip_abd, l_/r_knee_flex, lean, head_turn.
    """
    b = bodies
    n = len(b)
    pts = np.zeros((n, NUM_POINTS, 3))
    up = np.array([0.0, 1.0, 0.0])
    lat = np.array([1.0, 0.0, 0.0])
    fwd = np.array([0.0, 0.0, 1.0])
    a = {k: np.clip(v, *LIMITS[k.split("_", 1)[1] if k[:2] in ("l_", "r_") else k]) for k, v in angles.items()}

    # Legs hang from the pelvis, which stays upright.
    for side, s in (("left", 1.0), ("right", -1.0)):
        k = side[0] + "_"
        hip = s * b.hip_w[:, None] / 2 * lat
        thigh_dir = limb_direction(a[k + "hip_flex"], a[k + "hip_abd"], s)
        knee = hip + b.thigh[:, None] * thigh_dir
        shin_dir = limb_direction(a[k + "hip_flex"] - a[k + "knee_flex"], a[k + "hip_abd"], s)
        ankle = knee + b.shin[:, None] * shin_dir
        # The foot stays roughly level, pointing forward, slightly down from the ankle.
        toe = ankle + b.foot[:, None] * (0.95 * fwd - 0.3 * up)
        pts[:, P[side + "_hip"]] = hip
        pts[:, P[side + "_knee"]] = knee
        pts[:, P[side + "_ankle"]] = ankle
        pts[:, P[side + "_toe"]] = toe

    # Upper body in the torso frame, then leaned forward about the pelvis.
    shoulder_u = b.torso[:, None] * up
    neck = (b.torso + 0.5 * b.neck)[:, None] * up
    head_c = (b.torso + b.neck + HEAD_ASPECT * b.head_r)[:, None] * up
    upper = {"neck": neck, "head_center": head_c,
             "head_top": head_c + (0.95 * HEAD_ASPECT * b.head_r)[:, None] * up,
             "head_bottom": head_c - (0.92 * HEAD_ASPECT * b.head_r)[:, None] * up}
    for side, s in (("left", 1.0), ("right", -1.0)):
        k = side[0] + "_"
        sh = shoulder_u + s * b.shoulder_w[:, None] / 2 * lat
        ua = limb_direction(a[k + "shoulder_flex"], a[k + "shoulder_abd"], s)
        elbow = sh + b.upper_arm[:, None] * ua
        fa = limb_direction(a[k + "shoulder_flex"] + a[k + "elbow_flex"], a[k + "forearm_abd"], s)
        wrist = elbow + b.forearm[:, None] * fa
        hand = wrist + (0.055 * b.build)[:, None] * fa
        upper.update({side + "_shoulder": sh, side + "_elbow": elbow, side + "_wrist": wrist, side + "_hand": hand})
    # Face points turn with the head (yaw relative to the body).
    ht = a["head_turn"]
    cos_t, sin_t = np.cos(ht)[:, None], np.sin(ht)[:, None]
    for name, (d, _) in FACE_POINTS.items():
        d = np.asarray(d) / np.linalg.norm(d)
        dl = d[0] * cos_t + d[2] * sin_t
        df = -d[0] * sin_t + d[2] * cos_t
        offset = np.concatenate([dl, np.full_like(dl, d[1] * HEAD_ASPECT), df], axis=1)
        upper[name] = head_c + FACE_RADIUS * b.head_r[:, None] * offset
    lean = a["lean"]
    cl, sl = np.cos(lean)[:, None], np.sin(lean)[:, None]
    for name, p in upper.items():
        u, f = p[:, 1:2], p[:, 2:3]
        pts[:, P[name]] = np.concatenate([p[:, :1], u * cl - f * sl, f * cl + u * sl], axis=1)
    return pts


def face_directions(angles: dict[str, np.ndarray], yaw: np.ndarray) -> np.ndarray:
    """Cosine between each face point's outward direction and the direction to the camera,
    (P, 5) for nose, eyes, ears (leaning is ignored: it barely changes which side shows)."""
    t = yaw + angles["head_turn"]
    out = []
    for d, _ in FACE_POINTS.values():
        d = np.asarray(d) / np.linalg.norm(d)
        # Body-frame (l, f) -> world z; the camera looks along +z, so facing it means -z.
        z = d[0] * np.sin(t) - d[2] * np.cos(t)
        out.append(-z)
    return np.stack(out, axis=1)


FACE_THRESHOLDS = np.array([t for _, t in FACE_POINTS.values()])


def to_world(points: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate body-frame points (P,K,3) by yaw into camera-aligned axes (x right, y up, z away)."""
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    l, u, f = points[..., 0], points[..., 1], points[..., 2]
    return np.stack([l * c + f * s, u, l * s - f * c], axis=-1)
