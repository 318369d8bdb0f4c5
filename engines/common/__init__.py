"""The neutral layer every part of engines (and tracker and trainer) may use, and which uses none
of them: frame checks (`frames`), person boxes (`boxes`: the one rule for a usable box, IoU,
keypoint extents), fitting a frame into a network input (`letterbox`) and atomic file writes
(`files`)."""
