"""The tracker's table of live tracks: one row per track, every per-track field declared once here."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from tracker.tracking.kalman import ConstantVelocityBank

__all__ = ["TrackTable", "NEVER"]

NEVER = np.iinfo(np.int32).max // 2   # joint_unseen of a joint never measured (room to count on)


@dataclass
class TrackTable:
    ids: np.ndarray             # (T,) int64; -1 until the track is confirmed
    state: np.ndarray           # (T,) int8 TrackState
    hits: np.ndarray            # (T,) int32 frames matched in a row
    since_update: np.ndarray    # (T,) int32 frames since the last match; 0 when matched this frame
    score: np.ndarray           # (T,) float32 detection score of the last match
    joint_score: np.ndarray     # (T,J) float32 joint scores of the last match
    raw: np.ndarray             # (T,J,3) float32 this frame's matched detection (labels fixed); NaN if none
    joint_unseen: np.ndarray    # (T,J) int32 frames since each joint was measured; 0 this frame, NEVER if not yet
    appearance: np.ndarray      # (T,P,3) float32 running Lab colour of each body part (appearance.py); NaN unknown
    appearance_n: np.ndarray    # (T,P) int32 samples behind each part's colour
    born_at: np.ndarray         # (T,) float64 time (s) of the first detection
    seen_at: np.ndarray         # (T,) float64 time (s) of the last match
    seen_height: np.ndarray     # (T,) float32 box height (px) of the last match
    pose_age: np.ndarray        # (T,) int32 frames since the pose was last estimated; 0 this frame
    posed_offsets: np.ndarray   # (T,J,2) float32 the joints' filtered offsets from the centre then
    filters: ConstantVelocityBank  # (T,D) Kalman filters: box, pose centre, joint offsets (see tracker.py)

    @classmethod
    def started(cls, state: int, filters: ConstantVelocityBank, score: np.ndarray, keypoints: np.ndarray,
                measured: np.ndarray, offsets: np.ndarray, appearance: np.ndarray, now: float) -> "TrackTable":
        """Rows for tracks born at time `now` from detections (score (N,), keypoints (N,J,3), which
        joints were measured (N,J), their offsets from the pose centre (N,J,2), part colours
        (N,P,3)): one hit, no id yet."""
        n = len(filters)
        return cls(ids=np.full(n, -1, np.int64), state=np.full(n, state, np.int8), hits=np.ones(n, np.int32),
                   since_update=np.zeros(n, np.int32), score=np.asarray(score, np.float32),
                   joint_score=np.asarray(keypoints[:, :, 2], np.float32),
                   raw=np.asarray(keypoints, np.float32),
                   joint_unseen=np.where(measured, 0, NEVER).astype(np.int32),
                   appearance=np.asarray(appearance, np.float32),
                   appearance_n=np.isfinite(appearance).all(axis=-1).astype(np.int32),
                   born_at=np.full(n, now), seen_at=np.full(n, now),
                   seen_height=np.asarray(filters.pos[:, 3], np.float32), pose_age=np.zeros(n, np.int32),
                   posed_offsets=np.asarray(offsets, np.float32), filters=filters)

    @classmethod
    def empty(cls, num_joints: int, filter_dims: int, num_parts: int) -> "TrackTable":
        return cls.started(0, ConstantVelocityBank(np.zeros((0, filter_dims)), 0.0, 0.0), np.zeros(0),
                           np.zeros((0, num_joints, 3)), np.zeros((0, num_joints), bool),
                           np.zeros((0, num_joints, 2)), np.zeros((0, num_parts, 3)), 0.0)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def select(self, rows: np.ndarray) -> "TrackTable":
        """The table of the given rows (indices or a boolean mask)."""
        return TrackTable(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def concatenate(self, other: "TrackTable") -> "TrackTable":
        """This table's rows followed by `other`'s."""
        def join(a, b):
            return ConstantVelocityBank.concatenate([a, b]) if isinstance(a, ConstantVelocityBank) \
                else np.concatenate([a, b])
        return TrackTable(**{f.name: join(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})
