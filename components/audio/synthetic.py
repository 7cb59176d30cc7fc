"""The built-in synthetic emotional speech corpus: pure numpy/scipy, fast and deterministic.

A source-filter voice (Rosenberg glottal pulses with jitter, shimmer and aspiration, through a
cascade of time-varying formant resonators) speaks CV syllables of a domain's "language". The
emotion moves prosody and voice quality by overlapping amounts, so classes are learnable but
confusable; each domain has its own speakers, sound inventory and channel, so what a model
learns on the source corpus transfers to the target corpus only in part.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from emograph.components.config import EMOTIONS, SynthConfig

VERSION = 1  # bump on any change to the sound, so `write_corpus` regenerates stale corpora
CONTROL_RATE = 1000  # Hz of the prosody and envelope tracks (interpolated to audio rate)
BLOCK_SECONDS = 0.005  # how often the formant filter's coefficients move
MIN_SECONDS, MAX_SECONDS = 1.2, 2.8


@dataclass(frozen=True)
class Prosody:
    """How an emotion sounds. `EMOTION_PROSODY` holds class means, `PROSODY_SPREAD` the
    per-utterance standard deviation that makes neighbouring classes overlap."""

    f0_shift: float  # semitones above the speaker's habitual F0
    f0_range: float  # semitones of the pitch accents
    slope: float  # semitones per second over the utterance (declination when negative)
    final: float  # semitones the last syllable glides: rising > 0, falling < 0
    rate: float  # speaking-rate factor on the speaker's habitual syllable durations
    level: float  # dB of loudness
    jitter: float  # std of the relative period-to-period F0 perturbation
    shimmer: float  # std of the relative period-to-period amplitude perturbation
    open_quotient: float  # open phase of the glottal cycle: 0.4 pressed (flat) .. 0.8 breathy
    aspiration: float  # breath noise relative to the voicing
    tremor: float  # semitones of 6 Hz vibrato

    def values(self) -> np.ndarray:
        return np.array(dataclasses.astuple(self))


# fmt: off
EMOTION_PROSODY: dict[str, Prosody] = {
    #                  f0_shift range slope final rate  level jitter shimmer oq   asp   tremor
    "neutral":   Prosody(0.0,  2.0, -1.0, -1.5, 1.00,  0.0, 0.010, 0.04, 0.60, 0.05, 0.0),
    "calm":      Prosody(-0.6, 1.4, -1.0, -2.1, 0.89, -2.3, 0.008, 0.03, 0.66, 0.08, 0.0),
    "happy":     Prosody(3.5,  5.5,  0.7,  2.5, 1.12,  3.5, 0.010, 0.04, 0.49, 0.04, 0.0),
    "sad":       Prosody(-1.7, 0.9, -2.7, -3.2, 0.77, -4.6, 0.016, 0.06, 0.74, 0.17, 0.1),
    "angry":     Prosody(2.9,  4.3, -1.6, -3.2, 1.12,  6.9, 0.016, 0.06, 0.39, 0.03, 0.0),
    "fearful":   Prosody(4.6,  2.6,  0.7,  2.0, 1.23,  0.0, 0.027, 0.09, 0.66, 0.13, 0.6),
    "disgust":   Prosody(-0.6, 3.2, -2.2, -3.2, 0.83, -1.2, 0.016, 0.06, 0.54, 0.08, 0.0),
    "surprised": Prosody(5.2,  6.6,  1.3,  4.8, 1.06,  3.5, 0.010, 0.04, 0.54, 0.05, 0.0),
}
PROSODY_SPREAD = Prosody(0.9, 0.7, 0.6, 0.9, 0.06, 1.5, 0.0025, 0.01, 0.035, 0.02, 0.06)
PROSODY_LOW = Prosody(-12, 0.0, -8, -8, 0.6, -15, 0.0, 0.0, 0.35, 0.0, 0.0)
PROSODY_HIGH = Prosody(12, 12, 8, 8, 1.6, 15, 0.1, 0.3, 0.85, 0.5, 2.0)
# fmt: on


@dataclass(frozen=True)
class Domain:
    """A corpus's "language" (vowels, consonants, timing) and recording channel."""

    name: str
    prefix: str  # of speaker ids, which keeps them distinct across domains
    vowels: tuple[tuple[float, float, float], ...]  # F1-F3 targets (Hz), adult male tract
    consonants: tuple[tuple[str, float], ...]  # (stop | fricative | sonorant, noise centre Hz)
    # (sonorants are voiced: their centre is unused)
    consonant_seconds: float  # mean consonant duration at rate 1
    vowel_seconds: float  # mean vowel duration at rate 1
    declination: float  # semitones per second the language adds to every contour
    accent_probability: float  # share of syllables carrying a pitch accent
    gain_db: tuple[float, float]  # range of the recording level
    low_cut: tuple[float, float]  # range of the channel's high-pass corner (Hz)
    high_cut: tuple[float, float]  # range of the channel's low-pass corner (Hz)
    snr_db: tuple[float, float]  # range of the additive noise's SNR
    noise_colour: float  # one-pole coefficient of the noise: 0 white, towards 1 rumble
    reverb_seconds: tuple[float, float]  # range of RT60; (0, 0) is a dry room


DOMAINS: dict[str, Domain] = {
    "source": Domain(
        name="source",
        prefix="src",
        vowels=(
            (270, 2290, 3010),
            (530, 1840, 2480),
            (730, 1090, 2440),
            (570, 840, 2410),
            (300, 870, 2240),
            (660, 1720, 2410),
            (500, 1500, 2500),
        ),  # fmt: skip
        consonants=(
            ("stop", 1500),
            ("stop", 3500),
            ("fricative", 5500),
            ("fricative", 3000),
            ("fricative", 1800),
            ("sonorant", 0),
            ("sonorant", 0),
        ),  # fmt: skip
        consonant_seconds=0.075,
        vowel_seconds=0.14,
        declination=-0.5,
        accent_probability=0.3,
        gain_db=(-2, 2),
        low_cut=(50, 80),
        high_cut=(7000, 7800),
        snr_db=(35, 50),
        noise_colour=0.0,
        reverb_seconds=(0, 0),
    ),
    "target": Domain(
        name="target",
        prefix="tgt",
        vowels=(
            (250, 1900, 2200),
            (330, 1400, 2400),
            (600, 1900, 2600),
            (750, 1200, 2600),
            (400, 1600, 2300),
            (350, 1600, 2500),
        ),  # fmt: skip
        consonants=(
            ("stop", 2500),
            ("stop", 1200),
            ("fricative", 4200),
            ("fricative", 6500),
            ("sonorant", 0),
        ),  # fmt: skip
        consonant_seconds=0.055,
        vowel_seconds=0.105,
        declination=1.0,
        accent_probability=0.5,
        gain_db=(-8, -2),
        low_cut=(200, 400),
        high_cut=(3200, 4500),
        snr_db=(15, 30),
        noise_colour=0.9,
        reverb_seconds=(0.1, 0.3),
    ),
}


@dataclass(frozen=True)
class Speaker:
    """One synthetic voice."""

    id: str
    f0: float  # habitual F0 (Hz)
    formant_scale: float  # inverse vocal tract length: scales every formant
    tilt: float  # one-pole low-pass coefficient: the voice's own spectral tilt
    expressiveness: float  # how far their emotions move away from neutral
    rate: float  # habitual speaking-rate factor
    breathiness: float  # aspiration added to every utterance


@dataclass(frozen=True)
class _Syllable:
    start: float  # consonant onset (s)
    nucleus: float  # vowel onset (s)
    end: float  # vowel offset (s)
    formants: np.ndarray  # F1-F3 of the vowel (Hz), speaker-scaled
    consonant: tuple[str, float]
    accent: float  # semitones of the pitch accent; 0 when unstressed


def make_speakers(domain: str, n: int, seed: int) -> list[Speaker]:
    """Half male, half female voices; speaker i is the same whatever n is."""
    rng = np.random.default_rng([seed, _key(domain)])
    speakers = []
    for i in range(n):
        female = i % 2 == 1
        speakers.append(
            Speaker(
                id=f"{DOMAINS[domain].prefix}_spk{i:02d}",
                f0=rng.normal(210, 25) if female else rng.normal(115, 15),
                formant_scale=rng.normal(1.16 if female else 1.0, 0.04),
                tilt=rng.uniform(0.0, 0.5),
                expressiveness=rng.uniform(0.7, 1.3),
                rate=rng.uniform(0.85, 1.15),
                breathiness=rng.uniform(0.0, 0.06),
            )
        )
    return speakers


def synthesize_utterance(
    rng: np.random.Generator,
    speaker: Speaker,
    emotion: str,
    domain: Domain,
    sample_rate: int = 16000,
) -> np.ndarray:
    """One utterance of random CV syllables: float32 mono in [-1, 1], 1.2-2.8 s long."""
    p = _draw_prosody(rng, emotion, speaker.expressiveness)
    duration = rng.uniform(MIN_SECONDS, MAX_SECONDS)
    syllables = _plan(rng, domain, speaker, p, duration)

    control = np.arange(int(duration * CONTROL_RATE) + 1) / CONTROL_RATE
    t = np.arange(int(duration * sample_rate)) / sample_rate
    f0 = np.interp(t, control, _f0_track(rng, control, syllables, speaker, p, domain, duration))
    voicing = np.interp(t, control, _voicing_track(control, syllables))

    source = _glottal_source(rng, f0, p, speaker, sample_rate) * voicing
    tilt = np.clip(speaker.tilt + 1.5 * (p.open_quotient - 0.6), 0.0, 0.9)  # breathy is dull
    source = signal.lfilter([1 - tilt], [1, -tilt], source)
    block = int(BLOCK_SECONDS * sample_rate)
    centres = (np.arange(0, len(t), block) + block / 2) / sample_rate
    formants = _formant_tracks(centres, syllables, speaker, sample_rate)
    bandwidths = np.array([60, 80, 120, 180, 250]) * (1 + 2 * (p.open_quotient - 0.6))
    speech = _formant_filter(source, formants, bandwidths, sample_rate, block)
    active = voicing > 0.1
    speech /= np.sqrt(np.mean(speech[active] ** 2)) + 1e-12  # consonants are relative to this
    speech += _consonant_noise(rng, len(t), syllables, speaker, sample_rate)

    speech *= 0.05 * 10 ** (p.level / 20) / np.sqrt(np.mean(speech[active] ** 2))
    return _channel(rng, speech, active, domain, sample_rate).astype(np.float32)


def generate_corpus(
    domain: str, cfg: SynthConfig, classes: Sequence[str] = EMOTIONS, sample_rate: int = 16000
) -> Iterator[tuple[Speaker, str, int, np.ndarray]]:
    """Yields (speaker, emotion, k, audio); each utterance has its own seed, so it does not
    depend on the class list or on which utterances came before."""
    spec = DOMAINS[domain]
    for index, speaker in enumerate(make_speakers(domain, cfg.speakers, cfg.seed)):
        for emotion in classes:
            for k in range(cfg.utterances_per_emotion):
                rng = np.random.default_rng([cfg.seed, _key(domain), index, _key(emotion), k])
                audio = synthesize_utterance(rng, speaker, emotion, spec, sample_rate)
                yield speaker, emotion, k, audio


def write_corpus(
    domain: str,
    out_dir: str | Path,
    cfg: SynthConfig,
    classes: Sequence[str] = EMOTIONS,
    sample_rate: int = 16000,
) -> Path:
    """Writes wav/<speaker>/<speaker>_<emotion>_<k>.wav and manifest.csv (path,label,speaker);
    returns the manifest. Skips the work when the manifest was written for the same settings."""
    out = Path(out_dir)
    manifest, settings_path = out / "manifest.csv", out / "synth_config.json"
    settings = {
        **dataclasses.asdict(cfg),
        "domain": domain,
        "classes": list(classes),
        "sample_rate": sample_rate,
        "version": VERSION,
    }
    if manifest.exists() and settings_path.exists():
        if json.loads(settings_path.read_text()) == settings:
            return manifest
    manifest.unlink(missing_ok=True)  # until rewritten, the corpus must not look complete
    shutil.rmtree(out / "wav", ignore_errors=True)

    rows = []
    for speaker, emotion, k, audio in generate_corpus(domain, cfg, classes, sample_rate):
        relative = f"wav/{speaker.id}/{speaker.id}_{emotion}_{k}.wav"
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out / relative), audio, sample_rate, subtype="PCM_16")
        rows.append((relative, emotion, speaker.id))
    settings_path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    partial = manifest.with_suffix(".partial")
    with partial.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("path", "label", "speaker"))
        writer.writerows(rows)
    partial.replace(manifest)
    return manifest


def _key(text: str) -> int:
    """A stable integer for seeding (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode())


def _draw_prosody(rng: np.random.Generator, emotion: str, expressiveness: float) -> Prosody:
    """The emotion's mean, scaled by the speaker's expressiveness, plus overlap noise."""
    if emotion not in EMOTION_PROSODY:
        raise ValueError(
            f"no synthetic voice for emotion {emotion!r}; have {list(EMOTION_PROSODY)}"
        )
    neutral = EMOTION_PROSODY["neutral"].values()
    mean = neutral + expressiveness * (EMOTION_PROSODY[emotion].values() - neutral)
    drawn = mean + PROSODY_SPREAD.values() * rng.standard_normal(len(mean))
    return Prosody(*np.clip(drawn, PROSODY_LOW.values(), PROSODY_HIGH.values()).tolist())


def _plan(
    rng: np.random.Generator, domain: Domain, speaker: Speaker, p: Prosody, duration: float
) -> list[_Syllable]:
    """CV syllables with jittered durations, lengthened accented vowels and some pauses."""
    speed = p.rate * speaker.rate
    t, stop = rng.uniform(0.05, 0.2), duration - rng.uniform(0.1, 0.25)
    syllables: list[_Syllable] = []
    while True:
        accented = rng.random() < domain.accent_probability
        accent = p.f0_range * rng.uniform(0.5, 1.0) if accented else 0.0
        consonant = domain.consonant_seconds / speed * rng.lognormal(0, 0.25)
        vowel = domain.vowel_seconds / speed * rng.lognormal(0, 0.25) * (1.3 if accent else 1.0)
        if syllables and t + consonant + vowel > stop:
            return syllables
        formants = np.array(domain.vowels[rng.integers(len(domain.vowels))], dtype=float)
        formants *= speaker.formant_scale * rng.lognormal(0, 0.05, 3)
        formants[0] *= 1 + 0.015 * p.level  # louder speech opens the jaw: higher F1
        syllables.append(
            _Syllable(
                start=t,
                nucleus=t + consonant,
                end=t + consonant + vowel,
                formants=formants,
                consonant=domain.consonants[rng.integers(len(domain.consonants))],
                accent=accent,
            )
        )
        t += consonant + vowel + (rng.uniform(0.08, 0.25) if rng.random() < 0.12 else 0.0)


def _f0_track(
    rng: np.random.Generator,
    t: np.ndarray,
    syllables: list[_Syllable],
    speaker: Speaker,
    p: Prosody,
    domain: Domain,
    duration: float,
) -> np.ndarray:
    """F0 (Hz): declination, pitch accents, a final glide, slow drift and tremor."""
    semitones = p.f0_shift + (p.slope + domain.declination) * (t - duration / 2)
    for s in syllables:
        if s.accent:
            centre, width = s.nucleus + 0.4 * (s.end - s.nucleus), 0.3 * (s.end - s.start)
            semitones += s.accent * np.exp(-0.5 * ((t - centre) / width) ** 2)
    last = syllables[-1]
    semitones += p.final * np.clip((t - last.nucleus) / (last.end - last.nucleus), 0, 1)
    for _ in range(3):
        semitones += 0.4 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t + rng.uniform(0, 6.3))
    semitones += p.tremor * np.sin(2 * np.pi * rng.uniform(5, 7) * t)
    return speaker.f0 * 2 ** (semitones / 12)


def _voicing_track(t: np.ndarray, syllables: list[_Syllable]) -> np.ndarray:
    """Amplitude of the voice: vowels swell and decay, sonorant consonants hum, louder accents."""
    voicing = np.zeros_like(t)
    for s in syllables:
        vowel = (t >= s.nucleus) & (t < s.end)
        rise = np.clip((t - s.nucleus) / 0.02, 0, 1)
        fall = np.clip((s.end - t) / 0.04, 0, 1)
        voicing[vowel] = (np.sin(0.5 * np.pi * rise) * np.sin(0.5 * np.pi * fall))[vowel]
        voicing[vowel] *= 1.4 if s.accent else 1.0
        if s.consonant[0] == "sonorant":
            voicing[(t >= s.start) & (t < s.nucleus)] = 0.3
    return voicing


def _formant_tracks(
    t: np.ndarray, syllables: list[_Syllable], speaker: Speaker, sample_rate: int
) -> np.ndarray:
    """F1-F5 (Hz) per block: glides between vowel targets, F1 dipping in each consonant."""
    knots, values = [], []
    previous = syllables[0].formants
    for s in syllables:
        knots += [(s.start + s.nucleus) / 2, (s.nucleus + s.end) / 2]
        values += [(previous + s.formants) / 2 * np.array([0.6, 1, 1]), s.formants]
        previous = s.formants
    targets = np.array(values)
    tracks = [np.interp(t, knots, targets[:, i]) for i in range(3)]
    tracks += [
        np.full_like(t, 3500 * speaker.formant_scale),
        np.full_like(t, 4500 * speaker.formant_scale),
    ]
    return np.minimum(np.stack(tracks, axis=1), 0.45 * sample_rate)


def _glottal_source(
    rng: np.random.Generator, f0: np.ndarray, p: Prosody, speaker: Speaker, sample_rate: int
) -> np.ndarray:
    """Rosenberg flow-derivative pulses with per-period jitter and shimmer, plus aspiration
    noise gated by the glottal opening."""
    cycles = np.cumsum(f0) / sample_rate
    jitter = 1 + p.jitter * rng.standard_normal(int(cycles[-1]) + 2)
    phase = np.cumsum(f0 * jitter[cycles.astype(int)]) / sample_rate
    period = phase.astype(int)
    frac = phase - period
    opening, closing = 0.7 * p.open_quotient, 0.3 * p.open_quotient  # speed quotient 7:3
    flow = np.where(
        frac < opening,
        0.5 - 0.5 * np.cos(np.pi * frac / opening),
        np.cos(0.5 * np.pi * np.minimum((frac - opening) / closing, 1)),
    )
    flow *= 1 + p.shimmer * rng.standard_normal(period[-1] + 1)[period]
    pulses = np.diff(flow, prepend=0.0)
    pulses /= pulses.std() + 1e-12
    breath = rng.standard_normal(len(f0)) * (0.2 + flow)
    return pulses + (p.aspiration + speaker.breathiness) * 4 * breath


def _formant_filter(
    x: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, sample_rate: int, block: int
) -> np.ndarray:
    """A cascade of 2nd-order resonators, as one all-pole filter per block whose state (the
    last outputs) carries over, so the formants move without clicks. Unit gain at DC."""
    radius = np.exp(-np.pi * bandwidths / sample_rate)
    c1 = -2 * radius * np.cos(2 * np.pi * formants / sample_rate)
    c2 = np.broadcast_to(radius**2, c1.shape)
    a = np.ones((len(formants), 1))
    for i in range(formants.shape[1]):
        cascaded = np.zeros((len(a), a.shape[1] + 2))
        cascaded[:, :-2] += a
        cascaded[:, 1:-1] += c1[:, i : i + 1] * a
        cascaded[:, 2:] += c2[:, i : i + 1] * a
        a = cascaded
    gain = a.sum(axis=1)
    # lfilter's state for an all-pole filter is zi[m] = -sum_j a[m + 1 + j] * y[-1 - j]: build
    # those Hankel matrices for every block at once, so each block costs one small matvec.
    order = a.shape[1] - 1
    index = np.arange(order)[:, None] + np.arange(order)[None, :] + 1
    hankel = -np.concatenate([a, np.zeros((len(a), order))], axis=1)[:, index]
    y = np.empty_like(x)
    history = np.zeros(order)  # most recent output first
    for b, start in enumerate(range(0, len(x), block)):
        out, _ = signal.lfilter(
            gain[b : b + 1], a[b], x[start : start + block], zi=hankel[b] @ history
        )
        y[start : start + block] = out
        history = np.concatenate([out[::-1], history])[:order]
    return y


def _consonant_noise(
    rng: np.random.Generator, n: int, syllables: list[_Syllable], speaker: Speaker, sample_rate: int
) -> np.ndarray:
    """Unvoiced consonants: band-pass noise, sustained for fricatives, a short burst after
    silence for stops."""
    out = np.zeros(n)
    for s in syllables:
        kind, centre = s.consonant
        start, stop = int(s.start * sample_rate), min(int(s.nucleus * sample_rate), n)
        if kind == "sonorant" or stop - start < 2:
            continue
        length = stop - start
        if kind == "fricative":
            envelope = 0.3 * np.hanning(length)
        else:  # closure silence, then a 20 ms release burst
            envelope = np.zeros(length)
            burst = min(length, int(0.02 * sample_rate))
            envelope[-burst:] = 0.6 * np.exp(-np.arange(burst) / (0.005 * sample_rate))
        centre = min(centre * speaker.formant_scale, 0.45 * sample_rate)
        radius = np.exp(-np.pi * 0.4 * centre / sample_rate)  # bandwidth 40% of the centre
        a = [1, -2 * radius * np.cos(2 * np.pi * centre / sample_rate), radius**2]
        b = np.array([1, 0, -1]) * (1 - radius**2) / 2
        out[start:stop] = signal.lfilter(b, a, rng.standard_normal(length) * envelope) * 4
    return out


def _channel(
    rng: np.random.Generator,
    speech: np.ndarray,
    active: np.ndarray,
    domain: Domain,
    sample_rate: int,
) -> np.ndarray:
    """Room, noise and microphone: reverb, coloured noise at a random SNR, band-limiting, gain."""
    if domain.reverb_seconds[1] > 0:
        rt60 = rng.uniform(*domain.reverb_seconds)
        t = np.arange(int(rt60 * sample_rate)) / sample_rate
        tail = rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60)
        tail *= rng.uniform(0.3, 0.6) / np.sqrt(np.sum(tail**2))
        tail[0] = 1.0
        speech = signal.fftconvolve(speech, tail)[: len(speech)]
    noise = signal.lfilter([1], [1, -domain.noise_colour], rng.standard_normal(len(speech)))
    level = np.sqrt(np.mean(speech[active] ** 2)) * 10 ** (-rng.uniform(*domain.snr_db) / 20)
    speech = speech + noise * level / noise.std()
    band = [rng.uniform(*domain.low_cut), min(rng.uniform(*domain.high_cut), 0.45 * sample_rate)]
    speech = signal.sosfilt(
        signal.butter(4, band, "bandpass", fs=sample_rate, output="sos"), speech
    )
    speech *= 10 ** (rng.uniform(*domain.gain_db) / 20)
    return speech * min(1.0, 0.99 / np.max(np.abs(speech)))
