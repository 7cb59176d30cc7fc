"""Reading a run's artifacts back works on any tf.io.gfile filesystem, not only local paths."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from emograph.pipeline import report


def test_artifact_json_reads_an_object_store_like_path(ram_dir):
    with tf.io.gfile.GFile(f"{ram_dir}/stats.json", "w") as f:
        f.write(json.dumps({"nodes": 3, "edges": 4}))
    assert report.artifact_has(ram_dir, "stats.json")
    assert report.artifact_json(ram_dir, "stats.json") == {"nodes": 3, "edges": 4}


def test_a_missing_artifact_file_is_file_not_found(ram_dir):
    assert not report.artifact_has(ram_dir, "BLESSED")
    with pytest.raises(FileNotFoundError, match="training.json"):
        report.artifact_json(ram_dir, "training.json")
