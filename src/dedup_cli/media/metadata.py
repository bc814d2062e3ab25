"""What a copy knows that its keeper may not, and how to give it to the keeper.

A copy sent through a phone, a sharing site or an editor often keeps fields its keeper lost
(or the other way round): where it was taken, when, with which camera, the stars and the
keywords someone gave it, a title. Before a copy is removed (``--merge-metadata``), the
fields its keeper lacks are copied into the keeper, or into the keeper's XMP sidecar
(``sidecar``). Metadata is read and written with exiv2 (``pyexiv2``), which rewrites the
metadata blocks of a file and never re-encodes its pixels; ``merged_into_file`` checks that
the pixels decode the same afterwards and refuses otherwise.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from dedup_cli.config import MERGE_MODES
from dedup_cli.errors import DedupError

__all__ = ["FIELDS", "MERGE_MODES", "Merged", "MetadataError", "lacking", "read"]

# The fields that are merged, each with the keys that hold it, in the file and in an XMP
# sidecar. A field counts as present when any of its keys is. GPS is every ``GPSInfo`` key.
FIELDS: dict[str, tuple[str, ...]] = {
    "capture time": (
        "Exif.Photo.DateTimeOriginal",
        "Exif.Photo.SubSecTimeOriginal",
        "Exif.Photo.OffsetTimeOriginal",
        "Xmp.exif.DateTimeOriginal",
    ),
    "camera": ("Exif.Image.Make", "Exif.Image.Model", "Xmp.tiff.Make", "Xmp.tiff.Model"),
    "gps": ("Exif.GPSInfo.", "Xmp.exif.GPSLatitude", "Xmp.exif.GPSLongitude"),
    "rating": ("Xmp.xmp.Rating", "Exif.Image.Rating"),
    "keywords": ("Xmp.dc.subject", "Iptc.Application2.Keywords"),
    "title": ("Xmp.dc.title", "Iptc.Application2.ObjectName"),
    "description": (
        "Xmp.dc.description",
        "Exif.Image.ImageDescription",
        "Iptc.Application2.Caption",
    ),
}
EMPTY_SIDECAR = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"></rdf:RDF></x:xmpmeta>'
    b'<?xpacket end="w"?>'
)


class MetadataError(DedupError):
    """The metadata could not be read or written (a format exiv2 cannot handle, damage)."""


def _exiv2() -> Any:
    try:
        import pyexiv2
    except ImportError as exc:  # an optional extra
        raise DedupError(
            "--merge-metadata needs pyexiv2: pip install 'dedup-cli[metadata]'"
        ) from exc
    pyexiv2.set_log_level(4)  # errors come back as exceptions, not on stderr
    return pyexiv2


def check_available() -> None:
    """Raise the one-line error before any work when the library is missing."""
    _exiv2()


def read(data: bytes) -> dict[str, Any]:
    """Every EXIF, XMP and IPTC key of a file (or an XMP sidecar) and its value."""
    pyexiv2 = _exiv2()
    try:
        image = pyexiv2.ImageData(data)
    except Exception as exc:
        raise MetadataError(f"cannot read its metadata ({exc})") from exc
    try:
        found: dict[str, Any] = {}
        for reader in (image.read_exif, image.read_iptc, image.read_xmp):
            try:
                found.update(reader())
            except Exception:  # noqa: BLE001 - a block exiv2 cannot parse is absent
                continue
        return found
    finally:
        image.close()


def _present(tags: dict[str, Any], key: str) -> bool:
    if key.endswith("."):
        return any(k.startswith(key) for k in tags)
    return bool(tags.get(key))


def _keys_of(field: str, tags: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in tags.items()
        if any(k == key or (key.endswith(".") and k.startswith(key)) for key in FIELDS[field]) and v
    }


def lacking(keeper: dict[str, Any], copy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields ``copy`` has and ``keeper`` does not, each with the copy's keys and values.
    Keywords are a set: the copy's keywords the keeper lacks are added to its own."""
    missing: dict[str, dict[str, Any]] = {}
    for field, keys in FIELDS.items():
        theirs = _keys_of(field, copy)
        if not theirs:
            continue
        if field == "keywords":
            added = {}
            for key, value in theirs.items():
                have = list(keeper.get(key) or [])
                new = [v for v in (value if isinstance(value, list) else [value]) if v not in have]
                if new:
                    added[key] = have + new
            if added:
                missing[field] = added
        elif not any(_present(keeper, key) for key in keys):
            missing[field] = theirs
    return missing


@dataclass(frozen=True)
class Merged:
    """New bytes for the keeper (or its sidecar), and the names of the fields they gained."""

    data: bytes
    fields: list[str]


def _write(data: bytes, changes: dict[str, dict[str, Any]], xmp_only: bool) -> bytes:
    pyexiv2 = _exiv2()
    exif, iptc, xmp = {}, {}, {}
    for keys in changes.values():
        for key, value in keys.items():
            if key.startswith("Xmp."):
                xmp[key] = value
            elif not xmp_only and key.startswith("Exif."):
                exif[key] = value
            elif not xmp_only and key.startswith("Iptc."):
                iptc[key] = value
            elif xmp_only:
                xmp.update(_as_xmp(key, value))
    try:
        image = pyexiv2.ImageData(data)
        try:
            if exif:
                image.modify_exif(exif)
            if iptc:
                image.modify_iptc(iptc)
            if xmp:
                image.modify_xmp(xmp)
            return bytes(image.get_bytes())
        finally:
            image.close()
    except Exception as exc:
        raise MetadataError(f"cannot write the metadata ({exc})") from exc


def _as_xmp(key: str, value: Any) -> dict[str, Any]:
    """An EXIF or IPTC key's value under its XMP name, for a sidecar (which holds XMP only)."""
    simple = {
        "Exif.Image.Make": "Xmp.tiff.Make",
        "Exif.Image.Model": "Xmp.tiff.Model",
        "Exif.Image.Rating": "Xmp.xmp.Rating",
        "Iptc.Application2.Keywords": "Xmp.dc.subject",
    }
    if key in simple:
        return {simple[key]: value}
    if key == "Exif.Photo.DateTimeOriginal" and isinstance(value, str) and len(value) >= 19:
        return {"Xmp.exif.DateTimeOriginal": value[:10].replace(":", "-") + "T" + value[11:19]}
    if key == "Exif.Image.ImageDescription":
        return {"Xmp.dc.description": {'lang="x-default"': value}}
    if key == "Iptc.Application2.Caption":
        return {"Xmp.dc.description": {'lang="x-default"': value}}
    if key == "Iptc.Application2.ObjectName":
        return {"Xmp.dc.title": {'lang="x-default"': value}}
    if key in ("Exif.GPSInfo.GPSLatitude", "Exif.GPSInfo.GPSLongitude"):
        return {}  # written with its reference below, as XMP's "DD,MM.mmmmN"
    if key in ("Exif.GPSInfo.GPSLatitudeRef", "Exif.GPSInfo.GPSLongitudeRef"):
        return {}
    return {}


def _gps_for_xmp(tags: dict[str, Any]) -> dict[str, str]:
    out = {}
    for axis in ("Latitude", "Longitude"):
        raw, ref = tags.get(f"Exif.GPSInfo.GPS{axis}"), tags.get(f"Exif.GPSInfo.GPS{axis}Ref")
        if not raw or not ref:
            continue
        try:
            parts = [int(a) / int(b) for a, b in (p.split("/") for p in str(raw).split())]
        except (ValueError, ZeroDivisionError):
            continue
        degrees, minutes = int(parts[0]), parts[1] + (parts[2] / 60 if len(parts) > 2 else 0)
        out[f"Xmp.exif.GPS{axis}"] = f"{degrees},{minutes:.6f}{ref}"
    return out


def _same_pixels(before: bytes, after: bytes) -> bool:
    import numpy as np
    from PIL import Image

    from dedup_cli.media.decode import register_plugins

    register_plugins()
    with Image.open(io.BytesIO(before)) as a, Image.open(io.BytesIO(after)) as b:
        return (
            a.size == b.size and a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
        )


def merged_into_file(keeper: bytes, copy: bytes) -> Merged | None:
    """The keeper's bytes with the fields only the copy has; None when it lacks nothing.
    Raises ``MetadataError`` when they cannot be written, or the pixels would change."""
    missing = lacking(read(keeper), read(copy))
    if not missing:
        return None
    data = _write(keeper, missing, xmp_only=False)
    if not _same_pixels(keeper, data):
        raise MetadataError("writing the metadata would change the keeper's pixels")
    return Merged(data, sorted(missing))


def merged_into_sidecar(sidecar: bytes | None, keeper: bytes, copy: bytes) -> Merged | None:
    """The keeper's XMP sidecar (a new one when ``sidecar`` is None) with the fields that
    neither the keeper nor its sidecar has and the copy does; None when nothing lacks."""
    has = read(keeper)
    if sidecar is not None:
        has.update(read(sidecar))
    theirs = read(copy)
    missing = lacking(has, theirs)
    if not missing:
        return None
    if "gps" in missing:
        missing["gps"] = {**missing["gps"], **_gps_for_xmp(theirs)}
    data = _write(sidecar if sidecar is not None else EMPTY_SIDECAR, missing, xmp_only=True)
    return Merged(data, sorted(missing))
