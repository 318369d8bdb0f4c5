"""File formats: PoseTrack JSON, COCO keypoint AP."""
