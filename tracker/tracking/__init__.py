"""Online pose tracking: association, Kalman smoothing and track lifecycle (`PoseTracker`)."""

from tracker.tracking.tracker import LOST, TENTATIVE, TRACKED, PoseTracker, TrackBatch, TrackerConfig

__all__ = ["PoseTracker", "TrackerConfig", "TrackBatch", "TENTATIVE", "TRACKED", "LOST"]
