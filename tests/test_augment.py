"""Log-mel augmentation: shapes, exact masks, gain and shift semantics, determinism, off."""

import emograph.components.compat  # noqa: F401  (first: sets up TF_USE_LEGACY_KERAS and the NSL stub)

# isort: split
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from emograph.components import features as F
from emograph.components.config import AugmentConfig
from emograph.components.models import augment as A

FRAMES, BANDS, BATCH = 30, 8, 4
NOTHING = AugmentConfig(
    gain_db=0, max_shift_frames=0, noise_std=0, time_masks=0, freq_masks=0, time_mask_frames=0
)
SEED = tf.constant([3, 7], tf.int64)


@pytest.fixture
def logmel():
    rng = np.random.default_rng(0)
    return tf.constant(rng.standard_normal((BATCH, FRAMES * BANDS)) + 5.0, tf.float32)


def _grid(x) -> np.ndarray:
    return np.asarray(x).reshape(-1, FRAMES, BANDS)


def test_span_mask_zeros_exactly_the_union_of_the_spans():
    mask = A.span_mask(10, tf.constant([[2, 5], [0, 1]]), tf.constant([[2, 3], [0, 3]])).numpy()
    np.testing.assert_array_equal(mask[0], [1, 1, 0, 0, 1, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(mask[1], [1, 0, 0, 0, 1, 1, 1, 1, 1, 1])  # width 0: no mask


def test_off_is_the_identity(logmel):
    assert A.augment(logmel, FRAMES, BANDS, AugmentConfig(enabled=False), SEED) is logmel
    np.testing.assert_array_equal(A.augment(logmel, FRAMES, BANDS, NOTHING, SEED), logmel)


def test_default_augmentation_keeps_the_shape_and_is_deterministic(logmel):
    out = A.augment(logmel, FRAMES, BANDS, AugmentConfig(), SEED)
    assert out.shape == logmel.shape and out.dtype == tf.float32
    np.testing.assert_array_equal(out, A.augment(logmel, FRAMES, BANDS, AugmentConfig(), SEED))
    other = A.augment(logmel, FRAMES, BANDS, AugmentConfig(), tf.constant([3, 8], tf.int64))
    assert not np.allclose(out, other)


def test_masks_zero_whole_frames_and_bands_within_their_budget(logmel):
    cfg = dataclasses.replace(NOTHING, time_masks=2, time_mask_frames=5)
    grid = _grid(A.augment(logmel, FRAMES, BANDS, cfg, SEED))
    zero_frames = (grid == 0).all(axis=2).sum(axis=1)
    assert (grid == 0).sum() == zero_frames.sum() * BANDS  # masks cover whole frames only
    assert zero_frames.max() <= 2 * 5 and zero_frames.sum() > 0
    cfg = dataclasses.replace(NOTHING, freq_masks=1, freq_mask_bands=3)
    grid = _grid(A.augment(logmel, FRAMES, BANDS, cfg, SEED))
    zero_bands = (grid == 0).all(axis=1).sum(axis=1)
    assert (grid == 0).sum() == zero_bands.sum() * FRAMES
    assert zero_bands.max() <= 3 and zero_bands.sum() > 0


def test_gain_is_one_offset_per_example_and_band_scaled_from_db(logmel):
    scale = np.linspace(0.1, 0.8, BANDS).astype(np.float32)
    cfg = dataclasses.replace(NOTHING, gain_db=6.0)
    delta = _grid(A.augment(logmel, FRAMES, BANDS, cfg, SEED, scale)) - _grid(logmel)
    np.testing.assert_allclose(delta, delta[:, :1, :].repeat(FRAMES, axis=1), atol=1e-5)
    db = delta[:, 0, :] / scale  # the same dB change in every band of an example
    np.testing.assert_allclose(db, db[:, :1].repeat(BANDS, axis=1), atol=1e-4)
    assert np.abs(db).max() <= 6.0
    np.testing.assert_allclose(A.db_to_normalised([1.0]), [np.log(10) / 10], rtol=1e-6)


def test_time_shift_is_a_circular_roll_of_each_example(logmel):
    cfg = dataclasses.replace(NOTHING, max_shift_frames=4)
    out, grid = _grid(A.augment(logmel, FRAMES, BANDS, cfg, SEED)), _grid(logmel)
    for i in range(BATCH):
        rolls = [s for s in range(-4, 5) if np.array_equal(out[i], np.roll(grid[i], s, axis=0))]
        assert rolls, f"example {i} is not a roll of at most 4 frames"


def test_dataset_augments_the_sample_only_and_redraws_each_epoch(logmel):
    nbr = "NL_nbr_0_" + F.LOGMEL
    feats = {F.LOGMEL: logmel, nbr: logmel, "NL_nbr_0_weight": tf.ones([BATCH, 1])}
    ds = tf.data.Dataset.from_tensors((feats, tf.zeros([BATCH], tf.int64)))
    augmented = A.augment_dataset(ds, FRAMES, BANDS, AugmentConfig(), seed=1)
    first, second = (next(iter(augmented))[0] for _ in range(2))
    np.testing.assert_array_equal(first[nbr], logmel)
    assert not np.allclose(first[F.LOGMEL], logmel)
    assert not np.allclose(first[F.LOGMEL], second[F.LOGMEL])
    assert A.augment_dataset(ds, FRAMES, BANDS, AugmentConfig(enabled=False), seed=1) is ds


def test_negative_settings_are_refused():
    with pytest.raises(ValueError, match="noise_std"):
        AugmentConfig(noise_std=-0.1)
