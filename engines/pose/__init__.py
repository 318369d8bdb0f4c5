"""Top-down pose estimation: keypoint schemas, crops, heatmap codec, OKS."""
