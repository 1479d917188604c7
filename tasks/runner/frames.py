"""The run's screenshots, kept as the GIF will show them and within a byte budget.

Each screenshot is shrunk the moment it is taken (gif.open_frame: scaled to the GIF's width,
254 colours) and kept as a small palette PNG; the full-size screenshot is dropped at once. So a
run holds about 50 KB per step at 800 px instead of a 1-2 MB PNG, and the GIF later needs no
full-size decoding either.

When the kept frames outgrow ``max_bytes`` the run goes on and the frames are thinned: the
store keeps one step in ``stride`` (steps 0, stride, 2 x stride, ...) plus the latest one, and
doubles ``stride`` whenever the budget is exceeded. The GIF therefore still covers the whole
run, evenly, from the first screenshot to the last. The first and the latest frames are always
kept, so the budget can be exceeded only when those two alone exceed it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from .gif import open_frame

PNG_COMPRESS_LEVEL = 6  # measured on 800x450 palette frames: 12 ms and ~50 KB; level 9 saves 2% for 3x the time


@dataclass(frozen=True)
class _Frame:
    step: int  # the position of the screenshot among those taken (0-based)
    data: bytes


class FrameStore:
    """The frames of one run. ``add`` shrinks and keeps a screenshot, thinning when over budget."""

    def __init__(self, *, width: int, max_bytes: int):
        self.width = width
        self.max_bytes = max_bytes
        self.stride = 1  # 1: every screenshot kept; 2**k after k thinnings
        self.taken = 0
        self._grid: list[_Frame] = []  # frames whose step is a multiple of stride, oldest first
        self._latest: _Frame | None = None  # the newest frame when it is not on the grid

    @property
    def frames(self) -> list[bytes]:
        """The kept frames, oldest first (small palette PNGs)."""
        kept = self._grid + ([self._latest] if self._latest is not None else [])
        return [frame.data for frame in kept]

    @property
    def total_bytes(self) -> int:
        return sum(len(data) for data in self.frames)

    def add(self, screenshot: bytes) -> bool:
        """Keep ``screenshot`` (PNG or JPEG bytes) as a compact frame; False if Pillow cannot read it,
        which leaves the step without a frame as a failed screenshot does."""
        try:
            frame = open_frame(screenshot, self.width)
        except (OSError, ValueError):  # PIL.UnidentifiedImageError is an OSError; truncated data too
            return False
        buffer = io.BytesIO()
        frame.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        self.keep(buffer.getvalue())
        return True

    def keep(self, data: bytes) -> None:
        """Keep an already compact frame, then thin until the frames fit the budget again."""
        frame = _Frame(step=self.taken, data=data)
        self.taken += 1
        if frame.step % self.stride == 0:
            self._grid.append(frame)
            self._latest = None
        else:
            self._latest = frame
        while self.total_bytes > self.max_bytes and len(self._grid) > 1:
            self._thin()

    def _thin(self) -> None:
        """Drop every other frame of the grid (the first stays), keeping the newest one as the latest."""
        newest = self._grid[-1]
        self.stride *= 2
        self._grid = [frame for frame in self._grid if frame.step % self.stride == 0]
        if self._latest is None and self._grid[-1] is not newest:
            self._latest = newest
