"""The Pusher's atomic versioned write: a crash mid-push leaves no version and LATEST unchanged."""

from pathlib import Path

import pytest

import components  # noqa: F401
from components.edge import metadata as edge_metadata
from components.tflite_pusher import export


def _contents(directory: Path) -> None:
    edge_metadata.write_metadata(
        directory,
        sample_rate=16000,
        window_samples=16000,
        hop_samples=8000,
        classes=("a", "b"),
        quantization="int8",
    )


def test_push_writes_a_complete_version_and_moves_latest(tmp_path):
    first = export.push(tmp_path, "v1", b"model-1", _contents)
    assert (tmp_path / "LATEST").read_text().strip() == "v1"
    assert sorted(p.name for p in first.iterdir()) == [
        "labels.txt",
        "metadata.json",
        "model.tflite",
    ]
    export.push(tmp_path, "v2", b"model-2", _contents)
    assert (tmp_path / "LATEST").read_text().strip() == "v2"


def test_crash_mid_push_leaves_no_partial_version(tmp_path):
    export.push(tmp_path, "v1", b"model-1", _contents)

    def crash(directory: Path) -> None:
        _contents(directory)
        raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        export.push(tmp_path, "v2", b"model-2", crash)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "v1"]
    assert (tmp_path / "LATEST").read_text().strip() == "v1"


def test_versions_are_immutable(tmp_path):
    export.push(tmp_path, "v1", b"model-1", _contents)
    with pytest.raises(FileExistsError):
        export.push(tmp_path, "v1", b"other", _contents)
