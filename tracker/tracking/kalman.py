"""A bank of independent constant-velocity Kalman filters, one per scalar coordinate, updated at once.

A box (cx, cy, w, h) and every keypoint coordinate move independently under the same
constant-velocity model, so filterpy's `KalmanFilter(dim_x=2, dim_z=1)` with F = [[1, dt], [0, 1]],
H = [1, 0] and the discrete white-noise-acceleration Q describes each of them. A person's filters
stacked form one block-diagonal filter; here the blocks are kept as rows of arrays and the 2x2
algebra is written out element-wise, which is the same arithmetic as filterpy's predict/update
(tests check it against filterpy) but costs a handful of numpy calls for all people and joints.

State rows: x (..., 2) = position, velocity; covariance as its three distinct entries
p00, p01, p11 (..., ) each.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ConstantVelocityBank"]


class ConstantVelocityBank:
    """Rows of scalar constant-velocity filters; every array has the same leading shape."""

    def __init__(self, position: np.ndarray, position_var: np.ndarray, velocity_var: np.ndarray):
        position = np.asarray(position, np.float64)
        self.pos = position.copy()
        self.vel = np.zeros_like(position)
        self.p00 = np.broadcast_to(position_var, position.shape).astype(np.float64)
        self.p01 = np.zeros_like(position)
        self.p11 = np.broadcast_to(velocity_var, position.shape).astype(np.float64)

    def predict(self, dt: float | np.ndarray, accel_var: np.ndarray) -> None:
        """x <- F x, P <- F P F' + Q with Q = accel_var * [[dt^4/4, dt^3/2], [dt^3/2, dt^2]].

        `dt` is a scalar or per-row (broadcastable) time step in frames.
        """
        dt = np.asarray(dt, np.float64)
        self.pos = self.pos + dt * self.vel
        p00, p01, p11 = self.p00, self.p01, self.p11
        dt2 = dt * dt
        self.p00 = p00 + 2 * dt * p01 + dt2 * p11 + accel_var * dt2 * dt2 / 4
        self.p01 = p01 + dt * p11 + accel_var * dt2 * dt / 2
        self.p11 = p11 + accel_var * dt2

    def update(self, z: np.ndarray, meas_var: np.ndarray, observed: np.ndarray) -> None:
        """Kalman update with measurement z of the position; rows where `observed` is False keep the prediction."""
        s = self.p00 + meas_var
        k0 = np.where(observed, self.p00 / s, 0.0)
        k1 = np.where(observed, self.p01 / s, 0.0)
        innovation = np.where(observed, z - self.pos, 0.0)
        self.pos = self.pos + k0 * innovation
        self.vel = self.vel + k1 * innovation
        p00, p01, p11 = self.p00, self.p01, self.p11
        self.p00 = (1 - k0) * p00
        self.p01 = (1 - k0) * p01
        self.p11 = p11 - k1 * p01

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    def __getitem__(self, rows) -> "ConstantVelocityBank":
        """A bank holding only the given leading-axis rows (index or boolean mask)."""
        out = object.__new__(ConstantVelocityBank)
        for name in _ARRAYS:
            setattr(out, name, getattr(self, name)[rows])
        return out

    @staticmethod
    def concatenate(banks: list["ConstantVelocityBank"]) -> "ConstantVelocityBank":
        """One bank holding the rows of `banks` in order."""
        out = object.__new__(ConstantVelocityBank)
        for name in _ARRAYS:
            setattr(out, name, np.concatenate([getattr(bank, name) for bank in banks], axis=0))
        return out


_ARRAYS = ("pos", "vel", "p00", "p01", "p11")
