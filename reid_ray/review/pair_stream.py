"""The mined pairs (``pairs/*.parquet``) as a stream of record batches, and which pair ids a stream has seen.

Consumers of every pair (the review writer, form_pairs) read through here, so memory holds a batch, not the corpus.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from reid_ray.schemas import PAIR

BATCH_ROWS = 65_536


class PairFileError(ValueError):
    """A pairs file that cannot be read as a PAIR table; the message names it."""


def pair_files(pairs_dir: str | Path) -> list[Path]:
    """``pairs_dir/*.parquet`` in name order, the order every consumer reads them in (writes in flight end
    in ``.tmp``)."""
    pairs_dir = Path(pairs_dir)
    return sorted(pairs_dir.glob("*.parquet")) if pairs_dir.is_dir() else []


def pair_batches(
    files: list[Path],
    *,
    columns: list[str] | None = None,
    filter: ds.Expression | None = None,
    batch_size: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Batches of the files in file order, then row order, cast to PAIR (a missing column reads as null).
    One scanner per file, so an error names its file and readahead never spans many files."""
    for path in files:
        try:
            scanner = ds.dataset(path, schema=PAIR, format="parquet").scanner(
                columns=columns, filter=filter, batch_size=batch_size, batch_readahead=2, fragment_readahead=1
            )
            for batch in scanner.to_batches():
                if batch.num_rows:
                    yield batch
        except (pa.ArrowException, OSError) as err:
            raise PairFileError(f"{path}: not a readable PAIR table ({err})") from None


class FirstSeen:
    """Which ids of each batch are seen for the first time in the stream.

    The ids live in a temporary SQLite table, not a Python set: every mined pair passes through, and a set of their
    ids would grow with the corpus, while SQLite keeps a fixed page cache and spills the rest to a temporary file.
    """

    def __init__(self, cache_mib: int = 32):
        self._db = sqlite3.connect("")  # "": a private temporary database, deleted on close
        self._db.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID")

    def mask(self, ids: list[str]) -> list[bool]:
        """True where an id is new: not in an earlier batch, nor earlier in this one."""
        known = {
            r[0]
            for r in self._db.execute("SELECT id FROM seen WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(ids),))
        }
        # Sorted inserts touch each B-tree page once per batch instead of once per id.
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((i,) for i in sorted(set(ids))))
        out = []
        for i in ids:
            out.append(i not in known)
            known.add(i)
        return out

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FirstSeen:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
