"""Where the 12 views of an image lie: pure geometry, no imports.

Kept apart from `views.py` (Pillow, the data pipeline) so that the multi-view model, and the copy of it an
exported model repository carries, need nothing beyond torch. The geometry is documented in `views.py`.
"""

from __future__ import annotations

GRID = 3
OVERLAP = 0.25
VIEW_NAMES: tuple[str, ...] = (
    ("global",) + tuple(f"tile_r{i}_c{j}" for i in range(GRID) for j in range(GRID)) + ("centre", "right")
)
N_VIEWS = len(VIEW_NAMES)  # 12

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive


def axis_tiles(length: int, grid: int = GRID, overlap: float = OVERLAP) -> list[tuple[int, int]]:
    """(start, end) of ``grid`` overlapping tiles covering [0, length) edge to edge."""
    side = min(length, max(1, round(length / (1 + (grid - 1) * (1 - overlap)))))
    starts = [round(k * (length - side) / (grid - 1)) for k in range(grid)]
    return [(x, x + side) for x in starts]


def view_boxes(width: int, height: int) -> tuple[Box, ...]:
    """The 12 boxes of :data:`VIEW_NAMES` for a ``width`` x ``height`` image (see `views.py`'s docstring)."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    cols, rows = axis_tiles(width), axis_tiles(height)
    tiles = [(x0, y0, x1, y1) for (y0, y1) in rows for (x0, x1) in cols]  # row-major
    s = min(width, height)
    top = (height - s) // 2
    centre = ((width - s) // 2, top, (width - s) // 2 + s, top + s)
    right = (width - s, top, width, top + s)
    return ((0, 0, width, height), *tiles, centre, right)
