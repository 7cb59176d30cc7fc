"""`pip install .[edge]` gives a working `emograph predict` in a venv without TensorFlow, under
the one `emograph` namespace, with the schemas as package data.

The install uses the project's constraints and pip's normal cache (about 20 s once the wheels are
cached). The source is copied first, so building the wheel leaves no build/ or egg-info in the
working tree that other processes use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emograph.components.edge.testing import CLASSES, build_tiny_model

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "constraints.txt", "pipeline", "components", "schemas")


def _run(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_edge_extra_installs_and_predicts_without_tensorflow(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(REPO / name, source / name)
    env_dir = tmp_path / "venv"
    # Same interpreter as the tests; `python -m venv` through it, as a user would.
    assert _run(sys.executable, "-m", "venv", env_dir, cwd=tmp_path).returncode == 0
    python, emograph = env_dir / "bin" / "python", env_dir / "bin" / "emograph"

    requirement = f"{source}[edge]"
    constraints = source / "constraints.txt"
    install = _run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "-c",
        constraints,
        requirement,
        cwd=tmp_path,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    build_tiny_model(tmp_path / "model", "int8")
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "clip.wav", rng.uniform(-0.3, 0.3, (2 * 44100, 2)), 44100)
    predict = _run(emograph, "predict", tmp_path / "model", tmp_path / "clip.wav", cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr
    label = predict.stdout.split(": ", 1)[1].split()[0]
    assert label in CLASSES, predict.stdout

    no_tf = _run(python, "-c", "import tensorflow", cwd=tmp_path)
    assert no_tf.returncode != 0 and "No module named 'tensorflow'" in no_tf.stderr

    for generic in ("pipeline", "components", "schemas"):  # no generic top-level names
        imported = _run(python, "-c", f"import {generic}", cwd=tmp_path)
        assert f"No module named '{generic}'" in imported.stderr, generic
    assert _run(emograph, "--help", cwd=tmp_path).returncode == 0
    quiet = _run(
        python,
        "-c",
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import emograph.components.edge\n"
        "from emograph.schemas import schema_path\n"
        "assert schema_path('raw_audio').is_file() and schema_path('packed_examples').is_file()\n"
        "assert dict(os.environ) == before, 'environment changed'\n"
        "assert 'tensorflow.estimator' not in sys.modules, 'module stubbed'",
        cwd=tmp_path,
    )
    assert quiet.returncode == 0, quiet.stderr
