#!/usr/bin/env python3
"""Independent NumPy reference for the log-mel spectrogram; writes test fixtures.

Definition (the Swift implementation follows exactly this):

- Input: mono float32 signal x at sample rate sr (default 16000).
- Frame length W = 400 samples (25 ms), hop H = 160 (10 ms),
  FFT size N = 512 (next power of two >= W).
- Frames: frame i covers samples [i*H, i*H + W).
  Frame count = 0 if len(x) < W else 1 + (len(x) - W) // H. No centre padding.
- Window: periodic Hann, w[k] = 0.5 - 0.5*cos(2*pi*k/W), k = 0..W-1.
  Multiply frame by window, zero-pad to N, real FFT (np.fft.rfft),
  power P[k] = |X[k]|^2 for k = 0..N/2 (N/2+1 = 257 bins). No FFT scaling.
- Mel scale (HTK): mel(f) = 2595*log10(1 + f/700),
  inverse f = 700*(10**(m/2595) - 1).
- Filterbank with M = 64 bands between fmin = 0 Hz and fmax = 8000 Hz:
  M+2 points equally spaced in mel from mel(fmin) to mel(fmax), converted to
  Hz: f_0 .. f_{M+1}. Bin k has frequency f_k = k*sr/N. Filter m
  (m = 1..M; output band index m-1) has weight
      max(0, min((f_k - f_{m-1})/(f_m - f_{m-1}),
                 (f_{m+1} - f_k)/(f_{m+1} - f_m))).
  No area normalisation.
- Output: log(E + 1e-6) (natural log) where E = filterbank @ P,
  shape [frames, M], row-major.
- All computation in float64 (the float32 input is converted to float64).

Test signal (deterministic, 1.0 s = 16000 samples at 16 kHz, t = n/sr):
    0.5*sin(2*pi*440*t)
  + 0.3*sin(2*pi*(100*t + (6000-100)/(2*1.0)*t**2))   (linear chirp 100->6000 Hz)
  + 0.05*rng.standard_normal(16000), rng = np.random.default_rng(1234)
cast to float32.

Outputs (in --out, default <repo>/Tests/StreamDecodeTests/Fixtures/):
  logmel_input.f32      raw little-endian float32 input samples
  logmel_expected.f32   raw little-endian float32 [frames][64], case 1
  logmel_expected.json  parameters + frames/bands of case 1
  logmel2_expected.f32  case 2: sr=16000, W=320, H=320, N=512, M=40,
                        fmin=125, fmax=7500, same input
  logmel2_expected.json parameters + frames/bands of case 2

Usage:
  python benchmarks/logmel_reference.py [--out DIR] [--check]
--check runs a self-test that compares the vectorised implementation against
an independent loop-based computation (frame count, filterbank, a few frames)
before writing the fixtures.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(
    os.path.join(SCRIPT_DIR, "..", "Tests", "StreamDecodeTests", "Fixtures")
)

LOG_OFFSET = 1e-6

CASE1 = dict(sample_rate=16000, window=400, hop=160, fft_size=512,
             mel_bands=64, fmin=0, fmax=8000, log_offset=LOG_OFFSET)
CASE2 = dict(sample_rate=16000, window=320, hop=320, fft_size=512,
             mel_bands=40, fmin=125, fmax=7500, log_offset=LOG_OFFSET)


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def frame_count(n_samples, window, hop):
    return 0 if n_samples < window else 1 + (n_samples - window) // hop


def periodic_hann(window):
    k = np.arange(window, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * k / window)


def mel_points_hz(sr, n_mels, fmin, fmax):
    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    return mel_to_hz(mels)


def mel_filterbank(sr, n_fft, n_mels, fmin, fmax):
    """[n_mels, n_fft//2+1] triangular HTK filterbank, no normalisation."""
    f = mel_points_hz(sr, n_mels, fmin, fmax)
    fk = np.arange(n_fft // 2 + 1, dtype=np.float64) * sr / n_fft
    lo = f[:-2][:, None]
    ce = f[1:-1][:, None]
    hi = f[2:][:, None]
    up = (fk[None, :] - lo) / (ce - lo)
    down = (hi - fk[None, :]) / (hi - ce)
    return np.maximum(0.0, np.minimum(up, down))


def log_mel(x, sample_rate, window, hop, fft_size, mel_bands, fmin, fmax,
            log_offset=LOG_OFFSET):
    x = np.asarray(x, dtype=np.float64)
    n_frames = frame_count(len(x), window, hop)
    if n_frames == 0:
        return np.zeros((0, mel_bands), dtype=np.float64)
    idx = np.arange(n_frames)[:, None] * hop + np.arange(window)[None, :]
    frames = x[idx] * periodic_hann(window)[None, :]
    spec = np.fft.rfft(frames, n=fft_size, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    fb = mel_filterbank(sample_rate, fft_size, mel_bands, fmin, fmax)
    energy = power @ fb.T
    return np.log(energy + log_offset)


def make_signal():
    sr = 16000
    n = 16000
    duration = n / sr
    t = np.arange(n, dtype=np.float64) / sr
    f0, f1 = 100.0, 6000.0
    tone = 0.5 * np.sin(2.0 * np.pi * 440.0 * t)
    chirp = 0.3 * np.sin(2.0 * np.pi * (f0 * t + (f1 - f0) / (2.0 * duration) * t * t))
    rng = np.random.default_rng(1234)
    noise = 0.05 * rng.standard_normal(n)
    return (tone + chirp + noise).astype(np.float32)


# ---------------------------------------------------------------- self-test

def _loop_reference_frame(x, i, p):
    """Pure-Python (math module, naive DFT) log-mel of frame i."""
    W, H, N = p["window"], p["hop"], p["fft_size"]
    sr, M = p["sample_rate"], p["mel_bands"]
    seg = [float(x[i * H + k]) * (0.5 - 0.5 * math.cos(2 * math.pi * k / W))
           for k in range(W)]
    power = []
    for k in range(N // 2 + 1):
        re = im = 0.0
        for n in range(W):  # zero padding contributes nothing
            ang = -2.0 * math.pi * k * n / N
            re += seg[n] * math.cos(ang)
            im += seg[n] * math.sin(ang)
        power.append(re * re + im * im)
    mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)
    imel = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    mlo, mhi = mel(p["fmin"]), mel(p["fmax"])
    fpts = [imel(mlo + (mhi - mlo) * j / (M + 1)) for j in range(M + 2)]
    out = []
    for m in range(1, M + 1):
        e = 0.0
        for k in range(N // 2 + 1):
            fk = k * sr / N
            w = max(0.0, min((fk - fpts[m - 1]) / (fpts[m] - fpts[m - 1]),
                             (fpts[m + 1] - fk) / (fpts[m + 1] - fpts[m])))
            e += w * power[k]
        out.append(math.log(e + p["log_offset"]))
    return out


def self_check(x):
    ok = True

    def fail(msg):
        nonlocal ok
        ok = False
        print("CHECK FAILED: " + msg, file=sys.stderr)

    # Frame count vs. brute-force enumeration of frames that fit.
    for n in [0, 1, 159, 319, 320, 399, 400, 401, 559, 560, 561, 16000, 16001]:
        for W, H in [(400, 160), (320, 320), (320, 160)]:
            brute = 0
            while brute * H + W <= n:
                brute += 1
            if frame_count(n, W, H) != brute:
                fail(f"frame_count({n},{W},{H})={frame_count(n, W, H)} != {brute}")

    for p in (CASE1, CASE2):
        # Filterbank: vectorised vs. scalar loop.
        fb = mel_filterbank(p["sample_rate"], p["fft_size"], p["mel_bands"],
                            p["fmin"], p["fmax"])
        f = mel_points_hz(p["sample_rate"], p["mel_bands"], p["fmin"], p["fmax"])
        if abs(f[0] - p["fmin"]) > 1e-9 or abs(f[-1] - p["fmax"]) > 1e-6:
            fail(f"mel endpoints {f[0]}, {f[-1]}")
        N, sr = p["fft_size"], p["sample_rate"]
        for m in range(1, p["mel_bands"] + 1):
            for k in range(N // 2 + 1):
                fk = k * sr / N
                w = max(0.0, min((fk - f[m - 1]) / (f[m] - f[m - 1]),
                                 (f[m + 1] - fk) / (f[m + 1] - f[m])))
                if abs(fb[m - 1, k] - w) > 1e-12:
                    fail(f"fb[{m-1},{k}]={fb[m-1,k]} != {w}")
        empty = np.where(fb.sum(axis=1) == 0)[0]
        if len(empty):
            print(f"note: empty filters {empty.tolist()} for {p}", file=sys.stderr)

        # Whole pipeline for a few frames vs. naive DFT loop.
        ref = log_mel(x, **p)
        nf = ref.shape[0]
        for i in sorted({0, 1, 10, nf // 2, nf - 1}):
            loop = np.array(_loop_reference_frame(x, i, p))
            err = np.max(np.abs(loop - ref[i]))
            if err > 1e-8:
                fail(f"frame {i} max abs err {err} (params {p})")
    # Sanity: numpy rfft vs. explicit DFT matrix on a random vector.
    v = np.random.default_rng(0).standard_normal(400)
    k = np.arange(257)[:, None]
    n = np.arange(400)[None, :]
    dft = (np.exp(-2j * np.pi * k * n / 512) @ v)
    if np.max(np.abs(dft - np.fft.rfft(v, n=512))) > 1e-9:
        fail("rfft mismatch vs explicit DFT")
    return ok


# -------------------------------------------------------------------- main

def write_case(out, prefix, x, p):
    ref = log_mel(x.astype(np.float64), **p)
    ref32 = ref.astype("<f4")
    with open(os.path.join(out, f"{prefix}_expected.f32"), "wb") as fh:
        fh.write(ref32.tobytes(order="C"))
    meta = dict(p)
    meta["frames"] = int(ref.shape[0])
    meta["bands"] = int(ref.shape[1])
    with open(os.path.join(out, f"{prefix}_expected.json"), "w") as fh:
        json.dump(meta, fh)
        fh.write("\n")
    return ref32


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory")
    ap.add_argument("--check", action="store_true",
                    help="run loop-based self-test before writing")
    args = ap.parse_args(argv)

    x = make_signal()
    if args.check:
        if not self_check(x.astype(np.float64)):
            return 1
        print("self-check OK")

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "logmel_input.f32"), "wb") as fh:
        fh.write(x.astype("<f4").tobytes())
    r1 = write_case(args.out, "logmel", x, CASE1)
    r2 = write_case(args.out, "logmel2", x, CASE2)
    print(f"wrote {args.out}: input {len(x)} samples; "
          f"logmel {r1.shape[0]}x{r1.shape[1]} min {r1.min():.4f} max {r1.max():.4f} "
          f"mean {r1.mean(dtype=np.float64):.4f}; "
          f"logmel2 {r2.shape[0]}x{r2.shape[1]} min {r2.min():.4f} max {r2.max():.4f} "
          f"mean {r2.mean(dtype=np.float64):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
