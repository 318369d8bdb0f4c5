"""The Python API in ten lines: frames in, tracked skeletons out (the bundled models, offline;
any catalogue name works the same, e.g. load_detector("yolox-nano"), load_pose("litehrnet30-coco"))."""

from engines import load_detector, load_pose
from tracker.sources import open_source
from tracker.tracking import PoseTracker

detector, pose, tracker = load_detector("centernet"), load_pose("lite_w32_160x128"), PoseTracker()
for index, timestamp, frame in open_source("demo"):
    boxes = detector.detect(frame)
    tracks = tracker.update(boxes, pose.estimate(frame, boxes), timestamp)
    print(index, [(int(i), box[:4].round(1).tolist()) for i, box in zip(tracks.ids, tracks.boxes)])
