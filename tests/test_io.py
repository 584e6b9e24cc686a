"""``parquet_batches``: the driver's one reader of per-clip-pair files (calibration samples, pairs, errors)."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from reid_ray.io import parquet_batches
from reid_ray.schemas import CALIBRATION_SAMPLE


def test_every_visible_file_in_path_order_filtered_and_in_whole_batches(tmp_path):
    expected = []
    for v in range(6):
        for c in range(5):
            rows = [{"video_id": f"v{v}", "clip_pair_id": f"c{c}", "category": "person", "kind": "proposal" if k % 2 else "positive",
                     "distance": None if k == 3 else v + c / 10 + k / 100} for k in range(4)]
            folder = tmp_path / f"v{v}"
            folder.mkdir(exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows, schema=CALIBRATION_SAMPLE), folder / f"c{c}.parquet")
            expected += [(r["clip_pair_id"], r["distance"]) for r in rows if r["distance"] is not None]
    pq.write_table(pa.Table.from_pylist(rows, schema=CALIBRATION_SAMPLE), tmp_path / "v0" / ".c9.parquet.tmp.parquet")  # a write in flight
    batches = list(parquet_batches(tmp_path, ["clip_pair_id", "distance"], CALIBRATION_SAMPLE, pads.field("distance").is_valid(), batch_size=40))
    got = [(c, d) for b in batches for c, d in zip(b.column("clip_pair_id").to_pylist(), b.column("distance").to_pylist())]
    assert got == expected  # 90 rows: path order, missing distances filtered out, the hidden file skipped
    assert [b.num_rows for b in batches] == [40, 40, 10]  # small files gathered into whole batches
    assert all(b.schema.names == ["clip_pair_id", "distance"] for b in batches)
    kinds = parquet_batches(tmp_path, ["distance"], CALIBRATION_SAMPLE, pads.field("kind") == "positive")  # filter on an unread column
    assert sum(b.num_rows for b in kinds) == 60 and list(parquet_batches(tmp_path / "none", ["distance"], CALIBRATION_SAMPLE)) == []
