"""Drawing tracks on frames: skeletons, boxes, ids in stable per-id colours, short trails and an
FPS / per-stage latency overlay. Joints observed this frame are drawn solid; joints the tracker
only predicts (hidden behind someone, missed) as hollow rings on thin bones; hidden ones not at all."""

from __future__ import annotations

import colorsys
from collections import deque

import cv2
import numpy as np

from engines.pose.schemas import get_schema
from tracker.tracking import JointState

__all__ = ["Renderer", "track_colour"]

GOLDEN_RATIO = 0.618033988749895


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A BGR colour fixed by the id; golden-ratio hue steps keep neighbouring ids apart."""
    hue = (int(track_id) * GOLDEN_RATIO) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


class Renderer:
    """Draws one frame's TrackBatch; keeps the last `trail_length` box-bottom centres per id."""

    def __init__(self, schema: str = "coco17", trail_length: int = 20):
        self.schema = get_schema(schema)
        self.edges = np.asarray(self.schema.skeleton, dtype=np.int64).reshape(-1, 2)
        self.trail_length = trail_length
        self._trails: dict[int, deque] = {}

    def draw(self, image: np.ndarray, tracks, overlay: dict[str, float] | None = None) -> np.ndarray:
        """Draw in place on `image` (BGR uint8) and return it. overlay: label -> value lines."""
        live = set()
        for row in range(len(tracks)):
            track_id = int(tracks.ids[row])
            live.add(track_id)
            colour = track_colour(track_id)
            box = tracks.boxes[row, :4]
            if np.isfinite(box).all():
                x1, y1, x2, y2 = box.astype(int)
                cv2.rectangle(image, (x1, y1), (x2, y2), colour, 1, cv2.LINE_AA)
                cv2.putText(image, str(track_id), (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                            0.5, colour, 1, cv2.LINE_AA)
                trail = self._trails.setdefault(track_id, deque(maxlen=self.trail_length))
                trail.append((int((x1 + x2) / 2), int(y2)))
            self._draw_skeleton(image, tracks.keypoints[row], tracks.joint_states[row], colour)
        for track_id in list(self._trails):
            if track_id not in live:
                del self._trails[track_id]
            elif len(self._trails[track_id]) > 1:
                points = np.asarray(self._trails[track_id], dtype=np.int32).reshape(-1, 1, 2)
                cv2.polylines(image, [points], False, track_colour(track_id), 1, cv2.LINE_AA)
        if overlay:
            self._draw_overlay(image, overlay)
        return image

    def _draw_skeleton(self, image: np.ndarray, keypoints: np.ndarray, states: np.ndarray, colour) -> None:
        finite = np.isfinite(keypoints[:, :2]).all(axis=1)
        seen = finite & (states == JointState.OBSERVED)
        shown = finite & (states != JointState.HIDDEN)
        points = np.nan_to_num(keypoints[:, :2]).astype(np.int32)
        for a, b in self.edges[shown[self.edges[:, 0]] & shown[self.edges[:, 1]]]:
            thickness = 2 if seen[a] and seen[b] else 1
            cv2.line(image, tuple(points[a]), tuple(points[b]), colour, thickness, cv2.LINE_AA)
        for x, y in points[seen]:
            cv2.circle(image, (int(x), int(y)), 2, (255, 255, 255), -1, cv2.LINE_AA)
        for x, y in points[shown & ~seen]:
            cv2.circle(image, (int(x), int(y)), 3, (255, 255, 255), 1, cv2.LINE_AA)

    @staticmethod
    def _draw_overlay(image: np.ndarray, overlay: dict[str, float]) -> None:
        for line, (label, value) in enumerate(overlay.items()):
            text = f"{label} {value:.1f}"
            origin = (8, 18 + 16 * line)
            cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
