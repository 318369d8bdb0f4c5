"""PoseTrack evaluation with the official poseval semantics (mAP, MOTA) plus IDF1."""

from tracker.evaluate.evaluate import EvaluationResult, evaluate_folders, evaluate_sequences

__all__ = ["EvaluationResult", "evaluate_folders", "evaluate_sequences"]
