"""``parquet_batches``: the driver's one reader of per-clip-pair files (calibration samples, pairs, errors); the atomic
writers every output goes through."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from reid_ray.io import atomic_files, atomic_paths, parquet_batches, read_parquet, write_table_atomic, write_text_atomic
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


def test_atomic_writes_replace_whole_files_or_leave_the_old_ones(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "sub" / "b.json"
    write_text_atomic("old a\n", a)
    with pytest.raises(RuntimeError), atomic_files(a, b, fsync=True) as (fa, fb):
        fa.write("new a\n")
        fb.write("new b\n")
        raise RuntimeError("interrupted")
    assert a.read_text() == "old a\n" and not b.exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.jsonl"]  # no temp file left
    with atomic_files(a, b, fsync=True) as (fa, fb):
        fa.write("new a\n")
        fb.write("new b\n")
        assert a.read_text() == "old a\n"  # nothing visible before the block ends
    assert (a.read_text(), b.read_text()) == ("new a\n", "new b\n")
    table = pa.table({"x": [1, 2]})
    assert write_table_atomic(table, tmp_path / "t" / "x.parquet") == tmp_path / "t" / "x.parquet"
    assert read_parquet(tmp_path / "t" / "x.parquet").equals(table)
    with atomic_paths(tmp_path / "t" / "x.parquet") as (tmp,):
        assert tmp.name.startswith(".x.parquet.") and tmp.name.endswith(".tmp")  # hidden from *.parquet listings
        pq.write_table(table.slice(1), tmp)
    assert read_parquet(tmp_path / "t" / "x.parquet").num_rows == 1
    assert write_text_atomic("é\n", a, fsync=True).read_bytes() == "é\n".encode()
