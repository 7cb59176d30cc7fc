"""The Pusher's versioned write: a crash mid-push leaves no version and LATEST unchanged; the
same code pushes to an object store (TF's in-memory `ram://` filesystem stands in for gs://)."""

import contextlib
import time
import uuid
from pathlib import Path

import pytest
import tensorflow as tf

import emograph.components.compat  # noqa: F401
from emograph.components.edge import metadata as edge_metadata
from emograph.components.tflite_pusher import push


def _contents(directory: str) -> None:
    edge_metadata.write_metadata(
        directory,
        sample_rate=16000,
        window_samples=16000,
        hop_samples=8000,
        classes=("a", "b"),
        quantization="int8",
    )


def _read(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


@pytest.fixture
def ram_root() -> str:
    """A fresh push root on a non-local filesystem, removed afterwards."""
    root = f"ram://push-{uuid.uuid4().hex}"
    yield f"{root}/emograph-student"
    # ram:// matches children by bare prefix ("v" also lists "v-1"), so its rmtree can trip
    # over a file it already removed; the root may also never have been written.
    with contextlib.suppress(tf.errors.NotFoundError):
        tf.io.gfile.rmtree(root)


def test_push_writes_a_complete_version_and_moves_latest(tmp_path):
    first = push.push(tmp_path, "v1", b"model-1", _contents)
    assert (tmp_path / "LATEST").read_text().strip() == "v1"
    assert sorted(p.name for p in Path(first).iterdir()) == [
        "labels.txt",
        "metadata.json",
        "model.tflite",
    ]
    push.push(tmp_path, "v2", b"model-2", _contents)
    assert (tmp_path / "LATEST").read_text().strip() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "v1", "v2"]


def test_crash_mid_push_leaves_no_partial_version(tmp_path):
    push.push(tmp_path, "v1", b"model-1", _contents)

    def crash(directory: str) -> None:
        _contents(directory)
        raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        push.push(tmp_path, "v2", b"model-2", crash)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "v1"]
    assert (tmp_path / "LATEST").read_text().strip() == "v1"


def test_versions_are_immutable(tmp_path):
    push.push(tmp_path, "v1", b"model-1", _contents)
    with pytest.raises(FileExistsError):
        push.push(tmp_path, "v1", b"other", _contents)


def test_push_to_an_object_store_writes_the_version_then_latest(ram_root):
    version = push.new_version(ram_root)
    final = push.push(ram_root, version, b"model-1", _contents)
    assert final == f"{ram_root}/{version}" and "://" in final
    assert _read(f"{ram_root}/LATEST") == f"{version}\n".encode()
    assert sorted(tf.io.gfile.listdir(ram_root)) == sorted(["LATEST", version])
    assert sorted(tf.io.gfile.listdir(final)) == ["labels.txt", "metadata.json", "model.tflite"]
    assert _read(f"{final}/model.tflite") == b"model-1"
    meta = edge_metadata.ModelMetadata.from_json(_read(f"{final}/metadata.json").decode())
    assert meta.classes == ("a", "b")
    assert meta.sha256 == edge_metadata.sha256_file(f"{final}/model.tflite")
    assert _read(f"{final}/labels.txt") == b"a\nb\n"


def test_failed_push_to_an_object_store_keeps_latest_and_removes_its_files(ram_root):
    push.push(ram_root, "v1", b"model-1", _contents)

    def crash(directory: str) -> None:
        _contents(directory)
        raise RuntimeError("lost the connection")

    with pytest.raises(RuntimeError):
        push.push(ram_root, "v2", b"model-2", crash)
    assert sorted(tf.io.gfile.listdir(ram_root)) == ["LATEST", "v1"]
    assert _read(f"{ram_root}/LATEST") == b"v1\n"


def test_write_latest_refuses_a_version_without_metadata(ram_root):
    tf.io.gfile.makedirs(f"{ram_root}/v1")
    with pytest.raises(edge_metadata.ModelError, match="write it before LATEST"):
        edge_metadata.write_latest(ram_root, "v1")
    assert not tf.io.gfile.exists(f"{ram_root}/LATEST")


@pytest.mark.parametrize("where", ["local", "ram"])
def test_pushes_within_one_second_get_their_own_versions(where, tmp_path, ram_root):
    root = str(tmp_path) if where == "local" else ram_root
    second = time.gmtime(1_800_000_000)
    versions = []
    for model in (b"model-1", b"model-2", b"model-3"):
        versions.append(push.new_version(root, second))
        push.push(root, versions[-1], model, _contents)
    assert versions == ["20270115T080000", "20270115T080000-1", "20270115T080000-2"]
    assert _read(f"{root}/LATEST") == b"20270115T080000-2\n"
    assert _read(f"{root}/20270115T080000-1/model.tflite") == b"model-2"


def test_two_pushes_in_a_row_succeed(tmp_path):
    for model in (b"model-1", b"model-2"):
        push.push(tmp_path, push.new_version(tmp_path), model, _contents)
    latest = (tmp_path / "LATEST").read_text().strip()
    assert len(list(tmp_path.iterdir())) == 3
    assert (tmp_path / latest / "model.tflite").read_bytes() == b"model-2"
