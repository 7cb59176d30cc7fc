"""The compat module's choice of OpenBLAS kernel from the CPU's flags."""

import os
import subprocess
import sys

import pytest

from emograph.components import compat


@pytest.mark.parametrize(
    ("flags", "core"),
    [
        ("fpu sse3 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl", "SkylakeX"),
        ("fpu sse3 avx avx2 fma avx512f", "Haswell"),  # AVX512 foundation alone is not enough
        ("fpu sse3 avx", None),
    ],
)
def test_openblas_core_follows_the_instruction_sets(tmp_path, flags, core):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        f"processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: {flags}\n"
    )
    assert compat.openblas_core(str(cpuinfo)) == core


def test_openblas_core_leaves_detection_to_openblas_without_cpuinfo(tmp_path):
    assert compat.openblas_core(str(tmp_path / "missing")) is None


def _run(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )


@pytest.mark.skipif(compat.openblas_core() is None, reason="CPU without AVX2")
def test_numpy_imported_after_components_runs_the_chosen_kernels():
    out = _run(
        "import emograph.components.compat, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "print(*{i['architecture'] for i in threadpool_info() if i['internal_api'] == 'openblas'})"
    )
    assert out.stdout.split() == [compat.openblas_core()]


@pytest.mark.skipif(compat.openblas_core() is None, reason="CPU without AVX2")
def test_numpy_imported_first_is_warned_about():
    assert (
        "import emograph.components.compat first"
        in _run("import numpy, emograph.components.compat").stderr
    )
