"""PoseTrack evaluation: poseval's mAP and MOTA, PoseTrack21's HOTA (DetA, AssA, LocA), plus IDF1.

Reimplemented: poseval and PoseTrack21's evaluation are repository scripts, not project dependencies."""

from tracker.evaluate.evaluate import EvaluationResult, evaluate_folders, evaluate_sequences

__all__ = ["EvaluationResult", "evaluate_folders", "evaluate_sequences"]
