"""The compat module's choice of OpenBLAS kernel from the CPU's flags."""

import pytest

from components import compat


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
