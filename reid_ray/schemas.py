"""Arrow schemas of the records written to disk. One schema per concept; every stage reads and writes these.

Side fields of a pair carry an ``a_`` / ``b_`` prefix; candidates carry the same side fields unprefixed.
Frames are 0-based indices in the source video; boxes are x1, y1, x2, y2 in source pixels.
"""
from __future__ import annotations

import pyarrow as pa

BBOX = pa.list_(pa.float32(), 4)

LABELS = ("identical", "same_category_different_instance", "unrelated", "pending_review")
VERIFIED_BY = ("auto", "human")  # who decided the label; null while nobody has (a pending_review pair)
NOBODY_YET = "nobody_yet"  # how counts name the null verified_by

VIDEO = pa.schema(
    [
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("license", pa.string()),
        ("metadata", pa.string()),  # JSON object of the manifest's other columns
    ]
)

CLIP_PAIR = pa.schema(
    [
        ("clip_pair_id", pa.string()),
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("license", pa.string()),
        ("fps", pa.float64()),
        ("gap_s", pa.float64()),
        ("a_start_frame", pa.int64()),
        ("a_end_frame", pa.int64()),  # exclusive
        ("b_start_frame", pa.int64()),
        ("b_end_frame", pa.int64()),
        ("a_shot", pa.int64()),
        ("b_shot", pa.int64()),
        ("across_cut", pa.bool_()),
        # What the clip pair was made from (id's uri, licence, content fingerprint): a rerun whose source
        # differs redoes the video instead of keeping results of other bytes.
        ("source_key", pa.string()),
    ]
)
CLIP_PAIR_FIELDS = tuple(CLIP_PAIR.names)  # a clip pair row's columns, in order: every pair stage passes them on

CANDIDATE = pa.schema(
    [
        ("candidate_id", pa.string()),
        ("clip_pair_id", pa.string()),
        ("side", pa.string()),  # "a" or "b"
        ("track_id", pa.int64()),  # within the clip
        ("video_id", pa.string()),
        ("license", pa.string()),
        ("category", pa.string()),
        ("score", pa.float32()),
        ("frame", pa.int64()),
        ("t_s", pa.float64()),
        ("bbox", BBOX),
        ("mask_rle", pa.string()),  # COCO RLE counts (pycocotools, compressed string)
        ("mask_height", pa.int32()),
        ("mask_width", pa.int32()),
        ("keypoints", pa.list_(pa.float32())),  # 5 x (x, y) for faces/people with a face; empty otherwise
        ("sharpness", pa.float32()),
        ("max_overlap", pa.float32()),
        ("max_similarity_in_frame", pa.float32()),
        ("keep", pa.bool_()),
        ("reject_reason", pa.string()),  # "" when kept
        ("embedding", pa.list_(pa.float32())),
    ]
)

_SIDE = [
    ("video_id", pa.string()),
    ("frame", pa.int64()),
    ("t_s", pa.float64()),
    ("bbox", BBOX),
    ("candidate_id", pa.string()),
    ("track_id", pa.int64()),
    ("score", pa.float32()),  # the detector's own score of the view shown (not the pair's confidence)
]

PAIR = pa.schema(
    [
        ("pair_id", pa.string()),
        ("label", pa.string()),
        ("confidence", pa.float32()),  # matches: P(same) (calibrated routing; NaN if not fitted) or 1 - distance
        ("verified_by", pa.string()),
        ("gap_s", pa.float64()),
        ("category", pa.string()),  # "a_category|b_category" for unrelated pairs
        ("license", pa.string()),
        ("clip_pair_id", pa.string()),
        ("similarity", pa.float32()),  # 1 - the tracks' distance (proposal.distance); NaN across embedders
        ("kind", pa.string()),  # "match", "hard_negative", "unrelated"
        *[(f"a_{n}", t) for n, t in _SIDE],
        *[(f"b_{n}", t) for n, t in _SIDE],
    ]
)

# A pair proposed by the segment stage, before routing (``pairs/proposal.py::proposal_rows``): the pair's own fields
# (label, verified_by and confidence still empty for matches and their hard negatives) and what routing needs.
PROPOSAL = pa.schema(
    [
        *PAIR,
        ("distance", pa.float64()),  # the tracks' distance, as routing reads it
        ("static", pa.bool_()),  # a match of a still object (proposal.static_clutter): never auto identical
        ("parent_pair_id", pa.string()),  # a hard negative: the match it is kept for, if that match is auto identical
    ]
)

# A track followed across a clip pair's gap (reid_ray/tracking/bridge.py): its boxes on the sampled frames of both clips.
BRIDGE = pa.schema(
    [
        ("bridge_id", pa.int64()),
        ("side", pa.string()),
        ("frame", pa.int64()),
        ("bbox", BBOX),
    ]
)

# A distance whose answer the run knows without a human (``kind`` positive / negative), or a proposed match's
# distance (``kind`` proposal); the calibration of routing is fitted on these (``reid_ray.calibration``).
CALIBRATION_SAMPLE = pa.schema(
    [
        ("video_id", pa.string()),
        ("clip_pair_id", pa.string()),
        ("category", pa.string()),
        ("kind", pa.string()),
        ("distance", pa.float64()),
    ]
)

ERROR = pa.schema(
    [
        ("stage", pa.string()),
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("item_id", pa.string()),  # clip or pair id where the error is narrower than a video
        ("error_type", pa.string()),
        ("message", pa.string()),
    ]
)


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) to a table of exactly this schema; a missing or mistyped field fails here, not downstream."""
    return pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()


def error_row(stage: str, message: str, *, video_id: str = "", uri: str = "", item_id: str = "", error_type: str = "") -> dict:
    return {
        "stage": stage,
        "video_id": video_id,
        "uri": uri,
        "item_id": item_id,
        "error_type": error_type or "error",
        "message": message,
    }
