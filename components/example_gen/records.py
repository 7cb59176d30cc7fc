"""What ingest writes and reads back: split names, gzipped TFRecords, JSON report files.

Shared by the batch ingest, the watcher's spans and the reading of spans; every path goes
through Beam's FileSystems, so a report or a span can live on any filesystem Beam knows.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import apache_beam as beam
from apache_beam.io.filebasedsink import FileBasedSink
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.tfrecordio import _TFRecordUtil

from emograph.components.audio.corpora import Clip
from emograph.components.audio.decode import Note

SPLITS = ("train", "eval", "test")

# A decoded clip: (clip, [(start seconds, pcm16 bytes) per window], what decoding lost).
Windows = tuple[Clip, list[tuple[float, bytes]], list[Note]]


class GzipTFRecordSink(FileBasedSink):
    """Gzipped TFRecords (ExampleGen's format) written with zlib's run-length strategy.

    PCM audio has almost no repeated strings for deflate's default search to find: that search
    took half of ingest's time for a file under 1 % smaller. Run-length coding compresses it as well
    and about 4x faster, and any gzip reader reads the result.
    """

    def __init__(self, file_path_prefix: str) -> None:
        super().__init__(
            file_path_prefix,
            coder=beam.coders.BytesCoder(),
            file_name_suffix=".gz",
            mime_type="application/octet-stream",
            compression_type=CompressionTypes.UNCOMPRESSED,
        )

    def open(self, temp_path: str) -> _RleGzipFile:
        return _RleGzipFile(super().open(temp_path))

    def write_encoded_record(self, file_handle: _RleGzipFile, encoded_value: bytes) -> None:
        _TFRecordUtil.write_record(file_handle, encoded_value)


class _RleGzipFile:
    """The write side of a gzip file, compressing with Z_RLE."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._zlib = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 8, zlib.Z_RLE)

    def write(self, data: bytes) -> None:
        self._raw.write(self._zlib.compress(data))

    def close(self) -> None:
        self._raw.write(self._zlib.flush())
        self._raw.close()


def write_json(uri: str, data: Any) -> None:
    with FileSystems.create(uri) as f:
        f.write(json.dumps(data, indent=2, sort_keys=True).encode())


def read_json(uri: str) -> Any:
    with FileSystems.open(uri) as f:
        return json.loads(f.read())


def read_jsonl(pattern: str) -> list[dict]:
    records = []
    for meta in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(meta.path) as f:
            records += [json.loads(line) for line in f.read().decode().splitlines() if line]
    return records
