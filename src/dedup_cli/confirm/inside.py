"""Proof that a file shows another inside it: a photo in a screenshot, a figure on a page.

``search.orientations.inside_pairs`` proposes a file whose hash meets a picture found inside
another (``media.regions``). The container is read again large enough that the picture
inside it reaches the working size, the picture is cut out by its stored box, and the same
keypoint match that proves crops (``geometry.match``) must map one onto the other. A match
makes the pair *related*: with ``INSIDE_REASON`` when the picture is shown as it is, with the
reason of any partial match when it is shown edited. It is shown to the user and never
planned for removal, since the container holds more than the picture and the picture more
detail than its small view.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dedup_cli.confirm.cascade import LESS_DETAIL_REASON, RELATED_REASON, _in_parallel, checked
from dedup_cli.confirm.geometry import (
    WORK_SIDE,
    GeometricMatch,
    Picture,
    PictureCache,
    match,
    picture_of_image,
)
from dedup_cli.core.progress import Progress
from dedup_cli.media.decode import ImageDecodeError, decode_for_display
from dedup_cli.media.regions import Box, box_pixels

INSIDE_REASON = LESS_DETAIL_REASON
MAX_CONTAINER_SIDE = 4096  # the container is read at most this large to reach the picture


@dataclass(frozen=True)
class InsideCandidate:
    """A file (``picture``) that may be shown inside another (``container``), at ``box``."""

    picture: Path
    container: Path
    box: Box  # where in the container (``media.regions``)
    similarity: float  # the embedding's, for the listing


def _shown(container: Path, box: Box) -> Picture | None:
    """The picture inside ``container`` at ``box``, read so that it reaches the working size
    (the container is read larger by the inverse of the box's share of it); None when the
    file cannot be read now (changed, damaged or gone since it was hashed)."""
    left, top, right, bottom = box
    share = max(right - left, bottom - top, 1e-3)
    side = min(MAX_CONTAINER_SIDE, math.ceil(WORK_SIDE / share))
    try:
        image = decode_for_display(container, side)
        return picture_of_image(image.crop(box_pixels(box, image.width, image.height)))
    except (ImageDecodeError, OSError):
        return None


def prove_inside(
    candidates: Sequence[InsideCandidate],
    progress: Progress | None = None,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """The related entries (``a``: the container, ``b``: the picture shown in it) of the
    candidates proved from the files; an unreadable file proves nothing."""
    watch = progress or Progress()
    watch.start(len(candidates), "proving: pictures inside others")
    pictures = PictureCache(capacity=64)  # a photo shown in many screenshots is read once

    def check(k: int) -> GeometricMatch | None:
        candidate = candidates[k]
        picture = pictures.get(candidate.picture)
        return checked(match, picture, _shown(candidate.container, candidate.box))

    related = []
    for k, found in _in_parallel(check, list(range(len(candidates))), workers):
        watch.advance(1)
        if found is None:
            continue
        candidate = candidates[k]
        related.append(
            {
                "a": os.fspath(candidate.container),
                "b": os.fspath(candidate.picture),
                "similarity": round(candidate.similarity, 6),
                "reason": INSIDE_REASON if found.is_copy else RELATED_REASON,
            }
        )
    watch.finish()
    return related
