"""A JSON array read and written one element at a time, so a large export or tasks file never sits in memory whole.

The stdlib decoder parses each element (``raw_decode``); this module only walks the array's brackets and commas.
(ijson does this too, but is not a dependency of the project.)
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

CHUNK_CHARS = 1 << 20
_SPACE = re.compile(r"[ \t\n\r]*")


class JsonStreamError(ValueError):
    """Invalid JSON, or not an array; ``lineno`` is the 1-based line in the whole file."""

    def __init__(self, msg: str, lineno: int):
        super().__init__(f"{msg}: line {lineno}")
        self.msg = msg
        self.lineno = lineno


def iter_json_array(f: TextIO, chunk_chars: int = CHUNK_CHARS) -> Iterator[Any]:
    """The elements of the JSON array in ``f``, in order. Memory: a chunk plus the element being parsed
    (an invalid element reads on to the end of the file before it is reported: the error path only)."""
    buf = _Buffer(f, chunk_chars)
    if buf.take() != "[":
        raise buf.error("expected a JSON array", buf.pos)
    if buf.peek() == "]":
        buf.take()
    else:
        while True:
            yield buf.value()
            c = buf.take()
            if c == "]":
                break
            if c != ",":
                raise buf.error("Expecting ',' delimiter", buf.pos - len(c))
    if buf.peek() != "":
        raise buf.error("Extra data", buf.pos)


class _Buffer:
    def __init__(self, f: TextIO, chunk_chars: int):
        self.f, self.chunk = f, chunk_chars
        self.text, self.pos, self.line0, self.eof = "", 0, 1, False  # line0: the line text[0] is on
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        """Append the next chunk, dropping what is consumed. Reads at least as much as is buffered, so an
        element longer than a chunk is re-parsed a logarithmic number of times, not once per chunk."""
        if self.eof:
            return False
        new = self.f.read(max(self.chunk, len(self.text) - self.pos))
        if not new:
            self.eof = True
            return False
        self.line0 += self.text.count("\n", 0, self.pos)
        self.text, self.pos = self.text[self.pos :] + new, 0
        return True

    def peek(self) -> str:
        """The next non-space character ('' at the end), not consumed."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def take(self) -> str:
        c = self.peek()
        self.pos += len(c)
        return c

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as err:
                if self._more():  # maybe only cut off at the chunk's end
                    continue
                raise self.error(err.msg, err.pos) from None
            if end == len(self.text) and self._more():  # a number may go on in the next chunk
                continue
            self.pos = end
            return obj

    def error(self, msg: str, pos: int) -> JsonStreamError:
        return JsonStreamError(msg, self.line0 + self.text.count("\n", 0, pos))


class JsonArrayWriter:
    """Writes a JSON array element by element, byte for byte as ``json.dumps(items, indent=2,
    ensure_ascii=False)`` would (JSON strings hold no raw newline, so indenting every line is safe)."""

    def __init__(self, f: TextIO):
        self.f, self.count = f, 0

    def add(self, obj: Any) -> None:
        self.f.write(",\n  " if self.count else "[\n  ")
        self.f.write(json.dumps(obj, indent=2, ensure_ascii=False).replace("\n", "\n  "))
        self.count += 1

    def close(self) -> None:
        self.f.write("\n]" if self.count else "[]")
