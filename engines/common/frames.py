"""The frames the engines accept: HxWx3 uint8 BGR images of at least 8x8 pixels."""

from __future__ import annotations

import numpy as np

from engines.errors import UserError

__all__ = ["validate_frame"]


def validate_frame(frame) -> np.ndarray:
    """The frame itself if it is an HxWx3 uint8 BGR image, else UserError."""
    if not isinstance(frame, np.ndarray):
        raise UserError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise UserError(f"frame must be HxWx3 BGR, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise UserError(f"frame must be uint8, got {frame.dtype}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise UserError(f"frame is too small to detect people in: {frame.shape[1]}x{frame.shape[0]}")
    return frame
