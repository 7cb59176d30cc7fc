"""Expert features (openSMILE eGeMAPS / ComParE functionals), per-speaker normalisation and
the linear baselines whose C is chosen on validation speakers."""

import numpy as np
import pytest

from emograph.components.expert.functionals import (
    FEATURE_SETS,
    dimension,
    feature_names,
    functionals,
    speaker_normalise,
)
from emograph.components.expert.linear import MODELS, LinearBaseline, fit_linear

RATE = 16000


def _tone(seconds: float = 1.5, f0: float = 160.0, amplitude: float = 0.2) -> np.ndarray:
    """A harmonic tone with 5 Hz vibrato, a syllable-rate envelope and a little noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / RATE
    wave = sum(np.sin(h * phase) / h for h in range(1, 8)) / 2
    envelope = 0.4 + 0.6 * np.sin(2 * np.pi * 3 * t) ** 2
    return amplitude * wave * envelope + 0.002 * rng.normal(size=len(t))


@pytest.fixture(scope="module")
def egemaps():
    return functionals(_tone(), RATE, "eGeMAPSv02")


def test_dimensions_of_the_two_sets():
    assert FEATURE_SETS == ("eGeMAPSv02", "ComParE_2016")
    assert (dimension("eGeMAPSv02"), dimension("ComParE_2016")) == (88, 6373)
    assert len(feature_names("eGeMAPSv02")) == 88


def test_egemaps_functionals_are_finite_float32(egemaps):
    assert egemaps.shape == (88,) and egemaps.dtype == np.float32
    assert np.all(np.isfinite(egemaps)) and np.any(egemaps != 0)


def test_compare_functionals_are_finite():
    x = functionals(_tone(seconds=1.0), RATE, "ComParE_2016")
    assert x.shape == (6373,) and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and np.count_nonzero(x) > 3000


def test_a_louder_copy_has_higher_loudness(egemaps):
    louder = functionals(4 * _tone(), RATE, "eGeMAPSv02")
    loudness = feature_names("eGeMAPSv02").index("loudness_sma3_amean")
    assert louder[loudness] > 2 * egemaps[loudness]
    # pitch is untouched by the gain
    f0 = feature_names("eGeMAPSv02").index("F0semitoneFrom27.5Hz_sma3nz_amean")
    assert louder[f0] == pytest.approx(egemaps[f0], abs=0.5)


def test_a_higher_pitch_raises_the_f0_functionals(egemaps):
    higher = functionals(_tone(f0=320.0), RATE, "eGeMAPSv02")
    f0 = feature_names("eGeMAPSv02").index("F0semitoneFrom27.5Hz_sma3nz_amean")
    assert higher[f0] - egemaps[f0] == pytest.approx(12.0, abs=1.0)  # one octave


def test_a_signal_too_short_for_a_frame_gives_zeros():
    with pytest.warns(UserWarning, match="too short"):
        x = functionals(np.zeros(10), RATE, "eGeMAPSv02")
    np.testing.assert_array_equal(x, np.zeros(88, np.float32))


def test_unknown_feature_set_and_non_mono_signals_are_refused():
    with pytest.raises(ValueError, match="eGeMAPSv02"):
        functionals(_tone(), RATE, "GeMAPS")
    with pytest.raises(ValueError, match="eGeMAPSv02"):
        dimension("emobase")
    with pytest.raises(ValueError, match="mono"):
        functionals(np.zeros((2, 1600)), RATE, "eGeMAPSv02")


def _speaker_rows(seed: int = 0):
    rng = np.random.default_rng(seed)
    speakers = np.repeat(["a", "b", "c"], [5, 7, 4])
    rng.shuffle(speakers)
    x = rng.normal(size=(len(speakers), 6)) * [1, 10, 100, 1, 1, 1] + [0, 5, -50, 3, 0, 1]
    x[:, 5] = 7.0  # no spread at all
    return x.astype(np.float32), speakers


def test_speaker_normalise_gives_each_speaker_mean_0_std_1():
    x, speakers = _speaker_rows()
    z = speaker_normalise(x, list(speakers))
    assert z.dtype == np.float32 and z.shape == x.shape
    for speaker in "abc":
        mine = z[speakers == speaker]
        np.testing.assert_allclose(mine[:, :5].mean(axis=0), 0.0, atol=1e-6)
        np.testing.assert_allclose(mine[:, :5].std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(z[:, 5], 0.0)  # zero spread -> 0


def test_speaker_normalise_removes_a_per_speaker_affine_shift():
    x, speakers = _speaker_rows()
    rng = np.random.default_rng(1)
    shifted = x.astype(np.float64).copy()
    for speaker in "abc":
        mine = speakers == speaker
        shifted[mine] = shifted[mine] * rng.uniform(0.5, 3.0, 6) + rng.normal(0, 20, 6)
    np.testing.assert_allclose(
        speaker_normalise(shifted, speakers), speaker_normalise(x, speakers), atol=1e-4
    )


def test_speaker_normalise_refuses_mismatched_speakers():
    with pytest.raises(ValueError, match="speakers"):
        speaker_normalise(np.zeros((3, 2)), ["a", "b"])


def _blobs(n_per_class: int, classes, seed: int, dims: int = 12, spread: float = 0.5):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3, size=(8, dims))
    y = np.repeat(np.asarray(classes), n_per_class)
    return centres[y] + rng.normal(0, spread, size=(len(y), dims)), y


@pytest.mark.parametrize("model", MODELS)
def test_fit_linear_chooses_the_smallest_c_on_separable_data(model):
    x_train, y_train = _blobs(30, [0, 1, 2], seed=0)
    x_val, y_val = _blobs(20, [0, 1, 2], seed=1)
    cs = (10.0, 0.1, 1.0)
    fitted = fit_linear(x_train, y_train, x_val, y_val, 3, model=model, cs=cs)
    assert isinstance(fitted, LinearBaseline) and fitted.model == model
    assert fitted.val_uar == pytest.approx(1.0)
    assert fitted.c == 0.1  # every C separates: the tie goes to the smallest
    assert [c for c, _ in fitted.val_uars] == [0.1, 1.0, 10.0]
    np.testing.assert_array_equal(fitted.predict(x_val), y_val)
    p = fitted.probabilities(x_val)
    assert p.shape == (60, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_c_is_chosen_by_validation_uar_not_by_train_fit():
    # Overlapping classes: the chosen C is the one whose validation UAR is highest, and
    # val_uar is that UAR.
    x_train, y_train = _blobs(40, [0, 1, 2], seed=2, spread=3.0)
    x_val, y_val = _blobs(25, [0, 1, 2], seed=3, spread=3.0)
    fitted = fit_linear(x_train, y_train, x_val, y_val, 3, cs=(1e-4, 0.01, 1.0))
    uars = dict(fitted.val_uars)
    assert fitted.val_uar == max(uars.values()) == uars[fitted.c]
    assert 0.5 < fitted.val_uar < 1.0


@pytest.mark.parametrize("model", MODELS)
def test_a_class_missing_from_training_still_gets_a_column(model):
    x_train, y_train = _blobs(30, [0, 1, 3], seed=4)
    x_val, y_val = _blobs(10, [0, 1, 2, 3], seed=5)
    fitted = fit_linear(x_train, y_train, x_val, y_val, 4, model=model)
    scores = fitted.scores(x_val)
    assert scores.shape == (40, 4)
    assert np.all(scores[:, 2] == (0.0 if model == "lr" else -np.inf))
    assert not np.isin(2, fitted.predict(x_val))
    assert fitted.val_uar == pytest.approx(0.75)  # class 2 is present in val, never predicted
    for temperature in (1.0, 3.0):
        p = fitted.probabilities(x_val, temperature)
        assert p.shape == (40, 4) and np.all(np.isfinite(p))
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        np.testing.assert_array_equal(p[:, 2], 0.0)


def test_a_two_class_svm_lays_its_margin_out_on_both_columns():
    x_train, y_train = _blobs(30, [1, 2], seed=6)
    fitted = fit_linear(x_train, y_train, x_train, y_train, 3, model="svm")
    scores = fitted.scores(x_train)
    np.testing.assert_allclose(scores[:, 1], -scores[:, 2])
    assert np.all(scores[:, 0] == -np.inf)
    np.testing.assert_array_equal(fitted.predict(x_train), y_train)


def test_temperature_flattens_the_probabilities():
    x_train, y_train = _blobs(30, [0, 1, 2], seed=7, spread=1.5)
    fitted = fit_linear(x_train, y_train, x_train, y_train, 3, cs=(1.0,))
    sharp, flat = fitted.probabilities(x_train), fitted.probabilities(x_train, 4.0)
    np.testing.assert_allclose(sharp, fitted.pipeline.predict_proba(x_train))
    assert flat.max(axis=1).mean() < sharp.max(axis=1).mean()
    np.testing.assert_array_equal(flat.argmax(axis=1), sharp.argmax(axis=1))


def test_unknown_model_and_bad_labels_are_refused():
    x, y = _blobs(5, [0, 1], seed=8)
    with pytest.raises(ValueError, match="'lr', 'svm'"):
        fit_linear(x, y, x, y, 2, model="rbf")
    with pytest.raises(ValueError, match="outside"):
        fit_linear(x, y, x, y + 1, 2)
    with pytest.raises(ValueError, match="cs"):
        fit_linear(x, y, x, y, 2, cs=())
