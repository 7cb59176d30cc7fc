"""The distilled student: the soft loss is T^2 x KL, the batches carry the teacher's softened
probabilities, and a few steps train the student with both targets."""

import emograph.components.compat  # noqa: F401  (first: sets up TF_USE_LEGACY_KERAS and the NSL stub)

# isort: split
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from emograph.components import features as F
from emograph.components.config import StudentConfig
from emograph.components.models import networks
from emograph.components.models.training import LOGITS_SIGNATURE
from emograph.components.student.trainer import (
    TEACHER_PROBABILITIES,
    Distiller,
    with_teacher_probabilities,
)

FRAMES, BANDS, CLASSES, BATCH, T = 16, 8, 3, 6, 2.0


def _student() -> Distiller:
    keras.utils.set_random_seed(0)
    base = networks.build_student(StudentConfig("dscnn", filters=(4, 8)), FRAMES, BANDS, CLASSES)
    return Distiller(base, weight=0.5, temperature=T)


def _teacher(path) -> str:
    """A SavedModel with a `logits` signature: a fixed linear map of the log-mel."""
    module = tf.Module()
    module.w = tf.Variable(np.random.default_rng(1).standard_normal((FRAMES * BANDS, CLASSES)))
    spec = tf.TensorSpec([None, FRAMES * BANDS], tf.float32, name=F.LOGMEL)
    module.f = tf.function(
        lambda logmel: {LOGITS_SIGNATURE: tf.matmul(logmel, tf.cast(module.w, tf.float32))}, [spec]
    )
    tf.saved_model.save(module, str(path), signatures={LOGITS_SIGNATURE: module.f})
    return str(path)


def test_soft_loss_is_t_squared_kl_and_zero_when_the_student_agrees():
    model = _student()
    logits = tf.constant([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    teacher = tf.constant([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    student = tf.nn.softmax(logits / T).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.nansum(teacher * (np.log(teacher) - np.log(student)), axis=-1)
    assert float(model.soft_loss(teacher, logits)) == pytest.approx(T**2 * kl.mean(), rel=1e-5)
    weighted = model.soft_loss(teacher, logits, tf.constant([2.0, 0.0]))
    assert float(weighted) == pytest.approx(T**2 * kl[0], rel=1e-5)
    assert float(model.soft_loss(tf.nn.softmax(logits / T), logits)) == pytest.approx(0, abs=1e-6)


@pytest.mark.slow
def test_distilled_student_trains_on_labels_and_teacher_probabilities(tmp_path):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((BATCH, FRAMES * BANDS)), tf.float32)
    labels = tf.constant(np.arange(BATCH) % CLASSES)
    ds = tf.data.Dataset.from_tensors(({F.LOGMEL: x}, labels)).repeat(3)
    teacher_dir = _teacher(tmp_path / "teacher")
    ds = with_teacher_probabilities(ds, teacher_dir, T)
    features, _ = next(iter(ds))
    logits = tf.saved_model.load(teacher_dir).signatures[LOGITS_SIGNATURE](logmel=x)
    np.testing.assert_allclose(
        features[TEACHER_PROBABILITIES], tf.nn.softmax(logits[LOGITS_SIGNATURE] / T), atol=1e-6
    )

    model = _student()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    before = [w.copy() for w in model.student.get_weights()]
    history = model.fit(ds, epochs=1, verbose=0, class_weight={0: 1.0, 1: 2.0, 2: 0.5}).history
    assert history["distillation_loss"][0] > 0 and np.isfinite(history["loss"][0])
    assert "accuracy" in history
    after = model.student.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))


def test_a_teacher_without_logits_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x}, [tf.TensorSpec([None, 2], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "t"), signatures={"other": module.f})
    ds = tf.data.Dataset.from_tensors(({F.LOGMEL: tf.zeros([1, 2])}, tf.zeros([1], tf.int64)))
    with pytest.raises(ValueError, match="no 'logits' signature"):
        with_teacher_probabilities(ds, str(tmp_path / "t"), T)


def test_experiments_distil_each_seed_from_its_fine_tuned_teacher(tmp_path):
    from emograph.pipeline.config import RunConfig
    from emograph.pipeline.pipeline import create_experiment_pipeline

    pipeline = create_experiment_pipeline(RunConfig.tiny(str(tmp_path)), seeds=2)
    trainers = {c.id: c for c in pipeline.components}
    for seed in range(2):
        base = trainers[f"distilled_student_seed{seed}"].inputs["base_model"]
        assert base.producer_component_id == f"finetuned_teacher_seed{seed}"
