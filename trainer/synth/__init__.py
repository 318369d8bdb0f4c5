"""Synthetic people: articulated figures with exact COCO-17 / PoseTrack18 ground truth.

skeleton (bodies, forward kinematics) -> motion (joint angles over time) -> figure (painter's
rendering, label map, visibility) -> scene (background, camera, lighting, noise) -> sequence
(people walking in and out of videos) -> writers (COCO, PoseTrack, MP4) -> cli.
"""
