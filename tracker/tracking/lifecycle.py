"""The track lifecycle as an explicit state machine; every transition is in `next_states`.

    state         this frame                                     next state
    TENTATIVE     matched, min_hits frames in a row              TRACKED (confirmed: gets its id)
    TENTATIVE     matched, fewer hits so far                     TENTATIVE
    TENTATIVE     missed                                         REMOVED (a candidate may not miss)
    TRACKED       matched                                        TRACKED
    TRACKED       missed, within lost_buffer                     LOST (still predicted)
    LOST          matched                                        TRACKED (recovered, same id)
    LOST          missed, within lost_buffer                     LOST
    TRACKED, LOST missed, more than lost_buffer frames in a row  REMOVED

A detection nobody matches starts a TENTATIVE track (TRACKED at once when min_hits is 1, and in
a tracker's first frame). Ids
count up per tracker and are never reused; removed tracks leave the table the same frame.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["TrackState", "TENTATIVE", "TRACKED", "LOST", "REMOVED", "birth_state", "next_states"]


class TrackState(IntEnum):
    TENTATIVE = 0
    TRACKED = 1   # confirmed and matched in the latest frame
    LOST = 2      # confirmed, missed lately, still predicted and recoverable
    REMOVED = 3   # dropped from the track table at the end of the frame


# plain ints for the hot path (numpy compares them faster than enum members)
TENTATIVE, TRACKED, LOST, REMOVED = (int(state) for state in TrackState)


def birth_state(min_hits: int) -> int:
    """The state of a track started from a detection (its first hit)."""
    return TRACKED if min_hits <= 1 else TENTATIVE


def next_states(state: np.ndarray, hit: np.ndarray, hits: np.ndarray, misses: np.ndarray,
                min_hits: int, lost_buffer: int) -> np.ndarray:
    """Every track's state after this frame's association, as int8 (T,).

    `hit`: matched this frame; `hits`: consecutive hits, this frame's included; `misses`: frames
    since the last hit, this frame's included (0 when hit). The first rule that applies wins.
    """
    miss = ~hit
    rules = [  # (condition, new state)
        (hit & (state == TENTATIVE) & (hits >= min_hits), TRACKED),   # confirmed
        (hit & (state == LOST), TRACKED),                              # recovered
        (miss & (state == TENTATIVE), REMOVED),                        # a candidate may not miss
        (miss & (misses > lost_buffer), REMOVED),                      # given up (tracked or lost)
        (miss & (state == TRACKED), LOST),                             # lost
    ]
    new = state.copy()
    for condition, target in reversed(rules):  # applied last to first, so the first rule wins
        new[condition] = target
    return new
