"""The log-mel frontend, written once in TensorFlow ops.

Transform, both trainers, the Embedder and the exported TFLite model all call `log_mel`, so
training and serving compute the same features by construction. It uses only ops that the TFLite
converter maps to builtins (STRIDED_SLICE, CONCATENATION, BATCH_MATMUL, FULLY_CONNECTED, MUL,
ADD, SQUARE, TRANSPOSE, SEGMENT_SUM, GATHER, LOG), so the frontend lives inside the edge model.
librosa is the reference it is tested against (tests/test_frontend.py).

It is written for LiteRT's speed on one core (3 s window, 298 frames; benchmarks/edge.py
`--profile-frontend`), not with `tf.signal.stft`:

- the spectrum is a *four-step DFT as matrix products* (`dft_plan`): the RFFT2D kernel took
  2.4 ms of the 2.8 ms frontend, matmuls run on XNNPACK. Splitting the 512-point DFT into
  16 x 32 costs ~68k multiply-adds a frame (a direct DFT ~195k) and computes only the bins
  under the mel filters (244 of 257). Everything up to the power spectrum is XNNPACK ops
  (no GATHER or REVERSE_V2, which split its graph), and runs in chunks of frames whose
  ~1 MB of intermediates stay in cache: on the shared 2-core machine an elementwise pass over
  a whole window's 1.2 MB spectrum cost 0.08 ms, over half of it 0.02 ms;
- the mel projection is two *segment sums* (`mel_segments`): HTK triangles of bands b and b + 2
  never overlap, so the even bands partition the bins, and so do the odd ones. Gathering each
  band's bins ([40, 30] per frame) cost 1.2 ms in GATHER; a dense [257, 40] matrix would be
  41 KB of constants in a 64 KB model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from emograph.components.config import FrontendConfig

FRONTEND_SCOPE = "frontend"  # the exporter keeps ops under this name scope in float32
FRAMES_PER_CHUNK = 100  # a 3 s window (298 frames) runs in 3 chunks; see power_spectrum


def num_frames(samples: int, cfg: FrontendConfig) -> int:
    """Frames `log_mel` yields for `samples` samples (no padding at either end)."""
    return 1 + (samples - cfg.frame_length) // cfg.frame_step


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(cfg: FrontendConfig, sample_rate: int) -> np.ndarray:
    """[mel_bands, fft_length // 2 + 1] HTK-scale triangles, linear in Hz, peak 1.

    Identical to `librosa.filters.mel(htk=True, norm=None)`.
    """
    bins = np.linspace(0.0, sample_rate / 2.0, cfg.fft_length // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.mel_bands + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


@dataclass(frozen=True)
class MelSegments:
    """The filterbank as two segment sums over bins in natural order.

    Row p of `ids`/`weights` [2, bins] gives every bin its band among the bands of parity p
    (bins of none get weight 0 and their neighbour's id, so ids stay sorted) and its weight
    there; `order` [bands] picks the bands out of [even sums; odd sums].
    """

    ids: np.ndarray
    weights: np.ndarray
    order: np.ndarray


def mel_segments(cfg: FrontendConfig, sample_rate: int, num_bins: int) -> MelSegments:
    """`mel_filterbank` as `MelSegments` over its first `num_bins` bins (the rest must be 0)."""
    full = mel_filterbank(cfg, sample_rate)
    bank = full[:, :num_bins]
    if np.any(full[:, num_bins:]) or not np.all(bank.any(1)):
        raise ValueError("every mel band needs FFT bins, all below num_bins")
    ids = np.zeros((2, num_bins), np.int32)
    weights = np.zeros((2, num_bins), np.float32)
    for parity in (0, 1):
        rows = bank[parity::2]
        if np.any((rows > 0).sum(0) > 1):
            raise ValueError("mel bands b and b + 2 overlap")
        ids[parity] = np.maximum.accumulate(rows.argmax(0) * rows.any(0))
        weights[parity] = rows.max(0)
    even = (cfg.mel_bands + 1) // 2
    order = np.array([b // 2 + (b % 2) * even for b in range(cfg.mel_bands)], np.int32)
    return MelSegments(ids, weights, order)


def num_bins(cfg: FrontendConfig, sample_rate: int) -> int:
    """FFT bins the filterbank uses: 0 up to its last non-zero one."""
    return int(np.flatnonzero(mel_filterbank(cfg, sample_rate).any(0)).max()) + 1


@dataclass(frozen=True)
class DftPlan:
    """Constants of the four-step DFT of one frame (Cooley-Tukey, N = N1 x N2).

    Sample n = N2 n1 + n2 and bin k = k1 + N1 k2; a frame is `rows` x N2 samples, its Hann
    `window` [rows, N2] zero past frame_length. Step 1 is a DFT of length N1 over n1 for each n2,
    done twice (`step1` [2, (k1, re|im), rows]): for Y = [re, im] and for [-im, re], so the
    complex twiddle W_N^(n2 k1) is two MULs and an ADD (`twiddle` [2, (k1, re|im), N2]) with no
    REVERSE (not an XNNPACK op); step 2 is a DFT of length N2 over n2 for each k1, kept to the
    k2 the wanted bins need (`step2` [(re|im, n2), (re|im, k2)]); `pair_sum` [(re|im, k2), k2]
    adds re^2 + im^2 as a matmul (XNNPACK's SUM over that axis was slower).
    """

    rows: int
    n1: int
    n2: int
    k2: int
    window: np.ndarray
    step1: np.ndarray
    twiddle: np.ndarray
    step2: np.ndarray
    pair_sum: np.ndarray


def _split(n: int) -> tuple[int, int]:
    """(N1, N2): N1 the largest divisor of n not above sqrt(n), which minimises the MACs."""
    n1 = max(d for d in range(1, int(np.sqrt(n)) + 1) if n % d == 0)
    return n1, n // n1


def dft_plan(cfg: FrontendConfig, num_bins: int) -> DftPlan:
    """The four-step DFT of a `frame_length` frame zero-padded to `fft_length`, bins < num_bins."""
    n1, n2 = _split(cfg.fft_length)
    rows = -(-cfg.frame_length // n2)
    k2 = -(-num_bins // n1)
    window = np.zeros(rows * n2, np.float32)
    # periodic Hann, as tf.signal.hann_window and librosa's "hann"
    window[: cfg.frame_length] = 0.5 - 0.5 * np.cos(
        2 * np.pi * np.arange(cfg.frame_length) / cfg.frame_length
    )
    a1 = 2 * np.pi * np.outer(np.arange(n1), np.arange(rows)) / n1  # [k1, n1]
    tw = -2 * np.pi * np.outer(np.arange(n1), np.arange(n2)) / cfg.fft_length  # [k1, n2]
    a2 = 2 * np.pi * np.outer(np.arange(n2), np.arange(k2)) / n2
    c, s = np.cos(a2), np.sin(a2)
    f32 = np.float32
    return DftPlan(
        rows=rows,
        n1=n1,
        n2=n2,
        k2=k2,
        window=window.reshape(rows, n2),
        # Y = [cos, -sin] x and [-im, re] = [sin, cos] x, rows (k1, re|im)
        step1=np.stack(
            [
                np.stack([np.cos(a1), -np.sin(a1)], 1).reshape(2 * n1, rows),
                np.stack([np.sin(a1), np.cos(a1)], 1).reshape(2 * n1, rows),
            ]
        ).astype(f32),
        # (yr + i yi)(tr + i ti) = [yr, yi] * tr + [-yi, yr] * ti
        twiddle=np.stack([np.repeat(np.cos(tw), 2, 0), np.repeat(np.sin(tw), 2, 0)]).astype(f32),
        # (br + i bi)(c - i s) = (br c + bi s) + i (bi c - br s)
        step2=np.block([[c, -s], [s, c]]).astype(f32),
        pair_sum=np.concatenate([np.eye(k2), np.eye(k2)]).astype(f32),
    )


def _split_last(x: tf.Tensor, *shape: int) -> tf.Tensor:
    """Reshapes the last axis of `x` into `shape` (leading axes may be of unknown size)."""
    return tf.reshape(x, tf.concat([tf.shape(x)[:-1], shape], 0))


def _merge_last(x: tf.Tensor, axes: int) -> tf.Tensor:
    """Flattens the last `axes` axes of `x` into one."""
    return tf.reshape(x, tf.concat([tf.shape(x)[:-axes], [-1]], 0))


def _permute_last(x: tf.Tensor, *order: int) -> tf.Tensor:
    """Transposes the last len(order) axes of `x` into `order` (0 = the first of them)."""
    lead = len(x.shape) - len(order)
    return tf.transpose(x, [*range(lead), *(lead + o for o in order)])


def _frames(pcm: tf.Tensor, cfg: FrontendConfig, plan: DftPlan, first: int, last: int) -> tf.Tensor:
    """Windowed frames first..last-1 of `pcm` [..., hops, frame_step]: [..., frames, rows, N2].

    Frame f is hops f, f + 1, ... cut to rows x N2 samples, so framing is slices and one
    concatenation (tf.signal.frame's GATHER, its indices and a PAD to rows x N2 are not needed).
    """
    length = plan.rows * plan.n2
    pieces = [
        pcm[..., first + j : last + j, : min(cfg.frame_step, length - j * cfg.frame_step)]
        for j in range(-(-length // cfg.frame_step))
    ]
    return _split_last(tf.concat(pieces, -1), plan.rows, plan.n2) * tf.constant(plan.window)


def _chunk_power(frames: tf.Tensor, plan: DftPlan) -> tf.Tensor:
    """|DFT|^2 of [..., frames, rows, N2] windowed frames: [..., frames, K1, K2]."""
    y, swapped = (tf.matmul(tf.constant(w), frames) for w in plan.step1)  # [..., (k1, re|im), n2]
    b = y * tf.constant(plan.twiddle[0]) + swapped * tf.constant(plan.twiddle[1])
    b = _split_last(_merge_last(b, 2), plan.n1, 2 * plan.n2)  # [..., k1, (re|im, n2)]
    z = tf.matmul(b, tf.constant(plan.step2))  # [..., k1, (re|im, k2)]
    return tf.matmul(tf.square(z), tf.constant(plan.pair_sum))


def power_spectrum(pcm: tf.Tensor, cfg: FrontendConfig, plan: DftPlan) -> tf.Tensor:
    """|DFT|^2 of every Hann-windowed frame: [..., frames, K2, N1], i.e. bin k2 * N1 + k1.

    `pcm` [..., samples] needs a static sample count. Frames run through the DFT in chunks of
    FRAMES_PER_CHUNK, so each chunk's intermediates stay in a core's L2 cache (LiteRT runs the
    ops of one chunk after another).
    """
    samples = pcm.shape[-1]
    if samples is None:
        raise ValueError("power_spectrum needs a static number of samples")
    frames = num_frames(samples, cfg)
    hops = frames - 1 + -(-plan.rows * plan.n2 // cfg.frame_step)
    extra = hops * cfg.frame_step - samples  # whole hops up to the last frame's end
    if extra > 0:
        pcm = tf.pad(pcm, [[0, 0]] * (len(pcm.shape) - 1) + [[0, extra]])
    elif extra < 0:
        pcm = pcm[..., :extra]
    pcm = _split_last(pcm, hops, cfg.frame_step)  # [..., hops, frame_step]
    chunks = [(a, min(a + FRAMES_PER_CHUNK, frames)) for a in range(0, frames, FRAMES_PER_CHUNK)]
    power = tf.concat([_chunk_power(_frames(pcm, cfg, plan, a, b), plan) for a, b in chunks], -3)
    return _permute_last(power, 0, 2, 1)


def mel_power(power: tf.Tensor, segments: MelSegments, bins: int) -> tf.Tensor:
    """[..., frames, K2, N1] power -> [..., frames, bands] mel power, by `segments`."""
    rank = len(power.shape)
    # bins first (natural order), then the leading axes and frames: what SEGMENT_SUM sums over
    by_bin = tf.transpose(power, [rank - 2, rank - 1, *range(rank - 2)])
    by_bin = tf.reshape(by_bin, tf.concat([[-1], tf.shape(by_bin)[2:]], 0))[:bins]
    column = [-1] + [1] * (rank - 2)
    sums = [
        tf.math.segment_sum(
            by_bin * tf.constant(segments.weights[p].reshape(column)),
            tf.constant(segments.ids[p]),
        )
        for p in (0, 1)
    ]
    mel = tf.gather(tf.concat(sums, 0), tf.constant(segments.order))  # [bands, ..., frames]
    return tf.transpose(mel, [*range(1, rank - 1), 0])


def log_mel(pcm: tf.Tensor, cfg: FrontendConfig, sample_rate: int = 16000) -> tf.Tensor:
    """Natural-log mel power spectrogram.

    Args:
      pcm: float32 [..., samples] mono audio in [-1, 1].
    Returns:
      float32 [..., frames, mel_bands], frames = `num_frames(samples, cfg)`.
    """
    return log_mel_and_voice(pcm, cfg, sample_rate, voice=False)[0]


def log_mel_and_voice(
    pcm: tf.Tensor, cfg: FrontendConfig, sample_rate: int = 16000, voice: bool = True
) -> tuple[tf.Tensor, tf.Tensor | None]:
    """`log_mel` and, from the same power spectrum, each frame's pitch and voicing
    [..., frames, 2] (`voice_track`; None if not `voice`)."""
    bins = num_bins(cfg, sample_rate)
    plan, segments = dft_plan(cfg, bins), mel_segments(cfg, sample_rate, bins)
    with tf.name_scope(FRONTEND_SCOPE):
        power = power_spectrum(tf.convert_to_tensor(pcm, tf.float32), cfg, plan)
        logmel = tf.math.log(mel_power(power, segments, bins) + cfg.log_offset)
        return logmel, voice_track(power, cfg, sample_rate) if voice else None


# Pitch: the autocorrelation of each frame's magnitude spectrum below PITCH_BAND_HZ (a matmul
# with cosines at one lag per semitone from PITCH_FMIN_HZ to PITCH_FMAX_HZ), its peak lag the
# pitch. Against openSMILE's SHS pitch on acted speech it agrees within a semitone on most
# voiced frames (benchmarks/voicing.py); the magnitude (not power) spectrum and no correction
# for the window's own autocorrelation keep octave-down errors rare.
PITCH_FMIN_HZ, PITCH_FMAX_HZ, PITCH_BAND_HZ = 55.0, 600.0, 2000.0
PITCH_REFERENCE_HZ = 27.5  # semitone 0, as eGeMAPS
LOW_BAND_HZ = 1000.0
# Voicing: a logistic rule on (autocorrelation peak, frame log-energy minus the window's
# loudest frame's, log share of energy below LOW_BAND_HZ), fitted by benchmarks/voicing.py to
# openSMILE's voiced frames on RAVDESS and to stationary noise; voiced when the logit is > 0.
VOICING_WEIGHTS = (4.298, 0.708, 1.49)
VOICING_BIAS = 2.479
SILENCE_LOG_ENERGY = -16.0  # frames quieter than this (about -85 dBFS) are never voiced


def pitch_lags(cfg: FrontendConfig, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosines [bins, 1 + lags], semitones [lags]): |X| @ cosines is the frame's
    autocorrelation (of its magnitude spectrum up to PITCH_BAND_HZ) at lag 0, then at one lag
    per semitone."""
    semitones = np.arange(
        np.ceil(12 * np.log2(PITCH_FMIN_HZ / PITCH_REFERENCE_HZ)),
        np.floor(12 * np.log2(PITCH_FMAX_HZ / PITCH_REFERENCE_HZ)) + 1,
    )
    lags = np.concatenate([[0.0], sample_rate / (PITCH_REFERENCE_HZ * 2 ** (semitones / 12))])
    k = np.arange(int(round(PITCH_BAND_HZ * cfg.fft_length / sample_rate)) + 1)
    weight = np.where(k == 0, 1.0, 2.0)[:, None]  # the negative-frequency half
    cosines = weight * np.cos(2 * np.pi * np.outer(k, lags) / cfg.fft_length)
    return cosines.astype(np.float32), semitones.astype(np.float32)


def voice_track(power: tf.Tensor, cfg: FrontendConfig, sample_rate: int) -> tf.Tensor:
    """[..., frames, K2, N1] power (`power_spectrum`) -> [..., frames, 2]: each frame's pitch in
    semitones above PITCH_REFERENCE_HZ and its voicing logit (voiced when > 0)."""
    pitch, cues, energy = pitch_and_voicing_cues(power, cfg, sample_rate)
    logit = tf.reduce_sum(cues * tf.constant(VOICING_WEIGHTS), -1) + VOICING_BIAS
    logit = tf.where(energy > SILENCE_LOG_ENERGY, logit, -tf.ones_like(logit))
    return tf.stack([pitch, logit], -1)


def pitch_and_voicing_cues(
    power: tf.Tensor, cfg: FrontendConfig, sample_rate: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Each frame's pitch (semitones) [..., frames], voicing cues [..., frames, 3] (the
    autocorrelation peak, 1 = periodic; log-energy minus the window's loudest frame's; the log
    share of energy below LOW_BAND_HZ) and log-energy [..., frames]."""
    cosines, semitones = pitch_lags(cfg, sample_rate)
    natural = _merge_last(power, 2)  # bin k2 * N1 + k1: natural order
    eps = 1e-10
    low_power = natural[..., : cosines.shape[0]]
    r = tf.matmul(tf.sqrt(low_power), tf.constant(cosines))
    autocorrelation = r[..., 1:] / (r[..., :1] + eps)  # 1 at lag 0
    pitch = tf.gather(tf.constant(semitones), tf.argmax(autocorrelation, axis=-1))
    energy = tf.math.log(tf.reduce_sum(natural, -1) + eps)
    low_bins = int(round(LOW_BAND_HZ * cfg.fft_length / sample_rate)) + 1
    cues = [
        tf.reduce_max(autocorrelation, axis=-1),
        energy - tf.reduce_max(energy, axis=-1, keepdims=True),
        tf.math.log(tf.reduce_sum(natural[..., :low_bins], -1) + eps) - energy,
    ]
    return pitch, tf.stack(cues, -1), energy


def pcm16_to_float(pcm16: tf.Tensor) -> tf.Tensor:
    """int16 PCM -> float32 in [-1, 1)."""
    return tf.cast(pcm16, tf.float32) / 32768.0


def decode_pcm16(raw: tf.Tensor, samples: int) -> tf.Tensor:
    """Serialized little-endian int16 PCM bytes [batch] -> float32 [batch, samples]."""
    pcm = tf.io.decode_raw(raw, tf.int16, little_endian=True)
    return tf.reshape(pcm16_to_float(pcm), [-1, samples])


FUNCTIONALS_PER_BAND = 8
PITCH_FUNCTIONALS = 8
FUNCTIONALS_BOUND = 8.0  # z-scores of functionals are clipped to +-this


def bounded(z: tf.Tensor) -> tf.Tensor:
    """z-scored functionals made safe: a feature that does not vary within a speaker (e.g. a
    band's minimum at the log floor in every window) has a variance of ~0, which float
    rounding can make negative (NaN) or tiny (huge z); such values become 0, and every z is
    clipped to +-FUNCTIONALS_BOUND. Transform, the edge model and the harness all apply it."""
    z = tf.where(tf.math.is_finite(z), z, tf.zeros_like(z))
    return tf.clip_by_value(z, -FUNCTIONALS_BOUND, FUNCTIONALS_BOUND)


def functionals_width(bands: int) -> int:
    """Width of `functionals` for a log-mel of `bands` bands."""
    return FUNCTIONALS_PER_BAND * bands + PITCH_FUNCTIONALS


def functionals(logmel: tf.Tensor, voice: tf.Tensor) -> tf.Tensor:
    """A window's functionals [batch, functionals_width(bands)]: `band_functionals` of its
    log-mel [batch, frames, bands], then `pitch_functionals` of its voice track
    [batch, frames, 2] (`log_mel_and_voice`)."""
    return tf.concat([band_functionals(logmel), pitch_functionals(voice)], axis=-1)


def pitch_functionals(voice: tf.Tensor) -> tf.Tensor:
    """[batch, frames, 2] pitch and voicing logit -> [batch, 8]: over the voiced frames the
    pitch's mean, std, maximum and minimum (semitones), over pairs of consecutive voiced frames
    the mean rise, mean fall and std of its change, and the voiced share of frames.

    The contour of the voice is what acoustic features lack most for emotion: eGeMAPS' pitch
    functionals alone rival its whole set on EMOVO. A window without voiced frames gets zeros
    (and a voiced share of 0).
    """
    pitch, voiced = voice[..., 0], tf.cast(voice[..., 1] > 0, tf.float32)
    eps = 1e-6

    def over(values: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        count = tf.maximum(tf.reduce_sum(mask, -1), 1.0)
        mean = tf.reduce_sum(values * mask, -1) / count
        var = tf.reduce_sum(tf.square(values - mean[:, tf.newaxis]) * mask, -1) / count
        return mean, tf.sqrt(var + eps)

    mean, std = over(pitch, voiced)
    filled = pitch * voiced + mean[:, tf.newaxis] * (1 - voiced)  # unvoiced frames at the mean
    pairs = voiced[:, 1:] * voiced[:, :-1]
    change = pitch[:, 1:] - pitch[:, :-1]
    count = tf.maximum(tf.reduce_sum(pairs, -1), 1.0)
    return tf.stack(
        [
            mean,
            std,
            tf.reduce_max(filled, -1),
            tf.reduce_min(filled, -1),
            tf.reduce_sum(tf.nn.relu(change) * pairs, -1) / count,
            tf.reduce_sum(tf.nn.relu(-change) * pairs, -1) / count,
            over(change, pairs)[1],
            tf.reduce_mean(voiced, -1),
        ],
        axis=-1,
    )


def band_functionals(logmel: tf.Tensor) -> tf.Tensor:
    """[batch, frames, bands] log-mel -> [batch, 8 * bands] statistics of each band over the
    window: mean, std, maximum, minimum, mean absolute and std of the frame-to-frame change, and
    mean and std over the window's louder frames (mean log-mel over bands at least the window's
    average: its voiced part), in that order of blocks of `bands`.

    Utterance statistics of low-level descriptors are what the openSMILE feature sets give a
    linear model. Every one of them moves with a per-band affine change of the log-mel (a
    channel's gain and colour, a speaker's level) except the loud-frame choice, so a per-speaker
    z-score of them (Transform's) does not depend on how the log-mel was normalised first.
    Only reductions and element-wise ops: cheap on a microcontroller.
    """
    x = tf.convert_to_tensor(logmel, tf.float32)
    eps = 1e-6

    def spread(values: tf.Tensor, mean: tf.Tensor) -> tf.Tensor:
        return tf.sqrt(tf.reduce_mean(tf.square(values - mean[:, tf.newaxis]), axis=1) + eps)

    mean = tf.reduce_mean(x, axis=1)
    delta = x[:, 1:] - x[:, :-1]
    loudness = tf.reduce_mean(x, axis=2, keepdims=True)  # [batch, frames, 1]
    loud = tf.cast(loudness >= tf.reduce_mean(loudness, axis=1, keepdims=True), tf.float32)
    count = tf.reduce_sum(loud, axis=1)  # >= 1: the loudest frame is at least the mean
    loud_mean = tf.reduce_sum(x * loud, axis=1) / count
    loud_var = tf.reduce_sum(tf.square(x - loud_mean[:, tf.newaxis]) * loud, axis=1) / count
    return tf.concat(
        [
            mean,
            spread(x, mean),
            tf.reduce_max(x, axis=1),
            tf.reduce_min(x, axis=1),
            tf.reduce_mean(tf.abs(delta), axis=1),
            spread(delta, tf.reduce_mean(delta, axis=1)),
            loud_mean,
            tf.sqrt(loud_var + eps),
        ],
        axis=-1,
    )
