"""The Python API in ten lines: frames in, tracked skeletons out (needs the bundled weights)."""

from engines.detectors import load_detector
from engines.estimator import PoseEstimator
from engines.weights import bundled_weights
from tracker.sources import open_source
from tracker.tracking import PoseTracker

detector, tracker = load_detector("centernet"), PoseTracker()
pose = PoseEstimator("lite_w16_160x128", bundled_weights("lite_w16_160x128"), decode="dark")
for index, timestamp, frame in open_source("demo"):
    boxes = detector.detect(frame)
    tracks = tracker.update(boxes, pose.estimate(frame, boxes), timestamp)
    print(index, [(int(i), box[:4].round(1).tolist()) for i, box in zip(tracks.ids, tracks.boxes)])
