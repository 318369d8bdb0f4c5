"""Pose-estimation engines: networks and their catalogue, pose estimation, runtimes, detectors,
file formats and the model cache.

`engines.load_pose(name)` and `engines.load_detector(name)` take catalogue names
(`python -m engines fetch --list`) or files; both import lazily so that `import engines` is cheap.
"""

__all__ = ["load_pose", "load_detector"]


def __getattr__(name: str):
    if name == "load_pose":
        from engines.pose.loading import load_pose

        return load_pose
    if name == "load_detector":
        from engines.detectors import load_detector

        return load_detector
    raise AttributeError(f"module 'engines' has no attribute {name!r}")
