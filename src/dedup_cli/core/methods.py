"""How a pair was shown to be a duplicate: the names that plans, JSON and the journal carry.

A removal's method decides what the action re-checks: an ``EXACT`` pair must still have the
same bytes; any other must keep the keeper that was proved (hash) and decodable.
"""

from __future__ import annotations

EXACT = "exact"  # the same bytes
PIXELS = "pixels"  # thumbnails agree and the files differ nowhere, frame on frame
GEOMETRY = "geometry"  # keypoints map one into the other and they differ nowhere
EMBEDDING = "embedding"  # --no-verify: the embedding alone
REVIEWED = "reviewed"  # a person chose this keeper in a review
BURST = "burst"  # another frame of a burst, its sharpest kept (--bursts remove-all-but-best)
NAME_AND_PIXELS = "embedding+pixels"  # filename-clean: a copy name, the vectors and pixels
NAME_AND_PHASH = "phash+pixels"  # filename-clean without vectors: pHash and pixels
NAME_ONLY = "name"  # filename-clean --no-verify: the copy name alone
