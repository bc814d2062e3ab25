"""The orientation channel (issue 15): hashes of the thumbnail in eight orientations propose
quarter turns, mirror images and strong colour changes that the embedding rates below the
threshold; they are then proved like any candidate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from conftest import encode
from dedup_cli.embed.pipeline import EmbedOptions
from dedup_cli.jobs.find import FindResult, find_duplicates
from dedup_cli.models import get_spec
from dedup_cli.search.nearest import NEIGHBOURS
from dedup_cli.search.orientations import (
    BUCKET_CAP,
    _low_frequencies,
    _signs_of,
    orientation_hashes,
    orientation_pairs,
    view_hashes,
)
from dedup_cli.store import Store


def thumbnail(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX))


def test_the_eight_hashes_are_those_of_the_eight_turned_and_mirrored_images() -> None:
    images = np.random.default_rng(3).integers(0, 256, (40, 32, 32), dtype=np.uint8)
    views = []
    for turns in range(4):
        turned = np.rot90(images, turns, axes=(1, 2))
        views += [turned, turned[:, :, ::-1]]
    direct = np.stack([_signs_of(_low_frequencies(np.ascontiguousarray(v))) for v in views], 1)
    assert np.array_equal(orientation_hashes(images), direct)


def test_turned_mirrored_and_recoloured_copies_are_proposed_and_nothing_else(
    photos: dict[str, Image.Image],
) -> None:
    stack, names = [], []
    for name, photo in photos.items():
        rgb = photo.convert("RGB")
        sepia = ImageOps.colorize(ImageOps.grayscale(rgb), black=(40, 20, 0), white=(255, 230, 180))
        for label, view in (
            ("", rgb),
            ("turned", rgb.transpose(Image.Transpose.ROTATE_90)),
            ("mirrored", ImageOps.mirror(rgb)),
            ("sepia", sepia),
        ):
            stack.append(thumbnail(view))
            names.append((name, label))
    pairs, _ = orientation_pairs(orientation_hashes(np.stack(stack)), np.arange(len(stack)))
    found = {(names[a], names[b]) for a, b in zip(pairs.left.tolist(), pairs.right.tolist())}
    assert all(a[0] == b[0] for a, b in found)  # never two different photos
    for name in photos:
        for label in ("turned", "mirrored", "sepia"):
            assert ((name, ""), (name, label)) in found, (name, label)


def test_each_file_keeps_a_bounded_number_of_proposals() -> None:
    """One picture 200 times over (near-equal thumbnails): each file proposes at most
    NEIGHBOURS pairs, so there are at most N x NEIGHBOURS (as for the embedding's bounded
    search); above BUCKET_CAP files a shared chunk proposes nothing and is counted. The
    work stays per file."""

    def crowd(n: int) -> np.ndarray:
        base = np.random.default_rng(5).integers(0, 256, (32, 32), dtype=np.uint8)
        noise = np.random.default_rng(6).integers(-2, 3, (n, 32, 32))
        return np.clip(base[None].astype(int) + noise, 0, 255).astype(np.uint8)

    pairs, stats = orientation_pairs(orientation_hashes(crowd(200)), np.arange(200))
    assert 200 <= len(pairs) <= 200 * NEIGHBOURS
    assert stats["crowded_chunks"] == 0
    n = BUCKET_CAP + 50
    pairs, stats = orientation_pairs(orientation_hashes(crowd(n)), np.arange(n))
    assert stats["crowded_chunks"] > 0 and len(pairs) <= n * NEIGHBOURS


def found_only_by_the_channel(root: Path) -> FindResult:
    """``find`` at a threshold the embedding does not reach: nothing without the channel;
    the result with it."""
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    with Store(root / "image_database.db") as store:
        without = find_duplicates(root, store, spec, options, threshold=0.99, orientations=False)
        found = find_duplicates(root, store, spec, options, threshold=0.99)
    assert without.plan.groups == []
    return found


def test_find_proves_a_quarter_turn_the_embedding_did_not_propose(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """At a threshold no quarter turn reaches, only the channel proposes the pair, and the
    keypoint proof confirms it."""
    root = tmp_path / "photos"
    root.mkdir()
    (root / "coffee.jpg").write_bytes(encode(photos["coffee"].convert("RGB"), quality=95))
    turned = photos["coffee"].convert("RGB").transpose(Image.Transpose.ROTATE_90)
    (root / "coffee turned.jpg").write_bytes(encode(turned, quality=90))
    (root / "rocket.jpg").write_bytes(encode(photos["rocket"].convert("RGB"), quality=90))
    found = found_only_by_the_channel(root)
    [group] = found.plan.groups
    assert {
        Path(group.keep.absolute).name,
        *(Path(r.file.absolute).name for r in group.remove),
    } == {
        "coffee.jpg",
        "coffee turned.jpg",
    }
    assert found.as_dict()["stats"]["orientation_pairs"] >= 1


def test_a_turned_or_mirrored_copy_is_proved_frame_on_frame_and_another_photo_is_not(
    photos: dict[str, Image.Image],
) -> None:
    """The pixel proof in the view where the thumbnails agree (``cascade._turned_agreement``
    and ``Picture.viewed``): no keypoints needed for a quarter turn or a mirror image."""
    from dedup_cli.confirm.cascade import _turned_agreement
    from dedup_cli.confirm.geometry import match_aligned, picture_of_image
    from dedup_cli.media.decode import decode

    def stored(image: Image.Image) -> bytes:
        return decode(encode(image.convert("RGB"), quality=90), 32).thumbnail

    coffee = photos["coffee"].convert("RGB")
    copies = {
        2: coffee.transpose(Image.Transpose.ROTATE_90),  # one quarter turn
        1: ImageOps.mirror(coffee),
        4: coffee.transpose(Image.Transpose.ROTATE_180),
    }
    for view, copy in copies.items():
        [found] = _turned_agreement([stored(copy)], [stored(coffee)])
        assert found == view
        match = match_aligned(picture_of_image(copy), picture_of_image(coffee).viewed(found))
        assert match is not None and match.is_copy
    rocket = photos["rocket"].convert("RGB")
    assert _turned_agreement([stored(rocket)], [stored(coffee)]) == [0]


def centre_crop(image: Image.Image, keep: float = 0.65) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
    return image.crop((dx, dy, w - dx, h - dy))


def test_a_crop_to_65_percent_is_proposed_by_the_centre_view(
    photos: dict[str, Image.Image],
) -> None:
    """The ninth view, the centre of the frame, meets a crop to 65 % of it; the eight
    orientations alone do not, and no two different photos are proposed."""
    stack, names = [], []
    for name, photo in photos.items():
        for label, view in (("", photo), ("crop", centre_crop(photo))):
            stack.append(thumbnail(view.convert("RGB")))
            names.append((name, label))
    hashes = view_hashes(np.stack(stack))
    assert np.array_equal(hashes[:, :8], orientation_hashes(np.stack(stack)))
    pairs, _ = orientation_pairs(hashes, np.arange(len(stack)))
    found = {(names[a], names[b]) for a, b in zip(pairs.left.tolist(), pairs.right.tolist())}
    assert all(a[0] == b[0] for a, b in found)
    crops = [name for name in photos if ((name, ""), (name, "crop")) in found]
    assert len(crops) >= len(photos) // 2, crops  # 6 of these 10; 16 of 20 in calibration
    pairs, _ = orientation_pairs(hashes[:, :8], np.arange(len(stack)))
    alone = {(names[a], names[b]) for a, b in zip(pairs.left.tolist(), pairs.right.tolist())}
    assert len([n for n in photos if ((n, ""), (n, "crop")) in alone]) < len(crops)


def test_find_proves_a_crop_the_embedding_did_not_propose(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """At a threshold no 65 % crop reaches, the centre view proposes it, its keypoint
    check runs first, and it is grouped with its photo."""
    root = tmp_path / "photos"
    root.mkdir()
    chelsea = photos["chelsea"].convert("RGB")
    (root / "chelsea.jpg").write_bytes(encode(chelsea, quality=95))
    (root / "chelsea crop.jpg").write_bytes(encode(centre_crop(chelsea), quality=92))
    (root / "rocket.jpg").write_bytes(encode(photos["rocket"].convert("RGB"), quality=90))
    found = found_only_by_the_channel(root)
    [group] = found.plan.groups
    assert Path(group.keep.absolute).name == "chelsea.jpg"
    assert [Path(r.file.absolute).name for r in group.remove] == ["chelsea crop.jpg"]


def test_cross_proves_a_quarter_turn_and_a_crop_across_the_two_folders(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """The channel runs in ``cross`` too, with pairs across the folders only: a turned copy
    and a 65 % crop in B of photos in A are proposed and proved at a threshold the embedding
    does not reach; the two photos in A are never paired with each other."""
    from dedup_cli.jobs.cross import cross_find

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    coffee, chelsea = photos["coffee"].convert("RGB"), photos["chelsea"].convert("RGB")
    (a / "coffee.jpg").write_bytes(encode(coffee, quality=95))
    (a / "chelsea.jpg").write_bytes(encode(chelsea, quality=95))
    turned = coffee.transpose(Image.Transpose.ROTATE_90)
    (b / "coffee turned.jpg").write_bytes(encode(turned, quality=90))
    (b / "chelsea crop.jpg").write_bytes(encode(centre_crop(chelsea), quality=92))
    (b / "rocket.jpg").write_bytes(encode(photos["rocket"].convert("RGB"), quality=90))
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    with Store(a / "image_database.db") as store_a, Store(b / "image_database.db") as store_b:

        def cross(orientations: bool) -> Any:
            return cross_find(
                a, store_a, b, store_b, spec, options, threshold=0.99, orientations=orientations
            )

        without, found = cross(False), cross(True)
    assert without.plan.groups == []
    pairs = {
        (Path(g.keep.absolute).name, Path(r.file.absolute).name)
        for g in found.plan.groups
        for r in g.remove
    }
    assert pairs == {("coffee.jpg", "coffee turned.jpg"), ("chelsea.jpg", "chelsea crop.jpg")}
    assert found.as_dict()["stats"]["orientation_pairs"] >= 2
