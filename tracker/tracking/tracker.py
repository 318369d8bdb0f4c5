"""Online multi-person pose tracker: one `update()` per frame, tracks held as rows of a table.

Per frame (`PoseTracker.update` reads in this order):
0. detections with unusable boxes go, and so does each detection whose pose is someone else's
   already found (duplicates.py: one detection per person);
1. every track's Kalman filters predict to the frame's timestamp. All are constant-velocity
   filters: on the box (cx, cy, w, h), on the pose centre, and on each joint's offset from that
   centre. Splitting a joint into "where the body is" (measured by all joints at once, so with
   little noise, and allowed to accelerate) and "where the limb is relative to the body" (allowed
   less acceleration) smooths hard with little lag;
2. association in three stages, each a gated optimal assignment on OKS + IoU: high-score
   detections with confirmed tracks (tracked or lost; a lost track also matches a detection
   within its filter's uncertainty of its predicted place, but after a fraction of a second
   lost, only someone whose clothes' colours are like its own); low-score detections with the
   tracked tracks still unmatched (ByteTrack's second stage: a half-hidden person is detected
   weakly); the high-score detections left with tentative tracks;
3. matched tracks update their filters, with each joint's measurement noise grown as its score
   falls, so weak joints lean on the prediction; unobserved joints keep the prediction (and are
   reported as predicted for `joint_coast_frames` frames, then as hidden);
4. the lifecycle state machine (lifecycle.py) moves every track on; a newly confirmed track
   whose clothing colours (appearance.py) match a person lost or gone within `reid_seconds`
   takes that person's id (re-identification), the others get new ids; removed tracks are
   remembered as departed for `reid_seconds`;
5. high-score detections nobody took start tentative tracks (confirmed ones in the first frame,
   which get their ids as in 4).

Time is measured in frames of `frame_period` seconds, so irregular timestamps stretch the
prediction step. Noise levels are fractions of the person's box height, so they hold at any scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from engines.errors import UserError
from engines.pose.schemas import get_schema
from engines.common.boxes import box_iou, usable_boxes
from tracker.tracking.appearance import PARTS, AppearanceSampler, appearance_distance, blend_appearance
from tracker.tracking.association import Matches, gated_assignment, match_rows, pose_similarity
from tracker.tracking.config import TrackerConfig
from tracker.tracking.duplicates import one_detection_per_person
from tracker.tracking.kalman import ConstantVelocityBank
from tracker.tracking.lifecycle import LOST, REMOVED, TENTATIVE, TRACKED, birth_state, next_states
from tracker.tracking.tracks import NEVER, TrackTable

__all__ = ["TrackerConfig", "TrackBatch", "PoseTracker", "JointState"]

DEFAULT_SCHEMA = "coco17"
DEFAULT_FRAME_PERIOD = 1 / 30
# Filter state layout per track: box cx, cy, w, h; then the pose centre x, y; then each joint's
# offset from that centre (x, y, joint after joint).
_BOX, _CENTRE, _JOINTS = slice(0, 4), slice(4, 6), slice(6, None)
_POSE = 6   # where the joints start
_CHI2_99_2D = 9.21
_APPEARANCE_MOMENTUM = 0.1   # weight of the newest frame in a track's running part colours
_CROWDED_IOU = 0.3           # a detection overlapping another this much mixes two people's colours
_REID_MIN_HEIGHT_RATIO = 0.5
# lost this long, a track recovers only people who look like it; over a shorter miss its motion
# prediction alone is trusted (the choice's figures: README, re-identification)
_APPEARANCE_GATE_SECONDS = 0.25
_PREDICTED_JOINT_MARGIN = 0.25   # box heights a predicted joint may lie outside its box
# pose refresh scheduling (pose_needed): a box is one tracked person's at this IoU with their
# predicted box, and nobody else is near it above _NEARBY_IOU
_CLEAR_IOU = 0.5
_NEARBY_IOU = 0.1


class JointState(IntEnum):
    """What a reported joint's position rests on this frame."""

    OBSERVED = 0    # measured this frame (joint score at least joint_score_thresh)
    PREDICTED = 1   # not measured this frame: the filter's prediction, measured in the last joint_coast_frames
    HIDDEN = 2      # not measured for longer, never, or predicted off the person's box: a guess, not to be drawn


@dataclass
class TrackBatch:
    """The tracks reported for one frame, one row each."""

    ids: np.ndarray                 # (T,) int64, unique, never reused
    boxes: np.ndarray               # (T,5) float32 smoothed xyxy + detection score
    keypoints: np.ndarray           # (T,J,3) float32 smoothed x, y and the last observed joint score
    keypoints_raw: np.ndarray       # (T,J,3) float32 this frame's detection (left/right fixed); NaN if unobserved
    states: np.ndarray              # (T,) int8 TENTATIVE / TRACKED / LOST
    frames_since_update: np.ndarray  # (T,) int32, 0 when observed this frame
    joint_states: np.ndarray        # (T,J) int8 JointState per joint

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class PoseTracker:
    """Tracks the people of one video source; make one per source."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        schema = get_schema(self.config.schema or DEFAULT_SCHEMA)
        self.schema = schema.name
        self.num_joints = j = schema.num_joints
        self._sigmas = schema.sigmas_array
        self._flip = schema.flip_permutation() if self.config.flip_robust else None
        self._frame_period = self.config.frame_period or DEFAULT_FRAME_PERIOD
        self._next_id = 1
        self._last_time: float | None = None
        self.frame_index = -1
        self.tracks = TrackTable.empty(num_joints=j, filter_dims=_POSE + 2 * j, num_parts=len(PARTS))
        # confirmed tracks removed within reid_seconds, kept for re-identification
        self.departed = TrackTable.empty(num_joints=j, filter_dims=_POSE + 2 * j, num_parts=len(PARTS))
        self._sampler = AppearanceSampler(schema.name, self.config.joint_score_thresh)
        self._accel_frac = np.concatenate([np.full(_POSE, self.config.accel_noise),
                                           np.full(2 * j, self.config.pose_accel_noise)])

    # ------------------------------------------------------------------------------- public

    def update(self, boxes: np.ndarray, keypoints: np.ndarray, timestamp: float | None = None,
               image: np.ndarray | None = None, detected: bool = True) -> TrackBatch:
        """Feed one frame's detections (boxes (N,5) xyxy+score, keypoints (N,J,3)); get the reported
        tracks. With the frame's `image` (BGR), people are also told apart by their clothes'
        colours, so someone who comes back after `lost_buffer` can get their id back.

        detected=False: no detector ran on this frame, and the boxes are this tracker's people
        followed to it (`predicted_people`, made into crops): the poses found in them are
        measured, the boxes are not, and they start nobody. A box fitted around a half-seen
        person's confident joints is smaller than the person: measured, it shrank their track
        until the next detection no longer matched it (README, "Real time on the CPU")."""
        cfg = self.config
        boxes, keypoints, posed = self._sanitize(boxes, keypoints)
        kept = one_detection_per_person(boxes, keypoints, self._sigmas, contested_oks=cfg.contested_oks,
                                        duplicate_oks=cfg.duplicate_oks, joint_score_thresh=cfg.joint_score_thresh)
        boxes, keypoints, posed = boxes[kept], keypoints[kept], posed[kept]
        appearance = self._appearance(image, boxes, keypoints)
        self.frame_index += 1
        self._predict(self._advance_clock(timestamp))
        self.tracks.raw[:] = np.nan
        self.tracks.joint_unseen = np.minimum(self.tracks.joint_unseen + 1, NEVER)
        predicted, detections = self._pose(self.tracks.filters.pos), (boxes, keypoints, posed, appearance)

        score, state = boxes[:, 4], self.tracks.state
        high = np.flatnonzero(score >= cfg.high_score)
        low = np.flatnonzero((score >= cfg.low_score) & (score < cfg.high_score))
        # 1. high-score detections with the confirmed tracks, tracked or lost
        first = self._associate(predicted, detections, np.flatnonzero(state != TENTATIVE), high, cfg.min_similarity)
        # 2. low-score detections with the tracked tracks the first stage left
        left = first.unmatched_tracks
        second = self._associate(predicted, detections, left[state[left] == TRACKED], low, cfg.low_min_similarity)
        # 3. the high-score detections left with the tentative tracks
        third = self._associate(predicted, detections, np.flatnonzero(state == TENTATIVE),
                                first.unmatched_detections, cfg.min_similarity)

        matches = Matches.concatenate([first, second, third])
        self._correct(matches, boxes, keypoints, posed, appearance, measure_boxes=detected)
        self._advance_lifecycle(matches.tracks)
        self._give_ids()
        self._drop_removed()   # the table loses rows: track row numbers from before are void
        self._forget_departed()
        unclaimed = third.unmatched_detections
        # a detection given without a pose was someone tracked (pose_needed): it starts nobody
        starters = unclaimed[(score[unclaimed] >= cfg.new_track_score) & posed[unclaimed] & detected]
        self._start_tracks(boxes[starters], keypoints[starters], appearance[starters])
        self._give_ids()       # tracks confirmed at birth: the first frame's people (min_hits 1: all)
        self._drop_removed()   # a lost track whose id such a newcomer took
        return self._report()

    def predicted_people(self, timestamp: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Where the people matched or started in the latest frame will be at `timestamp` (one
        frame on without it): boxes (N,5) xyxy + last detection score and keypoints (N,J,3) with
        the last joint scores. Tentative tracks are included: they need measurements to be
        confirmed. Lost tracks are not (nothing was seen to follow). The tracker is not changed."""
        t = self.tracks
        rows = np.flatnonzero(t.since_update == 0)
        filters = t.filters
        pos = filters.pos[rows] + self._frames_until(timestamp) * filters.vel[rows]
        return self._pose(pos, rows)

    def pose_needed(self, boxes: np.ndarray, timestamp: float | None = None) -> np.ndarray:
        """(N,) bool: which of the coming frame's detection boxes (N,5) need a pose estimate; give
        the others all-NaN keypoints in `update`, which then measures their boxes only.

        - Pose only where it is used: a box under high_score that overlaps neither a tracked
          person's predicted box nor another box can only be dropped (it can join no track, start
          none, and take part in no duplicate rule), so it needs none. This changes nothing.
        - With pose_refresh_frames over 1: a box that overlaps one tracked person's predicted box
          at IoU >= `_CLEAR_IOU` and nobody else's (no other box or tracked person within IoU
          `_NEARBY_IOU`) keeps that person's predicted pose while it is fresh: estimated less
          than pose_refresh_frames frames ago, and no joint predicted to have moved
          pose_refresh_motion of the person's height from its offset then."""
        cfg = self.config
        boxes = np.asarray(boxes, np.float32).reshape(-1, 5)
        need = np.ones(len(boxes), bool)
        t = self.tracks
        tracked = np.flatnonzero(t.state == TRACKED)
        if len(boxes) == 0:
            return need
        pos = t.filters.pos[tracked] + self._frames_until(timestamp) * t.filters.vel[tracked]
        to_tracks = box_iou(boxes, self._pose(pos, tracked)[0])
        to_boxes = box_iou(boxes, boxes)
        np.fill_diagonal(to_boxes, 0.0)
        alone = to_boxes.max(axis=1) <= 0
        need &= ~((boxes[:, 4] < cfg.high_score) & alone & (to_tracks.max(axis=1, initial=0.0) <= 0))
        if cfg.pose_refresh_frames <= 1 or len(tracked) == 0:
            return need
        height = np.maximum(pos[:, 3], 1.0)
        moved = np.linalg.norm(pos[:, _JOINTS].reshape(len(tracked), self.num_joints, 2) - t.posed_offsets[tracked], axis=2)
        fresh = (t.pose_age[tracked] + 1 < cfg.pose_refresh_frames) & (moved.max(axis=1) / height < cfg.pose_refresh_motion)
        best = to_tracks.argmax(axis=1)
        clear = (to_tracks.max(axis=1) >= _CLEAR_IOU) & ((to_tracks > _NEARBY_IOU).sum(axis=1) == 1)
        clear &= (to_boxes <= _NEARBY_IOU).all(axis=1) & ((to_tracks > _NEARBY_IOU).sum(axis=0)[best] == 1)
        return need & ~(clear & fresh[best])

    @property
    def num_live_tracks(self) -> int:
        return len(self.tracks)

    # ------------------------------------------------------------------------- the steps

    def _associate(self, predicted, detections, track_rows: np.ndarray, det_rows: np.ndarray,
                   min_similarity: float) -> Matches:
        """One association stage: the `predicted` poses (boxes, keypoints) of these tracks and
        these `detections`, matched one to one where OKS + IoU reaches `min_similarity`. A lost
        track may also match a detection within its filter's uncertainty (`_recovery_similarity`);
        once lost for over `_APPEARANCE_GATE_SECONDS`, not one whose clothes' colours differ from
        its own by over `reid_max_distance`: motion alone would hand it whoever comes in where it
        left. Reads the tracker, changes nothing."""
        if track_rows.size == 0 or det_rows.size == 0:
            return Matches.nothing(track_rows, det_rows)
        cfg = self.config
        (track_boxes, track_kpts), (det_boxes, det_kpts, posed, det_appearance) = predicted, detections
        similarity, flipped = pose_similarity(track_boxes[track_rows], track_kpts[track_rows], det_boxes[det_rows],
                                              det_kpts[det_rows], self._sigmas, self._flip, cfg.oks_weight,
                                              cfg.joint_score_thresh, posed[det_rows])
        lost = self.tracks.state[track_rows] == LOST
        if lost.any():
            similarity[lost] = np.maximum(similarity[lost],
                                          self._recovery_similarity(track_rows[lost], det_boxes[det_rows]))
            distance = appearance_distance(self.tracks.appearance[track_rows[lost]], det_appearance[det_rows])
            gone_a_while = (self._now - self.tracks.seen_at[track_rows[lost]] > _APPEARANCE_GATE_SECONDS)[:, None]
            unlike = np.isfinite(distance) & (distance > cfg.reid_max_distance)
            similarity[lost] = np.where(gone_a_while & unlike, 0.0, similarity[lost])
        return match_rows(track_rows, det_rows, similarity, flipped, min_similarity)

    def _appearance(self, image: np.ndarray | None, boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Part colours (N,P,3) of the detections; unknown (NaN) without an image, with
        re-identification off, and for people overlapping someone else (mixed colours)."""
        unknown = np.full((len(boxes), len(PARTS), 3), np.nan, np.float32)
        if image is None or self.config.reid_seconds <= 0 or len(boxes) == 0:
            return unknown
        colours = self._sampler(image, keypoints)
        if colours is None:
            return unknown
        overlap = box_iou(boxes[:, :4], boxes[:, :4])
        np.fill_diagonal(overlap, 0.0)
        colours[overlap.max(axis=1) > _CROWDED_IOU] = np.nan
        return colours

    def _correct(self, matches: Matches, boxes: np.ndarray, keypoints: np.ndarray, posed: np.ndarray,
                 appearance: np.ndarray, measure_boxes: bool = True) -> None:
        """Kalman update of the matched tracks with their detections (left/right labels fixed). A
        detection without a pose measures the box only: the pose keeps its prediction (moving the
        pose centre with the box cost 1-1.5 mAP and MOTA and made joints jerkier with poses every
        second frame, README "Real time on the CPU") and the joints' scores stay the last estimated.
        With measure_boxes False the poses alone are measured (`update`'s detected=False)."""
        rows, t = matches.tracks, self.tracks
        if rows.size == 0:
            return
        det_boxes, det_kpts, det_posed = boxes[matches.detections], keypoints[matches.detections], posed[matches.detections]
        if self._flip is not None and matches.flipped.any():
            det_kpts[matches.flipped] = det_kpts[matches.flipped][:, self._flip]
        filters = t.filters
        z, var, observed = self._measurement(det_boxes, det_kpts,
                                             filters.pos[rows, _JOINTS].reshape(len(rows), -1, 2))
        observed[~det_posed, _CENTRE] = observed[~det_posed, _JOINTS] = False
        observed[:, _BOX] &= measure_boxes
        # one masked update over all tracks: rows without a detection are simply not observed
        full_z, full_var = np.zeros_like(filters.pos), np.ones_like(filters.pos)
        full_observed = np.zeros(filters.pos.shape, bool)
        full_z[rows], full_var[rows], full_observed[rows] = z, var, observed
        filters.update(full_z, full_var, full_observed)
        t.score[rows] = det_boxes[:, 4]
        with_pose = rows[det_posed]
        t.joint_score[with_pose] = det_kpts[det_posed, :, 2]
        t.raw[with_pose] = det_kpts[det_posed]
        t.pose_age[rows] = np.where(det_posed, 0, t.pose_age[rows] + 1)
        t.posed_offsets[with_pose] = filters.pos[with_pose, _JOINTS].reshape(len(with_pose), self.num_joints, 2)
        t.joint_unseen[rows] = np.where(observed[:, _JOINTS][:, ::2], 0, t.joint_unseen[rows])
        t.appearance[rows], t.appearance_n[rows] = blend_appearance(
            t.appearance[rows], appearance[matches.detections], t.appearance_n[rows], _APPEARANCE_MOMENTUM)
        t.seen_at[rows] = self._now
        if measure_boxes:
            t.seen_height[rows] = det_boxes[:, 3] - det_boxes[:, 1]

    def _advance_lifecycle(self, matched_rows: np.ndarray) -> None:
        """Count hits and misses and move every track through the state machine."""
        t, cfg = self.tracks, self.config
        hit = np.zeros(len(t), bool)
        hit[matched_rows] = True
        t.hits = np.where(hit, t.hits + 1, t.hits)
        t.since_update = np.where(hit, 0, t.since_update + 1).astype(np.int32)
        t.state = next_states(t.state, hit, t.hits, t.since_update, cfg.min_hits, cfg.lost_buffer)

    def _drop_removed(self) -> None:
        """Removed tracks leave the table (replaced: its rows are renumbered); confirmed ones are
        remembered as departed."""
        t = self.tracks
        removed = t.state == REMOVED
        if removed.any():
            self.departed = self.departed.concatenate(t.select(removed & (t.ids >= 0)))
            self.tracks = t.select(~removed)

    def _forget_departed(self) -> None:
        """Departed people last seen over reid_seconds ago can no longer be re-identified."""
        recent = self._now - self.departed.seen_at <= self.config.reid_seconds
        if not recent.all():
            self.departed = self.departed.select(recent)

    def _start_tracks(self, boxes: np.ndarray, kpts: np.ndarray, appearance: np.ndarray) -> None:
        """New tracks from unmatched detections; their filters start at the measurement."""
        if len(boxes) == 0:
            return
        cfg = self.config
        z, var, observed = self._measurement(boxes, kpts, None)
        h = np.maximum(z[:, 3:4], 1.0)
        # An unobserved joint starts at the pose centre with a large variance, so its first real
        # measurement takes over at once.
        z = np.where(observed, z, 0.0)
        var = np.where(observed, var, (h * 10.0) ** 2)
        filters = ConstantVelocityBank(z, var, (cfg.velocity_init * h) ** 2)
        measured = observed[:, _JOINTS][:, ::2]
        # people of the first frame are confirmed at once (as ByteTrack does): there is no earlier
        # frame to confirm them against, and a single image would otherwise show no one
        min_hits = 1 if self.frame_index == 0 else cfg.min_hits
        self.tracks = self.tracks.concatenate(TrackTable.started(birth_state(min_hits), filters, boxes[:, 4],
                                                                 kpts, measured,
                                                                 z[:, _JOINTS].reshape(len(z), -1, 2),
                                                                 appearance, self._now))

    def _give_ids(self) -> None:
        """Ids for the tracks confirmed since the last call: a re-identified person's old id
        (the lost track that had it is marked removed), else new ones counting up (in row order)."""
        t = self.tracks
        confirmed = np.flatnonzero((t.ids < 0) & (t.state != TENTATIVE) & (t.state != REMOVED))
        confirmed = self._reidentify(confirmed)
        if confirmed.size:
            t.ids[confirmed] = np.arange(self._next_id, self._next_id + confirmed.size)
            self._next_id += confirmed.size

    def _reidentify(self, rows: np.ndarray) -> np.ndarray:
        """Give newly confirmed track `rows` the ids of the people they look like (lost tracks
        and departed ones, last seen within reid_seconds and before the newcomer appeared: two
        people seen at once are two people; and of a height within 2x of the newcomer's);
        returns the rows left without an id. A lost track whose id is taken ends."""
        t, cfg = self.tracks, self.config
        lost = np.flatnonzero((t.state == LOST) & (t.ids >= 0))
        if rows.size == 0 or cfg.reid_seconds <= 0 or lost.size + len(self.departed) == 0:
            return rows
        gone = self.departed
        seen_at = np.concatenate([t.seen_at[lost], gone.seen_at])
        distance = appearance_distance(t.appearance[rows], np.concatenate([t.appearance[lost], gone.appearance]))
        distance[seen_at[None, :] >= t.born_at[rows][:, None]] = np.inf
        distance[:, self._now - seen_at > cfg.reid_seconds] = np.inf
        # nor does anyone come back at under half or over twice their height within seconds
        height = np.maximum(t.seen_height[rows], 1.0)[:, None]
        before = np.maximum(np.concatenate([t.seen_height[lost], gone.seen_height]), 1.0)[None, :]
        distance[np.minimum(height / before, before / height) < _REID_MIN_HEIGHT_RATIO] = np.inf
        pairs, left, _ = gated_assignment(1.0 - distance / cfg.reid_max_distance, 1e-9)
        ids = np.concatenate([t.ids[lost], gone.ids])
        t.ids[rows[pairs[:, 0]]] = ids[pairs[:, 1]]
        from_lost = pairs[:, 1] < lost.size
        t.state[lost[pairs[from_lost, 1]]] = REMOVED
        t.ids[lost[pairs[from_lost, 1]]] = -1          # its id lives on in the newcomer: not departed
        keep = np.ones(len(gone), bool)
        keep[pairs[~from_lost, 1] - lost.size] = False
        self.departed = gone.select(keep)
        return rows[left]

    def _report(self) -> TrackBatch:
        """Tracked tracks matched this frame, and lost ones for `output_coast_frames` frames."""
        t = self.tracks
        show = (t.state == TRACKED) & (t.since_update == 0)
        show |= (t.state == LOST) & (t.since_update <= self.config.output_coast_frames)
        rows = np.flatnonzero(show)
        boxes, kpts = self._pose(t.filters.pos[rows], rows)
        unseen = t.joint_unseen[rows]
        # a prediction that has drifted off its person's box is no longer a position worth drawing
        margin = (_PREDICTED_JOINT_MARGIN * (boxes[:, 3] - boxes[:, 1]))[:, None]
        near = ((kpts[:, :, 0] >= boxes[:, 0:1] - margin) & (kpts[:, :, 0] <= boxes[:, 2:3] + margin)
                & (kpts[:, :, 1] >= boxes[:, 1:2] - margin) & (kpts[:, :, 1] <= boxes[:, 3:4] + margin))
        predicted = (unseen <= self.config.joint_coast_frames) & near
        joint_states = np.where(unseen == 0, JointState.OBSERVED,
                                np.where(predicted, JointState.PREDICTED, JointState.HIDDEN)).astype(np.int8)
        return TrackBatch(ids=t.ids[rows], boxes=boxes, keypoints=kpts, keypoints_raw=t.raw[rows],
                          states=t.state[rows], frames_since_update=t.since_update[rows],
                          joint_states=joint_states)

    # ---------------------------------------------------------------------------- helpers

    def _frames_until(self, timestamp: float | None) -> float:
        """Frames from the previous update to `timestamp` (1 without timestamps)."""
        if timestamp is None or self._last_time is None:
            return 1.0
        timestamp = float(timestamp)
        if timestamp < self._last_time:
            raise UserError(f"tracker timestamps must not go back in time ({timestamp} after {self._last_time})")
        return (timestamp - self._last_time) / self._frame_period

    @property
    def _now(self) -> float:
        """Seconds since the start: the latest timestamp, or frames times frame_period without them."""
        return self._last_time if self._last_time is not None else self.frame_index * self._frame_period

    def _advance_clock(self, timestamp: float | None) -> float:
        dt = self._frames_until(timestamp)
        if timestamp is not None:
            self._last_time = float(timestamp)
        return dt

    def _predict(self, dt: float) -> None:
        if len(self.tracks) == 0:
            return
        filters = self.tracks.filters
        heights = np.maximum(filters.pos[:, 3], 1.0)
        filters.predict(dt, (self._accel_frac[None, :] * heights[:, None]) ** 2)

    def _pose(self, pos: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N,5) xyxy + score and keypoints (N,J,3) of filter positions `pos` (N,D), with
        the scores of track `rows` (all tracks when None)."""
        t = self.tracks
        score = t.score if rows is None else t.score[rows]
        joint_score = t.joint_score if rows is None else t.joint_score[rows]
        half_w, half_h = np.maximum(pos[:, 2], 1.0) / 2, np.maximum(pos[:, 3], 1.0) / 2
        boxes = np.empty((len(pos), 5), np.float32)
        boxes[:, 0], boxes[:, 1] = pos[:, 0] - half_w, pos[:, 1] - half_h
        boxes[:, 2], boxes[:, 3] = pos[:, 0] + half_w, pos[:, 1] + half_h
        boxes[:, 4] = score
        kpts = np.empty((len(pos), self.num_joints, 3), np.float32)
        kpts[:, :, :2] = pos[:, None, _CENTRE] + pos[:, _JOINTS].reshape(len(pos), self.num_joints, 2)
        kpts[:, :, 2] = joint_score
        return boxes, kpts

    def _sanitize(self, boxes, keypoints) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Drop detections with unusable boxes; NaN joints become unobserved (score 0). Also
        returns which detections came with a pose: all-NaN keypoints are a detection given
        without one (pose_needed)."""
        j = self.num_joints
        boxes = np.asarray(boxes, np.float32) if np.size(boxes) else np.zeros((0, 5), np.float32)
        keypoints = (np.asarray(keypoints, np.float32) if np.size(keypoints)
                     else np.zeros((0, j, 3), np.float32))
        shapes_ok = (boxes.ndim == 2 and boxes.shape[1] == 5 and keypoints.ndim == 3
                     and keypoints.shape[1:] == (j, 3) and keypoints.shape[0] == boxes.shape[0])
        if not shapes_ok:
            raise UserError(f"tracker expects boxes (N,5) and keypoints (N,{j},3) for schema "
                            f"{self.schema}; got {boxes.shape} and {keypoints.shape}")
        boxes, usable = usable_boxes(boxes)
        keypoints = keypoints[usable]
        posed = ~np.isnan(keypoints).all(axis=(1, 2)) if keypoints.size else np.ones(len(boxes), bool)
        if not np.isfinite(keypoints).all():  # the caller's array is left as it is
            keypoints = keypoints.copy()
            keypoints[~np.all(np.isfinite(keypoints), axis=2)] = 0.0
        return boxes, keypoints, posed

    def _recovery_similarity(self, rows: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
        """(L,D) how well each lost track's predicted place explains each detection, in [0,1].

        A lost track's prediction grows uncertain (a person may stop or turn while hidden), so
        besides OKS/IoU it is matched by the detection's box centre within the filter's own
        uncertainty: 1 - m / 9.21, with m the squared Mahalanobis distance and 9.21 the 99%
        chi-square bound for 2 dimensions, times the ratio of box heights (a person does not
        change size while hidden).
        """
        bank, cfg = self.tracks.filters, self.config
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
        z, var = np.empty((n, _POSE + 2 * j)), np.empty((n, _POSE + 2 * j))
        observed = np.ones((n, _POSE + 2 * j), bool)
        z[:, 0:2], z[:, 2], z[:, 3] = box_centre, w, h
        z[:, _CENTRE] = centre
        z[:, _JOINTS] = (xy - centre[:, None, :]).reshape(n, -1)
        var[:, _BOX] = ((cfg.box_noise * h) ** 2)[:, None]
        var[:, _CENTRE] = centre_var[:, None]
        var[:, _JOINTS] = np.repeat(kp_var, 2, axis=1)
        observed[:, _JOINTS] = np.repeat(observed_joint, 2, axis=1)
        return z, var, observed
