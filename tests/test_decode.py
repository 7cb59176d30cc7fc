"""load_audio: formats detected by content, rates, channels, and one reason code per failure."""

import pickle

import numpy as np
import pytest
import soundfile as sf

from emograph.components.audio.decode import AudioError, Note, load_audio, read_audio


def tone(seconds: float = 1.0, rate: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int = 16000) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x))) * rate / len(x))


def reason(path) -> str:
    with pytest.raises(AudioError) as info:
        load_audio(path)
    return info.value.reason


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("a.wav", "WAV"),
        ("a.flac", "FLAC"),
        ("a.ogg", "OGG"),
        ("a.mp3", "MP3"),
        ("aiff.wav", "AIFF"),
    ],
)
def test_formats_are_detected_by_content(tmp_path, name, fmt):
    sf.write(tmp_path / name, tone(), 16000, format=fmt)
    audio = load_audio(tmp_path / name)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) < 2000  # lossy codecs add priming samples
    assert abs(peak_hz(audio) - 440) < 5


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_any_rate_is_resampled_to_16k(tmp_path, rate):
    sf.write(tmp_path / "a.wav", tone(rate=rate), rate)
    audio = load_audio(tmp_path / "a.wav")
    assert len(audio) == 16000
    assert abs(peak_hz(audio) - 440) < 2


def test_stereo_is_averaged(tmp_path):
    x = tone()
    sf.write(tmp_path / "a.wav", np.stack([x, np.zeros_like(x)], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "a.wav"), x / 2, atol=1e-6)


def test_truncated_wav_keeps_its_intact_prefix(tmp_path):
    sf.write(tmp_path / "a.wav", tone(), 16000)
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "a.wav").write_bytes(data[: len(data) // 2])
    assert 7000 < len(load_audio(tmp_path / "a.wav")) < 8100


def test_a_wav_cut_mid_data_is_noted_as_truncated(tmp_path):
    sf.write(tmp_path / "a.wav", tone(2.0), 16000)
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "a.wav").write_bytes(data[: 44 + 2 * 10720])  # header + 0.67 s of 16-bit frames
    audio, notes = read_audio(tmp_path / "a.wav")
    assert len(audio) == 10720
    assert notes == [
        Note("truncated", "0.67 s read of the 2.00 s its header promises (the file was cut short)")
    ]


def test_float_samples_beyond_one_are_clipped_and_noted(tmp_path):
    x = tone()
    x[:1600] *= 4  # 10 % of the samples, peak 2.0
    sf.write(tmp_path / "loud.wav", np.stack([x, x], axis=1), 16000, subtype="FLOAT")
    audio, notes = read_audio(tmp_path / "loud.wav")
    assert np.abs(audio).max() == 1.0
    beyond = np.mean(np.abs(x) > 1)
    assert notes == [
        Note("clipped", f"{beyond:.2%} of samples beyond +-1 (peak 2.00) clipped to +-1")
    ]
    assert 0.05 < beyond < 0.1


def test_whole_files_have_no_notes(tmp_path):
    sf.write(tmp_path / "full.wav", np.sign(tone()), 16000)  # full scale: at +-1, not beyond
    sf.write(tmp_path / "a.flac", tone(), 16000)
    sf.write(tmp_path / "trailer.wav", tone(), 16000)
    with open(tmp_path / "trailer.wav", "ab") as f:  # a chunk after the data, as some tools add
        f.write(b"LIST\x04\x00\x00\x00INFO")
    for name in ("full.wav", "a.flac", "trailer.wav"):
        assert read_audio(tmp_path / name)[1] == []


def test_bad_files_get_their_reason(tmp_path):
    sf.write(tmp_path / "ok.flac", tone(), 16000)
    flac = (tmp_path / "ok.flac").read_bytes()
    (tmp_path / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n" * 20)
    sf.write(tmp_path / "header_only.wav", np.zeros(0, np.float32), 16000)
    nan = tone()
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(tmp_path / "4k.wav", tone(rate=4000), 4000)
    sf.write(tmp_path / "192k.wav", tone(rate=192000), 192000)
    assert {
        name: reason(tmp_path / name)
        for name in [
            "truncated.flac",
            "zero.wav",
            "text.wav",
            "header_only.wav",
            "nan.wav",
            "silent.wav",
            "4k.wav",
            "192k.wav",
            "missing.wav",
        ]
    } == {
        "truncated.flac": "unreadable",
        "zero.wav": "empty",
        "text.wav": "unreadable",
        "header_only.wav": "empty",
        "nan.wav": "nan_or_inf",
        "silent.wav": "silent",
        "4k.wav": "unsupported_rate",
        "192k.wav": "unsupported_rate",
        "missing.wav": "unreadable",
    }


def test_audio_error_names_file_and_reason_and_pickles():
    error = AudioError("/data/x.wav", "silent", "peak 0")
    assert isinstance(error, ValueError)
    assert str(error) == "/data/x.wav: silent (peak 0)"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, copy.detail) == ("/data/x.wav", "silent", "peak 0")
