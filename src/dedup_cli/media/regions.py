"""Pictures inside a picture: a photo in a screenshot, a figure on a page, a post in an app.

A screenshot of a social-media post shows a photo at a fifth of the frame's width, inside a
light interface. Neither the embedding nor the frame's hashes meet the photo itself, so the
pair was never proposed. When a file is decoded for hashing, solid rectangles of content
standing on a light, flat background (the interface or the page), away from the frame's
edges, are found here; each is kept as its box and a small thumbnail of what it shows,
inside its own black or white bars (``media.borders``). ``search.orientations`` looks those
thumbnails up among the other files, and ``confirm.inside`` proves a match from the files.

Such a pair is *related*, never a copy: the container holds more than the picture (the
interface, the caption), and the picture holds more detail than its small view.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dedup_cli.media.borders import MIN_CONTENT, border_run

SEARCH_SIDE = 256  # regions are looked for at this long side
THUMBNAIL_SIDE = 32  # each region's thumbnail, as the file's own (``media.decode``)
LIGHT = 215  # background: at least this gray level ...
FLAT = 6.0  # ... and at most this local standard deviation (3x3)
MIN_BACKGROUND = 0.2  # a frame with less light, flat background holds no regions (most photos)
MIN_AREA, MAX_AREA = 0.02, 0.7  # a region's share of the frame
MIN_SIDE = 0.1  # ... and of each side
MIN_FILL = 0.9  # share of a region's box its content fills
MIN_EDGE = 0.8  # share of background along the box's outside ring (it stands on the page)
MIN_FILL_LINE = 0.8  # edge rows and columns of a box filled less than this are trimmed off
RING = 2  # pixels (at SEARCH_SIDE) of the ring, and of margin to the frame's edge
INSET = 2  # pixels (at SEARCH_SIDE) of a box's edge left out before its bars are trimmed
RIM_SHARE = 0.02  # of a side: how far a flat rim of any tone is trimmed at each step
MIN_CONTRAST = 8.0  # gray levels (standard deviation) of a region that shows something
MAX_REGIONS = 2  # per file, largest first
_RECORD = struct.Struct("<4H")  # the box in 1/65535 of the frame's width and height


Box = tuple[float, float, float, float]  # left, top, right, bottom as shares of the frame


@dataclass(frozen=True)
class Region:
    """One picture inside a frame: its box as shares of the frame, and its thumbnail."""

    box: Box
    thumbnail: bytes  # THUMBNAIL_SIDE^2 grayscale bytes

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The box in a frame of ``width`` x ``height`` pixels."""
        return box_pixels(self.box, width, height)


def box_pixels(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """A box in a frame of ``width`` x ``height`` pixels, at least one pixel each way."""
    left, top, right, bottom = (round(v * s) for v, s in zip(box, (width, height) * 2))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def pack(regions: list[Region]) -> bytes:
    """Regions as stored in the database (an empty string: looked, none found)."""
    out = bytearray()
    for region in regions:
        out += _RECORD.pack(*(round(v * 65535) for v in region.box))
        out += region.thumbnail
    return bytes(out)


def unpack(blob: bytes | None) -> list[Region]:
    """The regions of a stored value; a damaged value holds none, and one holding more
    than ``MAX_REGIONS`` (no version writes that) is damaged."""
    size = _RECORD.size + THUMBNAIL_SIDE * THUMBNAIL_SIDE
    if not isinstance(blob, bytes) or not blob or len(blob) % size:
        return []
    if len(blob) // size > MAX_REGIONS:
        return []
    regions = []
    for start in range(0, len(blob), size):
        raw = _RECORD.unpack_from(blob, start)
        box = tuple(v / 65535 for v in raw)
        if not (box[0] < box[2] and box[1] < box[3]):
            continue
        thumbnail = bytes(blob[start + _RECORD.size : start + size])
        regions.append(Region((box[0], box[1], box[2], box[3]), thumbnail))
    return regions


def _background(gray: np.ndarray) -> np.ndarray:
    """Light pixels in flat surroundings: an interface's or a page's background."""
    import cv2

    values = gray.astype(np.float32)
    mean = cv2.blur(values, (3, 3))
    square = cv2.blur(values * values, (3, 3))
    spread = np.sqrt(np.maximum(square - mean * mean, 0.0))
    background: np.ndarray = (values >= LIGHT) & (spread < FLAT)
    return background


def _solid(component: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of a component's box once edge lines filled less than
    ``MIN_FILL_LINE`` are trimmed off (a caption or an avatar touching a photo's corner),
    one line at a time, each line's fill read from a summed-area table."""
    table = np.zeros((component.shape[0] + 1, component.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = component.cumsum(axis=0).cumsum(axis=1)
    sums = table.tolist()

    def filled(y0: int, y1: int, x0: int, x1: int) -> int:
        return int(sums[y1][x1] - sums[y0][x1] - sums[y1][x0] + sums[y0][x0])

    top, bottom, left, right = 0, component.shape[0], 0, component.shape[1]
    while bottom - top > 4 and right - left > 4:
        width, height = right - left, bottom - top
        fills = (
            filled(top, top + 1, left, right) / width,
            filled(bottom - 1, bottom, left, right) / width,
            filled(top, bottom, left, left + 1) / height,
            filled(top, bottom, right - 1, right) / height,
        )
        side = min(range(4), key=fills.__getitem__)
        if fills[side] >= MIN_FILL_LINE:
            break
        if side == 0:
            top += 1
        elif side == 1:
            bottom -= 1
        elif side == 2:
            left += 1
        else:
            right -= 1
    return top, bottom, left, right


def _boxes(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes ``(left, top, right, bottom)`` of solid content standing on a light, flat
    background, away from the frame's edges, in ``gray``'s pixels, largest first."""
    import cv2

    height, width = gray.shape[:2]
    background = _background(gray)
    if background.mean() < MIN_BACKGROUND:
        return []
    content = cv2.morphologyEx(
        (~background).astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(content, connectivity=4)
    frame = width * height
    found: list[tuple[int, tuple[int, int, int, int]]] = []
    for label in range(1, count):
        x, y, w, h, _area = (int(v) for v in stats[label])
        if w * h < MIN_AREA * frame or w < MIN_SIDE * width or h < MIN_SIDE * height:
            continue
        component = labels[y : y + h, x : x + w] == label
        top, bottom, left, right = _solid(component)
        x0, y0, x1, y1 = x + left, y + top, x + right, y + bottom
        area = (x1 - x0) * (y1 - y0)
        if not MIN_AREA * frame <= area <= MAX_AREA * frame:
            continue
        if component[top:bottom, left:right].mean() < MIN_FILL:
            continue
        if x0 < RING or y0 < RING or x1 > width - RING or y1 > height - RING:
            continue  # touches the frame: the photo goes on beyond it, not a picture inside
        ring = np.concatenate(
            [
                background[y0 - RING : y0, x0:x1].ravel(),
                background[y1 : y1 + RING, x0:x1].ravel(),
                background[y0:y1, x0 - RING : x0].ravel(),
                background[y0:y1, x1 : x1 + RING].ravel(),
            ]
        )
        if ring.mean() < MIN_EDGE:
            continue
        found.append((area, (x0, y0, x1, y1)))
    found.sort(key=lambda item: -item[0])
    return [box for _area, box in found]


def _rim(lines: np.ndarray) -> int:
    """How many leading lines (``lines[k]``: one row or column of RGB pixels, at most
    ``RIM_SHARE`` of them) are flat in any tone: the rim of a card drawn round a picture,
    anti-aliased to a gray that is neither bar black nor page white."""
    most = max(1, int(RIM_SHARE * len(lines)))
    gray = lines[:most].astype(np.float32).mean(axis=-1)
    flat = gray.std(axis=1) < FLAT
    return most if flat.all() else int(np.argmin(flat))


def _inside_bars(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the picture inside its black or white bars (a
    post pads a photo to its frame) and inside the thin rim of its card, trimmed until
    nothing flat is left on any side (never below ``MIN_CONTENT`` of a side)."""
    left, top, right, bottom = 0, 0, pixels.shape[1], pixels.shape[0]
    for _ in range(4):
        view = pixels[top:bottom, left:right]
        sides = (view.transpose(1, 0, 2), view, view.transpose(1, 0, 2)[::-1], view[::-1])
        runs = [border_run(lines) or _rim(lines) for lines in sides]
        if not any(runs):
            break
        trimmed = (left + runs[0], top + runs[1], right - runs[2], bottom - runs[3])
        if (trimmed[2] - trimmed[0] < MIN_CONTENT * pixels.shape[1]) or (
            trimmed[3] - trimmed[1] < MIN_CONTENT * pixels.shape[0]
        ):
            break
        left, top, right, bottom = trimmed
    return left, top, right, bottom


def _search_size(image: Image.Image) -> Image.Image:
    """``image`` reduced (a box average: cheap) to about ``SEARCH_SIDE`` on its long side."""
    factor = max(1, -(-max(image.size) // SEARCH_SIDE))
    return image.reduce(factor) if factor > 1 else image


def framed_boxes(gray: np.ndarray) -> list[Box]:
    """The boxes, as shares of the frame, of the pictures a grayscale image shows inside a
    light interface or page (``inner_pictures`` without their bars trimmed): where a proof
    finds one picture inside another, such a box says the other is a frame around it, not
    more of the same photo."""
    small = np.asarray(_search_size(Image.fromarray(gray)))
    height, width = small.shape[:2]
    if min(height, width) < 16:
        return []
    return [
        (left / width, top / height, right / width, bottom / height)
        for left, top, right, bottom in _boxes(small)
    ]


def may_hold_pictures(thumbnail: bytes | None) -> bool:
    """Whether a frame's stored thumbnail is light enough for ``inner_pictures`` to look:
    ``MIN_BACKGROUND`` of light pixels survive the 32x32 average where an interface or a
    page is. Most photos fail here, at the cost of one comparison per thumbnail pixel."""
    if not isinstance(thumbnail, bytes) or not thumbnail:
        return False
    pixels = np.frombuffer(thumbnail, dtype=np.uint8)
    return float((pixels >= LIGHT).mean()) >= MIN_BACKGROUND


def inner_pictures(image: Image.Image) -> list[Region]:
    """At most ``MAX_REGIONS`` pictures shown inside ``image`` (RGB, upright), largest first;
    none for an ordinary photo, which has no light, flat background around a solid block."""
    small = _search_size(image)
    pixels = np.asarray(small)
    if pixels.ndim != 3 or min(pixels.shape[:2]) < 16:
        return []
    scale_x, scale_y = image.width / small.width, image.height / small.height
    regions: list[Region] = []
    full = None
    import cv2

    for left, top, right, bottom in _boxes(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)):
        if full is None:
            full = np.asarray(image)
        # ``INSET`` pixels inside the box: its edge may hold the surrounding card's rim.
        x0, y0 = int((left + INSET) * scale_x), int((top + INSET) * scale_y)
        x1, y1 = int((right - INSET) * scale_x), int((bottom - INSET) * scale_y)
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        inner_left, inner_top, inner_right, inner_bottom = _inside_bars(full[y0:y1, x0:x1])
        x0, y0, x1, y1 = x0 + inner_left, y0 + inner_top, x0 + inner_right, y0 + inner_bottom
        shown = Image.fromarray(np.ascontiguousarray(full[y0:y1, x0:x1])).convert("L")
        if float(np.asarray(shown, dtype=np.float32).std()) < MIN_CONTRAST:
            continue  # a flat block (a bar, a button): nothing to look up
        box = (x0 / image.width, y0 / image.height, x1 / image.width, y1 / image.height)
        thumbnail = shown.resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
        regions.append(Region(box, thumbnail.tobytes()))
        if len(regions) == MAX_REGIONS:
            break
    return regions
