"""RecordBook serialises each record once; its chunks are chunk_records' chunks, whatever the order of adds."""

from __future__ import annotations

import random

from startbench.core.records import RecordBook, chunk_records


def _record(i: int, finished: float, note: str = "") -> dict:
    return {"name": f"run-{i}", "order": i, "finishedMs": finished, "result": "Succeeded", "note": note * 40}


def test_book_chunks_equal_chunk_records_as_records_are_added_and_replaced():
    rng = random.Random(7)
    book, added = RecordBook(), []
    for step in range(60):
        for _ in range(rng.randint(1, 6)):
            i = rng.randint(0, 80)
            record = _record(i, rng.uniform(0, 1e6), note=str(step))  # a run recorded again replaces its record
            book.add(record)
            added.append(record)
        assert book.chunks(max_bytes=2_000) == chunk_records(added, max_bytes=2_000)
        book.written(book.chunks(max_bytes=2_000))


def test_book_read_back_from_its_chunks_chunks_the_same():
    book = RecordBook()
    for i in range(50):
        book.add(_record(i, 1000.0 + i))
    chunks = book.chunks(max_bytes=3_000)
    assert RecordBook(chunks).chunks(max_bytes=3_000) == chunks
