"""Online pose tracking: association, Kalman smoothing and track lifecycle (`PoseTracker`),
its settings (`TrackerConfig`, from YAML with `load_tracker_config`)."""

from tracker.tracking.config import DEFAULT_TRACKER_YAML, TrackerConfig, load_tracker_config
from tracker.tracking.lifecycle import LOST, REMOVED, TENTATIVE, TRACKED, TrackState
from tracker.tracking.tracker import JointState, PoseTracker, TrackBatch

__all__ = ["PoseTracker", "TrackerConfig", "TrackBatch", "JointState", "load_tracker_config", "DEFAULT_TRACKER_YAML",
           "TrackState", "TENTATIVE", "TRACKED", "LOST", "REMOVED"]
