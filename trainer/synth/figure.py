"""Figures: place posed skeletons in the image and paint them far-to-near (painter's algorithm)
into the frame and an int16 label map, then read keypoint visibility off that map.

Label values: person p (0-based draw slot) part k is (p + 1) * LABEL_STRIDE + k; 0 is background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .skeleton import FACE_THRESHOLDS, HEAD_ASPECT, P, Bodies, face_directions, forward_kinematics, to_world

LABEL_STRIDE = 32
SHIFT = 4  # cv2 sub-pixel bits
ONE = 1 << SHIFT

# Part labels (1-based; 0 = nothing).
PARTS = ("torso", "neck", "face", "hair", "l_upper_arm", "r_upper_arm", "l_forearm", "r_forearm",
         "l_hand", "r_hand", "l_thigh", "r_thigh", "l_shin", "r_shin", "l_foot", "r_foot",
         "features", "ear")
PART = {name: i + 1 for i, name in enumerate(PARTS)}
NUM_LABELS = len(PARTS) + 1
HEAD_GROUP = ("face", "hair", "features", "ear")

# Capsules: (part, from point, to point, radius key).
CAPSULES = tuple(
    (f"{s[0]}_{part}", f"{s}_{a}", f"{s}_{b}", key)
    for s in ("left", "right")
    for part, a, b, key in (("upper_arm", "shoulder", "elbow", "upper_arm"), ("forearm", "elbow", "wrist", "forearm"),
                            ("hand", "wrist", "hand", "hand"), ("thigh", "hip", "knee", "thigh"),
                            ("shin", "knee", "ankle", "shin"), ("foot", "ankle", "toe", "foot"))
) + (("neck", "neck", "head_bottom", "neck"),)

# Ground-truth joints: COCO-17 then head_top, head_bottom (for PoseTrack18).
GT_JOINTS = tuple(range(17)) + (P["head_top"], P["head_bottom"])
NUM_GT = len(GT_JOINTS)


def _joint_parts() -> np.ndarray:
    """Boolean (NUM_GT, NUM_LABELS): which of its own parts may cover a joint for it to count as visible."""
    allowed = np.zeros((NUM_GT, NUM_LABELS), bool)
    head = [PART[p] for p in HEAD_GROUP]
    for j in range(5):
        allowed[j, head] = True
    allowed[17, head] = True
    allowed[18, head + [PART["neck"]]] = True
    for side in ("left", "right"):
        s = side[0]
        for joint, parts in (("shoulder", ("torso", f"{s}_upper_arm")), ("elbow", (f"{s}_upper_arm", f"{s}_forearm")),
                             ("wrist", (f"{s}_forearm", f"{s}_hand")), ("hip", ("torso", f"{s}_thigh")),
                             ("knee", (f"{s}_thigh", f"{s}_shin")), ("ankle", (f"{s}_shin", f"{s}_foot"))):
            allowed[P[f"{side}_{joint}"], [PART[p] for p in parts]] = True
    return allowed


JOINT_PARTS = _joint_parts()

# Materials: which colour of the person's look each part takes.
SKIN, SHIRT, PANTS, SHOES, HAIR, DARK = range(6)


@dataclass
class Looks:
    """Per-person appearance (rows): colours (P, 6, 3) float32 BGR for the materials above,
    per-part brightness (P, NUM_LABELS), clothing pattern ids (P, 2) shirt/pants, and style flags."""

    colours: np.ndarray
    part_gain: np.ndarray
    patterns: np.ndarray
    long_sleeves: np.ndarray
    shorts: np.ndarray
    bald: np.ndarray

    def __len__(self) -> int:
        return len(self.colours)

    def take(self, idx) -> "Looks":
        return Looks(**{k: v[idx] for k, v in self.__dict__.items()})

    def luts(self) -> np.ndarray:
        """(P, NUM_LABELS, 3) float32 colour of every part label."""
        n = len(self)
        material = np.zeros((n, NUM_LABELS), int)
        material[:, [PART[p] for p in ("neck", "face", "l_hand", "r_hand", "ear")]] = SKIN
        material[:, [PART[p] for p in ("torso", "l_upper_arm", "r_upper_arm")]] = SHIRT
        material[:, [PART[p] for p in ("l_thigh", "r_thigh")]] = PANTS
        material[:, [PART[p] for p in ("l_foot", "r_foot")]] = SHOES
        material[:, PART["hair"]] = HAIR
        material[:, PART["features"]] = DARK
        for p in ("l_forearm", "r_forearm"):
            material[:, PART[p]] = np.where(self.long_sleeves, SHIRT, SKIN)
        for p in ("l_shin", "r_shin"):
            material[:, PART[p]] = np.where(self.shorts, SKIN, PANTS)
        lut = np.take_along_axis(self.colours, material[:, :, None], axis=1) * self.part_gain[:, :, None]
        lut[:, 0] = 0
        return np.clip(lut, 0, 255).astype(np.float32)

    def cloth_mask(self) -> np.ndarray:
        """(P, NUM_LABELS) int: 0 no pattern, 1 shirt pattern, 2 pants pattern."""
        n = len(self)
        m = np.zeros((n, NUM_LABELS), int)
        m[:, [PART["torso"], PART["l_upper_arm"], PART["r_upper_arm"]]] = 1
        m[:, [PART["l_thigh"], PART["r_thigh"]]] = 2
        for p in ("l_forearm", "r_forearm"):
            m[:, PART[p]] = np.where(self.long_sleeves, 1, 0)
        for p in ("l_shin", "r_shin"):
            m[:, PART[p]] = np.where(self.shorts, 0, 2)
        return m


# Skin tones (BGR), light to dark; each person gets one, jittered.
_SKIN = np.array([[205, 220, 245], [170, 195, 235], [140, 175, 220], [105, 140, 195], [75, 105, 160],
                  [50, 75, 120], [40, 55, 85]], np.float32)
_HAIR = np.array([[20, 20, 25], [30, 40, 60], [40, 70, 110], [90, 140, 190], [160, 160, 165],
                  [30, 50, 140]], np.float32)


def _random_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    hsv = np.stack([rng.integers(0, 180, n), rng.integers(0, 256, n), rng.integers(30, 256, n)], 1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2BGR)[0].astype(np.float32)


def sample_looks(rng: np.random.Generator, n: int, num_patterns: int) -> Looks:
    colours = np.zeros((n, 6, 3), np.float32)
    colours[:, SKIN] = _SKIN[rng.integers(0, len(_SKIN), n)] * rng.uniform(0.9, 1.1, (n, 1))
    colours[:, SHIRT] = _random_colours(rng, n)
    colours[:, PANTS] = _random_colours(rng, n)
    colours[:, SHOES] = _random_colours(rng, n) * 0.5
    colours[:, HAIR] = _HAIR[rng.integers(0, len(_HAIR), n)] * rng.uniform(0.8, 1.2, (n, 1))
    colours[:, DARK] = rng.uniform(10, 40, (n, 1))
    return Looks(
        colours=colours,
        part_gain=rng.uniform(0.82, 1.08, (n, NUM_LABELS)).astype(np.float32),
        patterns=rng.integers(0, num_patterns, (n, 2)),
        long_sleeves=rng.random(n) < 0.55, shorts=rng.random(n) < 0.25, bald=rng.random(n) < 0.08,
    )


@dataclass
class Placed:
    """Posed people in image space (rows): points (P, NUM_POINTS, 2) px, local depth (P, NUM_POINTS)
    px (larger = farther), per-person depth for ordering, px scale, face cosines (P, 5)."""

    points: np.ndarray
    local_z: np.ndarray
    depth: np.ndarray
    scale: np.ndarray
    yaw: np.ndarray
    face_cos: np.ndarray
    bodies: Bodies

    def take(self, idx) -> "Placed":
        return Placed(**{k: (v.take(idx) if k == "bodies" else v[idx]) for k, v in self.__dict__.items()})


def place(bodies: Bodies, angles: dict[str, np.ndarray], yaw: np.ndarray, lift: np.ndarray,
          foot_xy: np.ndarray, scale: np.ndarray, depth: np.ndarray) -> Placed:
    """Pose and place people: the lowest foot point stands at foot_xy (P,2) (raised by `lift`
    body heights), one body height spans `scale` (P,) px."""
    world = to_world(forward_kinematics(bodies, angles), yaw)
    feet = [P["left_ankle"], P["right_ankle"], P["left_toe"], P["right_toe"]]
    ground = world[:, feet, 1].min(axis=1) - 0.03 * bodies.build
    s = scale[:, None]
    x = foot_xy[:, :1] + s * world[..., 0]
    y = foot_xy[:, 1:2] - s * (world[..., 1] - ground[:, None] + lift[:, None])
    return Placed(points=np.stack([x, y], -1), local_z=s * world[..., 2], depth=np.asarray(depth, float),
                  scale=np.asarray(scale, float), yaw=yaw, face_cos=face_directions(angles, yaw), bodies=bodies)


def _fix(p) -> tuple[int, int]:
    return int(round(p[0] * ONE)), int(round(p[1] * ONE))


def _draw_person(lab: np.ndarray, pts: np.ndarray, z: np.ndarray, radii: dict[str, float], head_r: float,
                 chest: float, yaw: float, face_ok: np.ndarray, bald: bool) -> None:
    """Paint one person's part labels into `lab` (ROI coordinates), far parts first."""
    items = []  # (depth, order, draw-callable)
    # Torso: convex hull of shoulders and hips pushed forward and back by the chest depth.
    fwd = np.array([np.sin(yaw), 0.0])  # image-plane component of the forward axis per unit
    corners = pts[[P["left_shoulder"], P["right_shoulder"], P["right_hip"], P["left_hip"]]]
    hull_pts = np.concatenate([corners + chest * fwd, corners - chest * fwd])
    hull = cv2.convexHull(np.round(hull_pts * ONE).astype(np.int32))
    torso_z = z[[P["left_shoulder"], P["right_shoulder"], P["left_hip"], P["right_hip"]]].mean()
    items.append((torso_z, 0, lambda: cv2.fillConvexPoly(lab, hull, PART["torso"], cv2.LINE_8, SHIFT)))
    for part, a, b, key in CAPSULES:
        ia, ib = P[a], P[b]
        thick = max(2, int(round(2 * radii[key])))
        pa, pb = _fix(pts[ia]), _fix(pts[ib])
        items.append(((z[ia] + z[ib]) / 2, 1,
                      lambda pa=pa, pb=pb, t=thick, v=PART[part]: cv2.line(lab, pa, pb, v, t, cv2.LINE_8, SHIFT)))
    # Head: skin, then hair behind or in front of the face by depth, then the face features.
    hc = pts[P["head_center"]]
    hz = z[P["head_center"]]
    fx, fz = np.sin(yaw) * head_r, -np.cos(yaw) * head_r  # forward axis in image x and depth, px
    axes = lambda w, h: (max(1, int(round(w * head_r * ONE))), max(1, int(round(h * HEAD_ASPECT * head_r * ONE))))
    ell = lambda c, ax, v: cv2.ellipse(lab, _fix(c), ax, 0, 0, 360, v, -1, cv2.LINE_8, SHIFT)
    items.append((hz, 2, lambda: ell(hc, axes(0.92, 0.92), PART["face"])))
    if not bald:
        hair_c = hc + np.array([-0.22 * fx, -0.12 * HEAD_ASPECT * head_r])
        items.append((hz - 0.6 * fz, 3, lambda: ell(hair_c, axes(1.02, 1.0), PART["hair"])))
    face_c = hc + np.array([0.22 * fx, 0.0])
    items.append((hz + 0.6 * fz, 4, lambda: ell(face_c, axes(0.8, 0.9), PART["face"])))
    dot = max(1, int(round(0.13 * head_r)))
    for k, name in enumerate(("nose", "left_eye", "right_eye", "left_ear", "right_ear")):
        if not face_ok[k]:
            continue
        c = pts[P[name]]
        if k < 3:
            items.append((hz + 0.6 * fz, 5, lambda c=c, r=dot: cv2.circle(lab, _fix(c), r * ONE, PART["features"], -1, cv2.LINE_8, SHIFT)))
        else:
            items.append((hz, 5, lambda c=c: ell(c, axes(0.18, 0.25), PART["ear"])))
    # Far to near; on ties the listed order wins (torso under limbs, face over hair, features last).
    for _, _, draw in sorted(items, key=lambda it: (-it[0], it[1])):
        draw()


def render_people(frame: np.ndarray, labels: np.ndarray, placed: Placed, looks: Looks) -> np.ndarray:
    """Paint people far to near into frame (H,W,3 uint8) and labels (H,W int16), in place.

    Person row p gets label slot p + 1. Returns each person's drawing window (P, 4) int
    x0, y0, x1, y1 (empty when off-frame).
    """
    from .scene import TILE, tiled_patterns

    h, w = labels.shape
    luts = np.zeros((len(looks), 256, 1, 3), np.uint8)
    luts[:, :NUM_LABELS, 0] = np.round(looks.luts()).astype(np.uint8)
    cloth = np.zeros((len(looks), 256), np.uint8)
    cloth[:, :NUM_LABELS] = looks.cloth_mask()
    tiles = tiled_patterns(h, w)
    b = placed.bodies
    radii = {k: v * placed.scale for k, v in b.radii.items()}
    head_r = b.head_r * placed.scale
    chest = b.chest_depth * placed.scale
    face_ok = placed.face_cos > FACE_THRESHOLDS + 0.1
    windows = np.zeros((len(head_r), 4), int)
    for p in np.argsort(-placed.depth, kind="stable"):
        pts = placed.points[p]
        pad = 1.35 * HEAD_ASPECT * head_r[p] + max(r[p] for r in radii.values()) + 3
        x0 = max(0, int(np.floor(pts[:, 0].min() - pad)))
        y0 = max(0, int(np.floor(pts[:, 1].min() - pad)))
        x1 = min(w, int(np.ceil(pts[:, 0].max() + pad)) + 1)
        y1 = min(h, int(np.ceil(pts[:, 1].max() + pad)) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        windows[p] = x0, y0, x1, y1
        lab = np.zeros((y1 - y0, x1 - x0), np.uint8)
        _draw_person(lab, pts - (x0, y0), placed.local_z[p], {k: r[p] for k, r in radii.items()},
                     head_r[p], chest[p], placed.yaw[p], face_ok[p], bool(looks.bald[p]))
        mask = lab > 0
        if not mask.any():
            continue
        colour = cv2.LUT(cv2.merge([lab, lab, lab]), luts[p])
        # Clothing texture moves with the person: its phase is fixed relative to the pelvis.
        ax, ay = np.round(pts[P["pelvis"]]).astype(int)
        oy, ox = (y0 - ay) % TILE, (x0 - ax) % TILE
        win = np.s_[oy:oy + y1 - y0, ox:ox + x1 - x0]
        which = cloth[p][lab]
        shade = np.where(which == 1, tiles[looks.patterns[p, 0]][win],
                         np.where(which == 2, tiles[looks.patterns[p, 1]][win], 255)).astype(np.uint8)
        # Rounded look: each part darkens towards its outline (distance to the nearest part
        # boundary), which also leaves dark seams where overlapping limbs meet.
        edge = np.zeros_like(mask)
        edge[1:] |= lab[1:] != lab[:-1]
        edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        inner = (mask & ~edge).astype(np.uint8)
        dist = cv2.distanceTransform(inner, cv2.DIST_L2, 3)
        falloff = max(1.5, 0.035 * placed.scale[p])
        roundness = 0.55 + 0.45 * np.minimum(1.0, dist / falloff)
        shade = (shade * roundness).astype(np.uint8)
        colour = cv2.multiply(colour, cv2.merge([shade, shade, shade]), scale=1 / 255)
        np.copyto(frame[y0:y1, x0:x1], colour, where=mask[..., None])
        np.copyto(labels[y0:y1, x0:x1], lab.astype(np.int16) + np.int16((p + 1) * LABEL_STRIDE), where=mask)
    return windows


def visible_boxes(labels: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes (P, 4) float32 xywh around each person's visible pixels, and their areas (P,)."""
    boxes = np.zeros((len(windows), 4), np.float32)
    areas = np.zeros(len(windows), np.float32)
    for p, (x0, y0, x1, y1) in enumerate(windows):
        if x1 <= x0:
            continue
        mine = labels[y0:y1, x0:x1] // LABEL_STRIDE == p + 1
        area = int(np.count_nonzero(mine))
        if area == 0:
            continue
        cols = np.flatnonzero(mine.any(axis=0))
        rows = np.flatnonzero(mine.any(axis=1))
        boxes[p] = x0 + cols[0], y0 + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
        areas[p] = area
    return boxes, areas


def frame_pixels(xy: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest pixel column and row (ints) of each point (..., 2), and whether it lies in the frame."""
    xi = np.round(xy[..., 0]).astype(int)
    yi = np.round(xy[..., 1]).astype(int)
    return xi, yi, (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)


def visibility(placed: Placed, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth joints (P, NUM_GT, 2) float32 and flags (P, NUM_GT) int: 2 visible, 1 occluded
    (inside the frame but covered, by others or by the person's own parts), 0 outside the frame
    or (face points) turned away from the camera."""
    h, w = labels.shape
    xy = placed.points[:, GT_JOINTS].astype(np.float32)
    n = len(xy)
    xi, yi, inside = frame_pixels(xy, w, h)
    lab = labels[yi.clip(0, h - 1), xi.clip(0, w - 1)].astype(int)
    own = lab // LABEL_STRIDE == (np.arange(n) + 1)[:, None]
    part_ok = JOINT_PARTS[np.arange(NUM_GT)[None, :], lab % LABEL_STRIDE]
    vis = np.where(inside, np.where(own & part_ok, 2, 1), 0)
    vis[:, :5] = np.where(placed.face_cos > FACE_THRESHOLDS, vis[:, :5], 0)
    return xy, vis
