"""The Evaluator's TFMA configuration: UAR first, per-class recall, slices, the blessing rule."""

from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from emograph.components import features as F

METRICS_MODULE = "emograph.components.evaluation.metrics"
CANDIDATE, BASELINE = "candidate", "baseline"
UAR = "uar"


def eval_config(classes: tuple[str, ...], uar_margin: float) -> tfma.EvalConfig:
    """Blesses the candidate if its UAR beats chance and is no more than `uar_margin` below the
    baseline's (the speech-only student) on the test speakers."""
    n = len(classes)
    uar_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 1.0 / n}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -uar_margin}
        ),
    )
    metrics = [
        tfma.MetricConfig(class_name="ExampleCount"),
        tfma.MetricConfig(class_name="SparseCategoricalAccuracy", config='{"name": "wa"}'),
        tfma.MetricConfig(
            class_name="UnweightedAverageRecall",
            module=METRICS_MODULE,
            config=json.dumps({"num_classes": n, "name": UAR}),
            # The rule judges the whole test split; per-speaker slices are reported, not gated.
            per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()], threshold=uar_threshold
                )
            ],
        ),
    ] + [
        tfma.MetricConfig(
            class_name="ClassRecall",
            module=METRICS_MODULE,
            config=json.dumps({"num_classes": n, "class_index": i, "name": f"recall_{c}"}),
        )
        for i, c in enumerate(classes)
    ]
    spec = dict(
        signature_name="serving_default", label_key=F.LABEL_ID, prediction_key="probabilities"
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(name=CANDIDATE, **spec),
            tfma.ModelSpec(name=BASELINE, is_baseline=True, **spec),
        ],
        slicing_specs=[
            tfma.SlicingSpec(),
            tfma.SlicingSpec(feature_keys=[F.SPEAKER]),
            tfma.SlicingSpec(feature_keys=[F.CORPUS]),
        ],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )
