"""The compat module runs first in the test process too, before any test imports numpy."""

import uuid

import pytest

import emograph.components.compat  # noqa: F401


@pytest.fixture
def ram_dir():
    """A fresh directory on TF's in-memory filesystem, standing in for a gs:// artifact URI."""
    import tensorflow as tf

    root = f"ram://test-{uuid.uuid4().hex}"
    tf.io.gfile.makedirs(root)
    yield root
    tf.io.gfile.rmtree(root)


def _ram_filesystem():
    """Beam's view of TF's ram:// filesystem (through tf.io.gfile), so Beam jobs, TFX's included,
    read and write a ram:// pipeline root as they would gs:// on a cluster. Defining the class
    registers it with Beam's FileSystems."""
    import tensorflow as tf
    from apache_beam.io.filesystem import (
        BeamIOError,
        CompressedFile,
        CompressionTypes,
        FileMetadata,
        FileSystem,
    )

    class _Counted:
        """A writable GFile that knows its position (ram:// cannot tell()) and exists once
        opened (GFile creates a file on its first write)."""

        mode = "wb"

        def __init__(self, raw):
            self._raw, self._position = raw, 0
            raw.write(b"")

        def write(self, data):
            self._raw.write(data)
            self._position += len(data)

        def tell(self):
            return self._position

        def flush(self):
            self._raw.flush()

        def close(self):
            self._raw.close()

        @property
        def closed(self):
            return self._raw.closed

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    class RamFileSystem(FileSystem):
        @classmethod
        def scheme(cls):
            return "ram"

        def join(self, basepath, *paths):
            return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

        def split(self, path):
            head, _, tail = path.rstrip("/").rpartition("/")
            return head, tail

        def mkdirs(self, path):
            tf.io.gfile.makedirs(path)

        def has_dirs(self):
            return True

        def _list(self, dir_or_prefix):
            if not tf.io.gfile.exists(dir_or_prefix):
                return
            for root, _, files in tf.io.gfile.walk(dir_or_prefix):
                for name in files:
                    path = f"{root.rstrip('/')}/{name}"
                    yield FileMetadata(path, tf.io.gfile.stat(path).length, 0.0)

        def _open(self, path, mode, compression_type):
            compression_type = FileSystem._get_compression_type(path, compression_type)
            raw = tf.io.gfile.GFile(path, mode)
            if mode == "wb":
                raw = _Counted(raw)
            if compression_type == CompressionTypes.UNCOMPRESSED:
                return raw
            return CompressedFile(raw, compression_type=compression_type)

        def create(self, path, mime_type=None, compression_type=CompressionTypes.AUTO):
            tf.io.gfile.makedirs(path.rpartition("/")[0])
            return self._open(path, "wb", compression_type)

        def open(self, path, mime_type=None, compression_type=CompressionTypes.AUTO):
            return self._open(path, "rb", compression_type)

        def copy(self, source_file_names, destination_file_names):
            for source, destination in zip(source_file_names, destination_file_names, strict=True):
                tf.io.gfile.copy(source, destination, overwrite=True)

        def rename(self, source_file_names, destination_file_names):
            for source, destination in zip(source_file_names, destination_file_names, strict=True):
                tf.io.gfile.rename(source, destination, overwrite=True)

        def exists(self, path):
            return tf.io.gfile.exists(path)

        def size(self, path):
            return tf.io.gfile.stat(path).length

        def last_updated(self, path):
            return 0.0

        def checksum(self, path):
            return str(self.size(path))

        def metadata(self, path):
            if not self.exists(path):
                raise BeamIOError(f"Path does not exist: {path}")
            return FileMetadata(path, self.size(path), 0.0)

        def delete(self, paths):
            for path in paths:
                if tf.io.gfile.isdir(path):
                    tf.io.gfile.rmtree(path)
                elif tf.io.gfile.exists(path):
                    tf.io.gfile.remove(path)

    return RamFileSystem


@pytest.fixture(scope="session")
def ram_beam_filesystem():
    """Registers RamFileSystem with Beam for the rest of the session."""
    return _ram_filesystem()
