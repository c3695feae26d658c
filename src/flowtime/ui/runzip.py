"""
A run as a zip, built while it is sent: the run's own files, then one CSV per
series rebuilt from the Engine's long-table export (``time_bin,offset_minutes,
series,value``, one upstream request read as a stream). The rebuilt files are
the stored ones byte for byte: the export writes each value in the same
canonical number text as the run's series files.

Compression runs in a worker thread, one batch of the export at a time, so the
event loop keeps serving other pages; memory holds one batch and the zip's
directory (a few dozen bytes per series), never the archive.
"""

from __future__ import annotations

import asyncio
import time
import zipfile
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import IO

EXPORT_HEADER = b"time_bin,offset_minutes,series,value"
SERIES_HEADER = b"t,value\n"
# Export bytes handed to the worker thread at once, and row bytes buffered per zip entry.
BATCH_BYTES = 256 * 1024
ROW_BYTES = 256 * 1024
# Longest header line accepted before the export is declared not to be one.
MAX_HEADER_BYTES = 4096


class ExportFormatError(ValueError):
    """The Engine's export is not the long table this module reads."""


class _Sink:
    """An append-only file for ``zipfile`` (no ``seek``/``tell``: entries get data descriptors)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


class RunZip:
    """
    A zip written piece by piece; each call returns the bytes it produced.
    Not thread-safe: one call at a time (the async driver awaits each).

    >>> z = RunZip("r", {"a": "a@A@DEFAULT"})
    >>> data = z.add_file("run.json", b"{}") + z.feed(EXPORT_HEADER + b"\\n0,0,a,1\\n1,60,a,2.5\\n") + z.close()
    >>> import io; f = zipfile.ZipFile(io.BytesIO(data))
    >>> f.namelist(), f.read("r/series/a@A@DEFAULT.csv")
    (['r/run.json', 'r/series/a@A@DEFAULT.csv'], b't,value\\n0,1\\n1,2.5\\n')
    """

    def __init__(self, run_id: str, series_ids: Mapping[str, str]) -> None:
        self.run_id = run_id
        self._ids = series_ids
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", zipfile.ZIP_DEFLATED)  # type: ignore[call-overload]
        self._when = time.localtime()[:6]
        self._rest = b""
        self._header_seen = False
        self._node: bytes | None = None
        self._entry: IO[bytes] | None = None
        self._rows = bytearray()
        self.series_written = 0

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(f"{self.run_id}/{name}", date_time=self._when)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def add_file(self, name: str, content: bytes) -> bytes:
        self._zip.writestr(self._info(name), content)
        return self._sink.take()

    def add_files(self, files: Iterable[tuple[str, bytes]]) -> bytes:
        for name, content in files:
            self._zip.writestr(self._info(name), content)
        return self._sink.take()

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the export (any split); returns the zip bytes made."""
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            self._line(line)
        return self._sink.take()

    def close(self) -> bytes:
        """The end of the export: the last entry and the zip's directory."""
        if self._rest:
            self._line(self._rest)
            self._rest = b""
        if not self._header_seen:
            raise ExportFormatError("the export ended before its header line")
        self._end()
        self._zip.close()
        return self._sink.take()

    def _line(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if not self._header_seen:
            if line != EXPORT_HEADER:
                raise ExportFormatError(f"the export starts with {line[:80]!r}, not {EXPORT_HEADER!r}")
            self._header_seen = True
            return
        if not line:
            return
        # The node id sits between the second comma and the last one (it may hold commas).
        t, comma, rest = line.partition(b",")
        _, comma2, rest = rest.partition(b",")
        node, comma3, value = rest.rpartition(b",")
        if not (comma and comma2 and comma3 and t.isdigit()):
            raise ExportFormatError(f"not a row of the export: {line[:80]!r}")
        if node != self._node:
            self._start(node)
        self._rows += t + b"," + value + b"\n"
        if len(self._rows) >= ROW_BYTES and self._entry is not None:
            self._entry.write(bytes(self._rows))
            self._rows.clear()

    def _start(self, node: bytes) -> None:
        self._end()
        name = node.decode("utf-8", errors="replace")
        safe = self._ids.get(name, name).replace("/", "_").replace("\\", "_")  # no folders in the archive
        self._entry = self._zip.open(self._info(f"series/{safe}.csv"), "w")
        self._entry.write(SERIES_HEADER)
        self._node = node

    def _end(self) -> None:
        if self._entry is None:
            return
        self._entry.write(bytes(self._rows))
        self._rows.clear()
        self._entry.close()
        self._entry = None
        self.series_written += 1


async def read_header(chunks: AsyncIterator[bytes]) -> bytes:
    """
    The export's first bytes, read at least through its header line, which is
    checked (so a wrong answer is an error page, not a broken download).
    """
    got = b""
    while b"\n" not in got:
        chunk = await anext(chunks, None)
        if chunk is None:
            break
        got += chunk
        if len(got) > MAX_HEADER_BYTES:
            break
    if got.split(b"\n", 1)[0].rstrip(b"\r") != EXPORT_HEADER:
        raise ExportFormatError(f"the export starts with {got[:80]!r}, not {EXPORT_HEADER!r}")
    return got


async def zip_chunks(writer: RunZip, files: list[tuple[str, bytes]], head: bytes,
                     chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The zip as it is made: the run's files, then the series, batch by batch, off the loop."""
    out = await asyncio.to_thread(writer.add_files, files)
    if out:
        yield out
    batch = bytearray(head)
    async for chunk in chunks:
        batch += chunk
        if len(batch) >= BATCH_BYTES:
            out = await asyncio.to_thread(writer.feed, bytes(batch))
            batch.clear()
            if out:
                yield out
    out = await asyncio.to_thread(writer.feed, bytes(batch))
    if out:
        yield out
    tail = await asyncio.to_thread(writer.close)
    for start in range(0, len(tail), BATCH_BYTES):
        yield tail[start:start + BATCH_BYTES]
