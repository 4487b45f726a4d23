"""Sup-norm error bounds as data: ``constant + slope w + curvature w^2``."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    """``sup |smooth - hard| <= constant + slope * w + curvature * w^2``.

    ``constant`` is half the jumps (no width removes it); ``slope`` and ``curvature``
    come from kinks and from quadratic pieces.
    """

    slope: float
    constant: float = 0.0
    curvature: float = 0.0
    description: str = ""

    def at(self, width: float) -> float:
        """The bound at ``width``."""
        out = self.constant
        if self.slope:
            out += self.slope * width
        if self.curvature:
            out += self.curvature * width * width
        return out

    def width_for(self, tol: float) -> float | None:
        """The largest width whose bound is at most ``tol``, or None when no width is
        (a jump, or an infinite or zero coefficient)."""
        if self.constant > 0.0 or not (math.isfinite(self.slope) and math.isfinite(self.curvature)):
            return None
        if self.curvature == 0.0:
            return tol / self.slope if self.slope > 0.0 else None
        # slope w + curvature w^2 = tol, the positive root written without cancellation
        return 2.0 * tol / (self.slope + math.sqrt(self.slope**2 + 4.0 * self.curvature * tol))


def jump(height: float, what: str) -> Bound:
    """The bound of an op whose largest jump is ``height``: half of it, at every width."""
    return Bound(
        slope=0.0,
        constant=height / 2.0,
        description=f"{what} jumps by {height:g}: the smoothed value at a jump is the midpoint",
    )
