"""Track exporters: PoseTrack 2018/2017 JSON, JSONL, CSV, MOTChallenge (streaming, interrupt-safe)."""

from tracker.export.head import to_posetrack18_keypoints
from tracker.export.writers import (
    CsvWriter, JsonlWriter, MotWriter, PoseTrack17Writer, PoseTrack18Writer, TrackWriter,
)

__all__ = ["PoseTrack18Writer", "PoseTrack17Writer", "JsonlWriter", "CsvWriter", "MotWriter", "TrackWriter",
           "to_posetrack18_keypoints"]
