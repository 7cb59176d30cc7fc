"""`emograph experiment` end to end on tiny synthetic corpora (1 fold, 1 seed, few epochs)."""

import json

import pytest

from emograph.components.expert.baselines import BASELINES
from emograph.pipeline import cli
from emograph.pipeline.config import VARIANTS, RunConfig

pytestmark = pytest.mark.e2e


def test_experiment_writes_results_and_report_with_a_row_per_variant(tmp_path):
    config_file = tmp_path / "tiny.json"
    config_file.write_text(RunConfig.tiny(str(tmp_path / "data_root")).to_json())
    out = tmp_path / "experiment"
    assert (
        cli.main(
            [
                "experiment",
                "--config",
                str(config_file),
                "--folds",
                "1",
                "--seeds",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )

    results = json.loads((out / "results.json").read_text())
    assert set(results["summary"]["variants"]) == set(VARIANTS)
    for variant, entry in results["summary"]["variants"].items():
        assert entry["runs"] == 1, variant
        assert 0.0 <= entry["uar"]["mean"] <= 1.0
        assert 0 < entry["int8_bytes"] < entry["float_bytes"]
    students = results["summary"]["variants"]["nsl_student"]
    assert students["int8_bytes"] <= 128 * 1024  # the edge budget: the whole .tflite
    assert results["folds_detail"][0]["graph"]["edges"] > 0
    assert set(results["summary"]["baselines"]) == set(BASELINES)
    for name, entry in results["summary"]["baselines"].items():
        assert 0.0 <= entry["clip_uar"]["mean"] <= 1.0, name
    differences = results["summary"]["nsl_minus"]
    assert set(differences) == set(VARIANTS[1:]) | set(BASELINES)
    assert all(d["pairs"] == 1 for d in differences.values())

    report = (out / "report.md").read_text()
    for variant in VARIANTS:
        assert f"| {variant} |" in report
    for name in BASELINES:
        assert f"| {name} (openSMILE + linear, float) |" in report
        assert (out / f"confusion_{variant}.png").stat().st_size > 0
