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
