"""Log-mel front end (Whisper's recipe, scaled down), numpy only: it runs on the host, in the
packaged runtime script, never in the deployed graph (STFT + log on the HTP buy nothing here)."""

import numpy as np

SR, N_FFT, HOP, N_MELS, N_SAMPLES = 8000, 200, 80, 16, 4000  # 0.5 s → 50 frames


def _mel_filters() -> np.ndarray:
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    pts = hz(np.linspace(mel(0), mel(SR / 2), N_MELS + 2))
    bins = np.fft.rfftfreq(N_FFT, 1 / SR)
    fb = np.zeros((N_MELS, bins.size), np.float32)
    for m in range(N_MELS):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb


def log_mel(audio: np.ndarray) -> dict:
    """[N_SAMPLES] float waveform → {"mel": [1, N_MELS, 50]} (Whisper-style clamp and scale)."""
    x = np.pad(np.asarray(audio, np.float32).reshape(-1)[:N_SAMPLES], (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][: N_SAMPLES // HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(N_FFT + 1)[:-1], axis=-1)) ** 2
    mel = np.log10(np.maximum(power @ _mel_filters().T, 1e-10)).T
    mel = np.maximum(mel, mel.max() - 8.0)
    return {"mel": ((mel + 4.0) / 4.0)[None].astype(np.float32)}
