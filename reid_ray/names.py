"""File names for video ids: any id (any length, any characters) -> one safe, bounded file-name component.

Contract of ``safe_name``:
  - a plain id (``[A-Za-z0-9][A-Za-z0-9_.-]*``, at most ``MAX_PLAIN`` characters, not ending in a dot, not a
    reserved name) is its own name: ``cam_1`` -> ``cam_1``, so outputs keep the names users know;
  - any other id becomes ``<ascii slug>~<hash>``: ``a/b`` -> ``a_b~<16 hex>``, ``视频`` -> ``id~<16 hex>``, the
    hash being SHA-256 of the exact id's UTF-8 bytes. A plain name never holds ``~``, so the two forms never meet,
    and distinct ids get distinct names (up to a 64-bit hash collision);
  - at most ``MAX_BYTES`` bytes of ASCII, never starting with a dot or dash, never a name of a job's own outputs
    (``errors``, ``report.json``, ``sources`` in ``errors/``, any ``_name``, ...) nor a Windows device name;
  - pure and stable: no locale, Unicode tables or randomness, so every run and machine agrees.

Names are case-sensitive (as on Linux and S3): on a case-insensitive file system ``Cam`` and ``cam`` share a folder.
The id itself stays exact in every record; only paths use its name.
"""
from __future__ import annotations

import hashlib
import re

MAX_BYTES = 100
MAX_PLAIN = MAX_BYTES  # a plain id up to this long is kept as it is
_SLUG_CHARS = 60  # readable prefix of a hashed name
_HASH_HEX = 16
_SEP = "~"  # never in a plain name: hashed and plain names cannot collide

# no leading "_": that marks a job's private files (_run.json, _routing.json, _stats), now and to come
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

# What the jobs write beside or among per-video names (compared case-insensitively: macOS, Windows).
OWN_OUTPUTS = frozenset(
    {
        # long-video job: <out>/<name>/ beside these; <out>/errors/<name>.parquet beside sources.parquet
        "errors", "report.json", "sources",
        # pair job: <out>/<subdir>/<name>.parquet; its own folders and files
        "clip_pairs", "candidates", "bridges", "calibration", "review", "pairs", "input",
        "calibration.json", "calibration.png",
    }
)
# Windows refuses these as a file's name, with any extension
_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})


def _reserved(name: str) -> bool:
    low = name.lower()
    return low in OWN_OUTPUTS or low.split(".", 1)[0] in _DEVICES


def is_plain(video_id: str) -> bool:
    """True when ``video_id`` is its own safe name."""
    return (
        len(video_id) <= MAX_PLAIN
        and _PLAIN.fullmatch(video_id) is not None
        and not video_id.endswith(".")
        and not _reserved(video_id)
    )


def safe_name(video_id: str) -> str:
    """The file-name component of ``video_id`` (see the module's contract)."""
    if is_plain(video_id):
        return video_id
    # surrogatepass: an id decoded with errors="surrogateescape" still hashes, and still differs from any other
    digest = hashlib.sha256(video_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX]
    slug = _UNSAFE.sub("_", video_id).lstrip(".-")[:_SLUG_CHARS].rstrip(".")
    if not any(c.isalnum() for c in slug):
        slug = "id"  # nothing readable in ASCII (视频, видео): the hash alone tells them apart
    elif slug.split(".", 1)[0].lower() in _DEVICES:
        slug = f"_{slug}"  # Windows reads nul.x~... as the device too
    return f"{slug}{_SEP}{digest}"


def packet_file_name(pair_id: str) -> str:
    """The review packet of a pair (``<review>/<name>``): pair ids embed video ids, which may be any text."""
    return f"{safe_name(pair_id)}.png"
