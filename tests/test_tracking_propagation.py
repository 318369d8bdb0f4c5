"""--det-interval: frames without detection take their boxes from the tracker's prediction.

A real Pipeline reads a real MP4 whose frames carry their index as their grey level; the detector
and the pose model are scripted from that index (one person walking right), so what the pipeline
hands the pose model on each frame can be checked against where the person really is.
"""

import cv2
import numpy as np
import pytest

from tracker.app import build_parser
from tracker.pipeline import Pipeline, Stream, new_tracker
from tracker.sources import open_source
from synthetic_people import COCO_TEMPLATE, boxes_from_keypoints

STEP = 6.0   # pixels per frame


def true_pose(index):
    xy = COCO_TEMPLATE * 120 + [100 + STEP * index, 180]
    return np.concatenate([xy, np.full((17, 1), 0.9)], axis=1).astype(np.float32)


def true_box(index):
    return boxes_from_keypoints(true_pose(index)[None], np.array([0.9]))[0]


def frame_index(image):
    return int(round(image.mean() / 10))


class ScriptedDetector:
    def __init__(self):
        self.frames = []

    def detect(self, image):
        self.frames.append(frame_index(image))
        return true_box(frame_index(image))[None]


class ScriptedPose:
    """Finds the person when the box covers them well, as a pose model would; records the boxes."""

    def __init__(self):
        self.boxes = {}

    def estimate(self, image, boxes):
        index = frame_index(image)
        self.boxes[index] = np.array(boxes, np.float32).copy()
        out = np.zeros((len(boxes), 17, 3), np.float32)
        truth = true_box(index)
        for row, box in enumerate(boxes):
            overlap = np.minimum(box[2:4], truth[2:4]) - np.maximum(box[:2], truth[:2])
            if np.prod(overlap.clip(0)) > 0.5 * np.prod(truth[2:4] - truth[:2]):
                out[row] = true_pose(index)
        return out


def grey_clip(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 360))
    for index in range(frames):
        writer.write(np.full((360, 640, 3), 10 * index, np.uint8))
    writer.release()
    return path


def test_frames_without_detection_follow_the_tracker_prediction(tmp_path):
    source = open_source(str(grey_clip(tmp_path / "grey.mp4", 13)))
    detector, pose = ScriptedDetector(), ScriptedPose()
    stream = Stream(source=source, tracker=new_tracker("coco17", source.fps))
    Pipeline(pose, detector, [stream], det_interval=3).run()
    assert detector.frames == [0, 3, 6, 9, 12]
    assert sorted(pose.boxes) == list(range(13))
    # frames 1 and 2 follow the tentative track started at frame 0, so it is confirmed at frame 2
    assert all(len(pose.boxes[i]) == 1 for i in range(13))
    assert stream.track_ids == {1}
    for index in (7, 8, 10, 11):   # once the filter knows the speed, the box is where the person is now
        centre = (pose.boxes[index][0, :2] + pose.boxes[index][0, 2:4]) / 2
        true_centre = (true_box(index)[:2] + true_box(index)[2:4]) / 2
        assert np.abs(centre - true_centre).max() < 0.25 * STEP, index


def test_det_interval_option_takes_whole_numbers_of_one_or_more(capsys):
    parser = build_parser()
    assert parser.parse_args([]).det_interval is None          # the run's default (plan_run)
    assert parser.parse_args(["--det-interval", "3"]).det_interval == 3
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as refused:
            parser.parse_args(["--det-interval", bad])
        assert refused.value.code == 2 and "--det-interval" in capsys.readouterr().err


def test_boxes_of_a_frame_without_detection_measure_nothing_and_start_nobody():
    """Between detections the boxes are the tracker's people followed to the frame, fitted around
    their confident joints: a half-seen person's is half their size. Measured as a detection, it
    shrank the track until the next detection no longer matched it (a PoseTrack18 player lost at
    --det-interval 2); only the poses found in them are measurements."""
    far = true_pose(0) + [300, 0, 0]
    stranger = boxes_from_keypoints(far[None], np.array([0.9]))[0]
    heights = {}
    for detected in (True, False):
        tracker = new_tracker("coco17", 25.0)
        tracker.update(true_box(0)[None], true_pose(0)[None], 0.0)
        half = true_box(1).copy()
        half[3] = (half[1] + half[3]) / 2          # the upper half of the person
        out = tracker.update(np.stack([half, stranger]), np.stack([true_pose(1), far]), 0.04, detected=detected)
        assert out.ids.tolist() == [1]
        heights[detected] = out.boxes[0, 3] - out.boxes[0, 1]
        assert tracker.num_live_tracks == (2 if detected else 1)   # a detection starts a tentative track
    height = true_box(0)[3] - true_box(0)[1]
    assert heights[True] < 0.9 * height
    assert abs(heights[False] - height) < 0.02 * height
