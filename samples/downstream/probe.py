#!/usr/bin/env python3
"""Linear probe on exported ssl-daemon video encoders: does what the daemon learned pay off?

Loads each export folder's manifest.json and video_encoder.onnx with onnxruntime (NumPy only
besides; frames come from the ffmpeg CLI), embeds every frame of every labelled clip, describes a
clip by the mean and standard deviation of its frame features over time (the encoder sees single
frames; the spread over time is how a linear probe can see motion), fits a multinomial logistic
regression on the training folds and prints held-out accuracy, next to the same probe on raw
downscaled pixels (same mean and spread), a 1-nearest-neighbour check, a weighted k-nearest-
neighbour classifier (k = 20, T = 0.07, as in InstDisc and DINO) and the effective rank of the
frame features (RankMe: exp of the entropy of the normalised singular values).

usage: probe.py --labels LABELS.csv [--folds 4] EXPORT_DIR[=NAME]...
  LABELS.csv: "file,label" rows (samples/generate_labelled.sh writes one). Accuracy is the mean over
  k folds (clip i is in fold i mod k, so every class is in every fold).
"""
import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort


def read_labels(path):
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="") as f:
        return [(os.path.join(base, r["file"]), r["label"]) for r in csv.DictReader(f)]


def decode_frames(clip, short_side, fps, size):
    """RGB frames as the manifest says: scale to the short side, centre square, resize to size."""
    vf = ((f"fps={fps}," if fps and fps > 0 else "") +
          f"scale='if(gt(iw,ih),-2,{short_side})':'if(gt(iw,ih),{short_side},-2)':flags=bilinear,"
          f"crop='min(iw,ih)':'min(iw,ih)',scale={size}:{size}:flags=bilinear")
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", clip, "-vf", vf, "-an",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)


def network_input(frames, pre):
    x = frames.astype(np.float32) / 255.0
    x = (x - np.array(pre["mean"], np.float32)) / np.array(pre["std"], np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def fit_logistic(x, y, classes, l2=1e-2, steps=500, lr=0.5):
    """Multinomial logistic regression by full-batch gradient descent on standardised features."""
    w = np.zeros((x.shape[1], classes)), np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        logits = x @ w[0] + w[1]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(x)
        w = (w[0] - lr * (x.T @ g + l2 * w[0]), w[1] - lr * g.sum(axis=0))
    return w


def probe(train_x, train_y, test_x, test_y, classes):
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    w = fit_logistic(a, train_y, classes)
    linear = float(((b @ w[0] + w[1]).argmax(axis=1) == test_y).mean())
    # 1-nearest neighbour by cosine similarity on the standardised features.
    an = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-9)
    bn = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-9)
    similarity = bn @ an.T
    nearest = float((train_y[similarity.argmax(axis=1)] == test_y).mean())
    # Weighted kNN: the k most similar training clips vote with weight exp(cosine / T).
    k, temperature = min(20, len(train_y)), 0.07
    top = np.argsort(-similarity, axis=1)[:, :k]
    votes = np.zeros((len(test_y), classes))
    for i in range(len(test_y)):
        np.add.at(votes[i], train_y[top[i]], np.exp(similarity[i, top[i]] / temperature))
    weighted = float((votes.argmax(axis=1) == test_y).mean())
    return linear, nearest, weighted


def effective_rank(features):
    """RankMe (Garrido et al. 2023): exp of the entropy of the singular values, normalised to sum 1."""
    s = np.linalg.svd(features.astype(np.float64), compute_uv=False)
    p = s / max(s.sum(), 1e-12) + 1e-12
    return float(np.exp(-(p * np.log(p)).sum()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", required=True)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--pixels", type=int, default=16, help="side of the raw-pixel baseline (default 16)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("exports", nargs="+")
    args = ap.parse_args()

    clips = read_labels(args.labels)
    names = sorted({label for _, label in clips})
    y = np.array([names.index(label) for _, label in clips])
    folds = np.arange(len(clips)) % args.folds

    def evaluate(features):
        scores = [probe(features[folds != f], y[folds != f], features[folds == f], y[folds == f], len(names))
                  for f in range(args.folds)]
        return {"linear": float(np.mean([s[0] for s in scores])), "knn": float(np.mean([s[1] for s in scores])),
                "knn20": float(np.mean([s[2] for s in scores]))}

    def describe(per_frame):
        return np.concatenate([per_frame.mean(axis=0), per_frame.std(axis=0)])

    results, first_pre, frames_cache = {}, None, {}

    def frames(clip, pre):
        key = (clip, pre["decode_short_side"], pre["fps"], pre["input_size"])
        if key not in frames_cache:
            frames_cache[key] = decode_frames(clip, *key[1:])
        return frames_cache[key]

    for spec in args.exports:
        folder, name = spec.split("=", 1) if "=" in spec else (spec, os.path.basename(os.path.normpath(spec)))
        manifest = json.load(open(os.path.join(folder, "manifest.json")))
        video = manifest["encoders"]["video"]
        pre = video["preprocess"]
        first_pre = first_pre or pre
        session = ort.InferenceSession(os.path.join(folder, video["onnx"]), providers=["CPUExecutionProvider"])
        per_frame = [session.run([video["output"]["name"]], {video["input"]["name"]: network_input(frames(clip, pre), pre)})[0]
                     for clip, _ in clips]
        features = np.stack([describe(f) for f in per_frame])
        results[name] = dict(evaluate(features), step=manifest["step"], rank=effective_rank(np.concatenate(per_frame)),
                             dimension=int(per_frame[0].shape[1]))

    p = first_pre
    pixels = np.stack([describe(decode_frames(clip, p["decode_short_side"], p["fps"], args.pixels)
                                .reshape(-1, args.pixels * args.pixels * 3).astype(np.float32) / 255)
                       for clip, _ in clips])
    results[f"raw pixels {args.pixels}x{args.pixels}"] = evaluate(pixels)

    print(f"{len(clips)} clips, {len(names)} classes (chance {1 / len(names):.2f}), {args.folds}-fold cross-validation")
    print(f"{'features':32s} {'linear probe':>12s} {'1-NN':>6s} {'kNN-20':>7s} {'eff. rank':>9s}")
    for name, r in results.items():
        rank = f"{r['rank']:.1f}/{r['dimension']}" if "rank" in r else "–"
        print(f"{name:32s} {r['linear']:12.3f} {r['knn']:6.3f} {r['knn20']:7.3f} {rank:>9s}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
