"""Online multi-person pose tracker: one `update()` per frame, tracks held as rows of arrays.

Per frame:
1. every track's Kalman filters predict to the frame's timestamp. All are constant-velocity
   filters: on the box (cx, cy, w, h), on the pose centre, and on each joint's offset from that
   centre. Splitting a joint into "where the body is" (measured by all joints at once, so with
   little noise, and allowed to accelerate) and "where the limb is relative to the body" (allowed
   less acceleration) smooths hard with little lag;
2. high-score detections are matched to confirmed tracks (tracked or lost) by OKS + IoU with an
   optimal, gated assignment; still-unmatched tracked tracks may take low-score detections
   (ByteTrack's second stage); tentative tracks take what high-score detections are left;
3. matched tracks update their filters, with each joint's measurement noise grown as its score
   falls, so weak joints lean on the prediction; unobserved joints keep the prediction;
4. lifecycle: a tentative track is confirmed after `min_hits` consecutive hits and only then gets
   an id (ids count up per tracker and are never reused); a tentative track that misses a frame
   is dropped; a confirmed track that misses becomes lost, keeps predicting, and is recovered
   when a detection appears near its predicted pose or, as the prediction grows uncertain,
   within that uncertainty of its predicted place; after `lost_buffer` frames it is removed.

Time is measured in frames of `frame_period` seconds, so irregular timestamps stretch the
prediction step. Noise levels are fractions of the person's box height, so they hold at any scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.errors import UserError
from engines.schemas import get_schema
from tracker.tracking.association import gated_assignment, pose_similarity
from tracker.tracking.kalman import ConstantVelocityBank

__all__ = ["TrackerConfig", "TrackBatch", "PoseTracker", "TENTATIVE", "TRACKED", "LOST"]

TENTATIVE, TRACKED, LOST = 0, 1, 2
_BOX_DIMS = 4  # cx, cy, w, h
_POSE = _BOX_DIMS + 2  # then the pose centre x, y, then each joint's offset from that centre
_CHI2_99_2D = 9.21


@dataclass
class TrackerConfig:
    schema: str = "coco17"             # joint order of the keypoints (OKS sigmas, flip pairs)
    high_score: float = 0.5            # detections at or above take part in the first stage
    low_score: float = 0.1             # below this a detection is ignored
    new_track_score: float = 0.6       # an unmatched detection starts a track at or above this
    min_similarity: float = 0.3        # gate of the first and third stages
    low_min_similarity: float = 0.5    # gate of the low-score stage (stricter: weak detections)
    oks_weight: float = 0.7            # similarity = w * OKS + (1 - w) * IoU
    joint_score_thresh: float = 0.2    # joints below this are left out of OKS and of filter updates
    flip_robust: bool = True           # also try the left/right-swapped detection; fix labels if it wins
    min_hits: int = 3                  # consecutive hits before a track is confirmed
    lost_buffer: int = 30              # frames a lost track is kept for recovery
    output_coast_frames: int = 0       # lost tracks are reported (predicted) for this many frames
    frame_period: float = 1 / 30       # seconds per frame; timestamps are converted with it
    box_noise: float = 0.03            # box measurement std, fraction of box height
    keypoint_noise: float = 0.01       # keypoint measurement std at score 1, fraction of box height
    accel_noise: float = 0.01          # box and pose-centre acceleration std per frame^2, fraction of box height
    pose_accel_noise: float = 0.003    # acceleration std of joint offsets from the centre, same units
    velocity_init: float = 0.05        # initial velocity std per frame, fraction of box height


@dataclass
class TrackBatch:
    """The tracks reported for one frame, one row each."""

    ids: np.ndarray                 # (T,) int64, unique, never reused
    boxes: np.ndarray               # (T,5) float32 smoothed xyxy + detection score
    keypoints: np.ndarray           # (T,J,3) float32 smoothed x, y and the last observed joint score
    keypoints_raw: np.ndarray       # (T,J,3) float32 this frame's detection (left/right fixed); NaN if unobserved
    states: np.ndarray              # (T,) int8 TENTATIVE / TRACKED / LOST
    frames_since_update: np.ndarray  # (T,) int32, 0 when observed this frame

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class PoseTracker:
    """Tracks the people of one video source; make one per source."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        schema = get_schema(self.config.schema)
        self.num_joints = schema.num_joints
        self._sigmas = schema.sigmas_array
        self._flip = schema.flip_permutation() if self.config.flip_robust else None
        self._next_id = 1
        self._last_time: float | None = None
        self.frame_index = -1
        j = self.num_joints
        self._ids = np.zeros(0, np.int64)
        self._state = np.zeros(0, np.int8)
        self._hits = np.zeros(0, np.int32)
        self._since = np.zeros(0, np.int32)
        self._score = np.zeros(0, np.float32)
        self._joint_conf = np.zeros((0, j), np.float32)
        self._raw = np.zeros((0, j, 3), np.float32)
        self._bank = ConstantVelocityBank(np.zeros((0, _POSE + 2 * j)), 0.0, 0.0)
        self._accel_frac = np.concatenate([np.full(_POSE, self.config.accel_noise),
                                           np.full(2 * j, self.config.pose_accel_noise)])

    # ------------------------------------------------------------------------------- public

    def update(self, boxes: np.ndarray, keypoints: np.ndarray, timestamp: float | None = None) -> TrackBatch:
        """Feed one frame's detections (boxes (N,5) xyxy+score, keypoints (N,J,3)); get the reported tracks."""
        cfg = self.config
        boxes, keypoints = self._sanitize(boxes, keypoints)
        self.frame_index += 1
        self._predict(self._step(timestamp))
        self._raw[:] = np.nan

        pred_boxes, pred_kpts = self._predicted_pose()
        det_score = boxes[:, 4]
        high = np.flatnonzero(det_score >= cfg.high_score)
        low = np.flatnonzero((det_score >= cfg.low_score) & (det_score < cfg.high_score))
        confirmed = np.flatnonzero(self._state != TENTATIVE)
        tentative = np.flatnonzero(self._state == TENTATIVE)

        none = np.zeros(0, np.int64)
        matched_tracks, matched_dets, flips = [none], [none], [np.zeros(0, bool)]

        def stage(track_rows, det_rows, gate):
            if track_rows.size == 0 or det_rows.size == 0:
                return track_rows, det_rows
            sim, flipped = pose_similarity(pred_boxes[track_rows], pred_kpts[track_rows], boxes[det_rows],
                                           keypoints[det_rows], self._sigmas, self._flip, cfg.oks_weight,
                                           cfg.joint_score_thresh)
            lost = self._state[track_rows] == LOST
            if lost.any():
                sim[lost] = np.maximum(sim[lost], self._recovery_similarity(track_rows[lost], boxes[det_rows]))
            m, ut, ud = gated_assignment(sim, gate)
            matched_tracks.append(track_rows[m[:, 0]])
            matched_dets.append(det_rows[m[:, 1]])
            flips.append(flipped[m[:, 0], m[:, 1]])
            return track_rows[ut], det_rows[ud]

        left_tracks, left_high = stage(confirmed, high, cfg.min_similarity)
        still_tracked = left_tracks[self._state[left_tracks] == TRACKED]
        stage(still_tracked, low, cfg.low_min_similarity)
        _, left_high = stage(tentative, left_high, cfg.min_similarity)

        rows = np.concatenate(matched_tracks)
        dets = np.concatenate(matched_dets)
        flip = np.concatenate(flips)
        det_kpts = keypoints[dets]
        if self._flip is not None and flip.any():
            det_kpts[flip] = det_kpts[flip][:, self._flip]
        self._correct(rows, boxes[dets], det_kpts)
        self._advance_lifecycle(rows)
        starters = left_high[det_score[left_high] >= cfg.new_track_score]
        self._start_tracks(boxes[starters], keypoints[starters])
        return self._report()

    @property
    def num_live_tracks(self) -> int:
        return int(self._ids.shape[0])

    # ---------------------------------------------------------------------------- internals

    def _sanitize(self, boxes, keypoints) -> tuple[np.ndarray, np.ndarray]:
        """Drop detections with unusable boxes; NaN joints become unobserved (score 0)."""
        j = self.num_joints
        boxes = np.asarray(boxes, np.float32) if np.size(boxes) else np.zeros((0, 5), np.float32)
        keypoints = (np.asarray(keypoints, np.float32) if np.size(keypoints)
                     else np.zeros((0, j, 3), np.float32))
        shapes_ok = (boxes.ndim == 2 and boxes.shape[1] == 5 and keypoints.ndim == 3
                     and keypoints.shape[1:] == (j, 3) and keypoints.shape[0] == boxes.shape[0])
        if not shapes_ok:
            raise UserError(f"tracker expects boxes (N,5) and keypoints (N,{j},3) for schema "
                            f"{self.config.schema}; got {boxes.shape} and {keypoints.shape}")
        usable = (np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
        boxes, keypoints = boxes[usable], keypoints[usable].copy()
        bad = ~np.all(np.isfinite(keypoints), axis=2)
        keypoints[bad] = 0.0
        return boxes, keypoints

    def _step(self, timestamp: float | None) -> float:
        """Frames elapsed since the previous update (1 without timestamps)."""
        if timestamp is None:
            return 1.0
        timestamp = float(timestamp)
        if self._last_time is None:
            self._last_time = timestamp
            return 1.0
        if timestamp < self._last_time:
            raise UserError(f"tracker timestamps must not go back in time ({timestamp} after {self._last_time})")
        dt = (timestamp - self._last_time) / self.config.frame_period
        self._last_time = timestamp
        return dt

    def _heights(self) -> np.ndarray:
        return np.maximum(self._bank.pos[:, 3], 1.0)

    def _predict(self, dt: float) -> None:
        if self._ids.size == 0:
            return
        accel_var = (self._accel_frac[None, :] * self._heights()[:, None]) ** 2
        self._bank.predict(dt, accel_var)

    def _predicted_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pos = self._bank.pos
        cx, cy, w, h = pos[:, 0], pos[:, 1], np.maximum(pos[:, 2], 1.0), np.maximum(pos[:, 3], 1.0)
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, self._score], axis=1)
        joints = pos[:, None, _BOX_DIMS:_POSE] + pos[:, _POSE:].reshape(-1, self.num_joints, 2)
        kpts = np.concatenate([joints, self._joint_conf[:, :, None]], axis=2)
        return boxes.astype(np.float32), kpts.astype(np.float32)

    def _recovery_similarity(self, rows: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
        """(L,D) how well each lost track's predicted place explains each detection, in [0,1].

        A lost track's prediction grows uncertain (a person may stop or turn while hidden), so
        besides OKS/IoU it is matched by the detection's box centre within the filter's own
        uncertainty: 1 - m / 9.21, with m the squared Mahalanobis distance and 9.21 the 99%
        chi-square bound for 2 dimensions, times the ratio of box heights (a person does not
        change size while hidden).
        """
        bank, cfg = self._bank, self.config
        h = np.maximum(bank.pos[rows, 3], 1.0)
        var = bank.p00[rows, :2] + ((cfg.box_noise * h) ** 2)[:, None]              # (L,2)
        det_centre = (det_boxes[:, :2] + det_boxes[:, 2:4]) / 2                      # (D,2)
        d2 = (det_centre[None, :, :] - bank.pos[rows, None, :2]) ** 2 / var[:, None, :]
        det_h = np.maximum(det_boxes[:, 3] - det_boxes[:, 1], 1.0)
        size = np.minimum(det_h[None, :] / h[:, None], h[:, None] / det_h[None, :])
        return np.clip(1.0 - d2.sum(axis=2) / _CHI2_99_2D, 0.0, 1.0) * size

    def _measurement(self, boxes: np.ndarray, kpts: np.ndarray, offsets: np.ndarray | None):
        """Filter measurements z, their variances and which coordinates were observed.

        Each observed joint minus its predicted offset (`offsets` (N,J,2), None for a new track:
        zero) is one estimate of the pose centre; their inverse-variance mean is the centre
        measurement, and the joints' offsets are measured from it. A person with no usable joint
        measures the centre at the box centre.
        """
        cfg = self.config
        n, j = kpts.shape[:2]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        box_centre = np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2], axis=1).astype(np.float64)
        score = kpts[:, :, 2].astype(np.float64)
        observed_joint = score >= cfg.joint_score_thresh
        weight = np.where(observed_joint, score ** 2, 0.0)       # inverse variance, up to a common factor
        total = weight.sum(axis=1)
        xy = kpts[:, :, :2].astype(np.float64)
        estimates = xy - (offsets if offsets is not None else 0.0)
        centre = np.where(total[:, None] > 0,
                          (estimates * weight[:, :, None]).sum(axis=1) / np.maximum(total, 1e-12)[:, None],
                          box_centre)
        kp_var = (cfg.keypoint_noise * h[:, None]) ** 2 / np.maximum(score, cfg.joint_score_thresh) ** 2
        centre_var = np.where(total > 0, (cfg.keypoint_noise * h) ** 2 / np.maximum(total, 1e-12),
                              (cfg.box_noise * h) ** 2)
        z = np.concatenate([box_centre, np.stack([w, h], axis=1), centre,
                            (xy - centre[:, None, :]).reshape(n, -1)], axis=1)
        var = np.concatenate([np.repeat(((cfg.box_noise * h) ** 2)[:, None], _BOX_DIMS, axis=1),
                              np.repeat(centre_var[:, None], 2, axis=1), np.repeat(kp_var, 2, axis=1)], axis=1)
        observed = np.concatenate([np.ones((n, _POSE), bool), np.repeat(observed_joint, 2, axis=1)], axis=1)
        return z, var, observed

    def _correct(self, rows: np.ndarray, boxes: np.ndarray, kpts: np.ndarray) -> None:
        if rows.size == 0:
            return
        bank = self._bank
        z, var, observed = self._measurement(boxes, kpts, bank.pos[rows, _POSE:].reshape(len(rows), -1, 2))
        # one masked update over all tracks: rows without a detection are simply not observed
        full_z, full_var = np.zeros_like(bank.pos), np.ones_like(bank.pos)
        full_observed = np.zeros(bank.pos.shape, bool)
        full_z[rows], full_var[rows], full_observed[rows] = z, var, observed
        bank.update(full_z, full_var, full_observed)
        self._score[rows] = boxes[:, 4]
        self._joint_conf[rows] = kpts[:, :, 2]
        self._raw[rows] = kpts

    def _advance_lifecycle(self, matched: np.ndarray) -> None:
        cfg = self.config
        hit = np.zeros(self._ids.shape[0], bool)
        hit[matched] = True
        self._hits = np.where(hit, self._hits + 1, self._hits)
        self._since = np.where(hit, 0, self._since + 1).astype(np.int32)
        confirm = hit & (self._state == TENTATIVE) & (self._hits >= cfg.min_hits)
        self._assign_ids(confirm)
        self._state[hit & (self._state == LOST)] = TRACKED
        self._state[~hit & (self._state == TRACKED)] = LOST
        keep = ~((~hit & (self._state == TENTATIVE)) | ((self._state == LOST) & (self._since > cfg.lost_buffer)))
        if not keep.all():
            self._keep_rows(keep)

    def _assign_ids(self, confirm: np.ndarray) -> None:
        n = int(confirm.sum())
        if n:
            self._ids[confirm] = np.arange(self._next_id, self._next_id + n)
            self._next_id += n
            self._state[confirm] = TRACKED

    def _keep_rows(self, keep: np.ndarray) -> None:
        for name in ("_ids", "_state", "_hits", "_since", "_score", "_joint_conf", "_raw"):
            setattr(self, name, getattr(self, name)[keep])
        self._bank = self._bank.take(keep)

    def _start_tracks(self, boxes: np.ndarray, kpts: np.ndarray) -> None:
        n = len(boxes)
        if n == 0:
            return
        cfg = self.config
        z, var, observed = self._measurement(boxes, kpts, None)
        h = np.maximum(z[:, 3:4], 1.0)
        # An unobserved joint starts at the pose centre with a large variance, so its first real
        # measurement takes over at once.
        z = np.where(observed, z, 0.0)
        var = np.where(observed, var, (h * 10.0) ** 2)
        new = ConstantVelocityBank(z, var, (cfg.velocity_init * h) ** 2)
        self._bank.append(new)
        self._ids = np.concatenate([self._ids, np.full(n, -1, np.int64)])
        self._state = np.concatenate([self._state, np.full(n, TENTATIVE, np.int8)])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int32)])
        self._since = np.concatenate([self._since, np.zeros(n, np.int32)])
        self._score = np.concatenate([self._score, boxes[:, 4]])
        self._joint_conf = np.concatenate([self._joint_conf, kpts[:, :, 2]])
        self._raw = np.concatenate([self._raw, kpts])
        if cfg.min_hits <= 1:
            self._assign_ids(np.arange(self._ids.shape[0]) >= self._ids.shape[0] - n)

    def _report(self) -> TrackBatch:
        show = (self._state == TRACKED) & (self._since == 0)
        show |= (self._state == LOST) & (self._since <= self.config.output_coast_frames)
        rows = np.flatnonzero(show)
        boxes, kpts = self._predicted_pose()
        return TrackBatch(ids=self._ids[rows].copy(), boxes=boxes[rows], keypoints=kpts[rows],
                          keypoints_raw=self._raw[rows].copy(), states=self._state[rows].copy(),
                          frames_since_update=self._since[rows].copy())
