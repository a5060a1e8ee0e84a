#!/usr/bin/env python3
"""Linear probe on exported ssl-daemon video encoders: does what the daemon learned pay off?

Loads each export folder's manifest.json and video_encoder.onnx with onnxruntime (NumPy only
besides; frames come from the ffmpeg CLI), embeds every labelled clip (features averaged over
the clip's frames), fits a multinomial logistic regression on the train split and prints test
accuracy, next to the same probe on raw downscaled pixels and a k-nearest-neighbour check.

usage: probe.py --labels LABELS.csv [--test-labels TEST.csv] EXPORT_DIR[=NAME]...
  LABELS.csv: "file,label" rows (samples/generate_labelled.sh writes one); with --test-labels the
  two files are the train and test splits, otherwise every fourth clip per class is held out.
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
    vf = (f"fps={fps},"
          f"scale='if(gt(iw,ih),-2,{short_side})':'if(gt(iw,ih),{short_side},-2)':flags=bilinear,"
          f"crop='min(iw,ih)':'min(iw,ih)',scale={size}:{size}:flags=bilinear")
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", clip, "-vf", vf, "-an",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)


def network_input(frames, pre):
    x = frames.astype(np.float32) / 255.0
    x = (x - np.array(pre["mean"], np.float32)) / np.array(pre["std"], np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def fit_logistic(x, y, classes, l2=1e-3, steps=500, lr=0.5):
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
    knn = float((train_y[(bn @ an.T).argmax(axis=1)] == test_y).mean())
    return linear, knn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", required=True)
    ap.add_argument("--test-labels")
    ap.add_argument("--pixels", type=int, default=16, help="side of the raw-pixel baseline (default 16)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("exports", nargs="+")
    args = ap.parse_args()

    train = read_labels(args.labels)
    if args.test_labels:
        test = read_labels(args.test_labels)
    else:
        seen, train_split, test = {}, [], []
        for clip, label in train:
            seen[label] = seen.get(label, 0) + 1
            (test if seen[label] % 4 == 0 else train_split).append((clip, label))
        train = train_split
    names = sorted({label for _, label in train + test})
    index = {n: i for i, n in enumerate(names)}
    ytr = np.array([index[l] for _, l in train])
    yte = np.array([index[l] for _, l in test])

    results = {}
    exports = [e.split("=", 1) if "=" in e else (e, os.path.basename(os.path.normpath(e))) for e in args.exports]
    first_pre = None
    for folder, name in exports:
        manifest = json.load(open(os.path.join(folder, "manifest.json")))
        video = manifest["encoders"]["video"]
        pre = video["preprocess"]
        first_pre = first_pre or pre
        session = ort.InferenceSession(os.path.join(folder, video["onnx"]), providers=["CPUExecutionProvider"])
        def embed(clips):
            rows = []
            for clip, _ in clips:
                frames = decode_frames(clip, pre["decode_short_side"], pre["fps"], pre["input_size"])
                feats = session.run([video["output"]["name"]], {video["input"]["name"]: network_input(frames, pre)})[0]
                rows.append(feats.mean(axis=0))
            return np.stack(rows)
        lin, knn = probe(embed(train), ytr, embed(test), yte, len(names))
        results[name] = {"linear": lin, "knn": knn, "step": manifest["step"]}

    def pixels(clips):
        p = first_pre
        return np.stack([decode_frames(c, p["decode_short_side"], p["fps"], args.pixels).astype(np.float32).mean(axis=0).ravel() / 255
                         for c, _ in clips])
    lin, knn = probe(pixels(train), ytr, pixels(test), yte, len(names))
    results[f"raw pixels {args.pixels}x{args.pixels}"] = {"linear": lin, "knn": knn}

    print(f"{len(train)} train / {len(test)} test clips, {len(names)} classes (chance {1 / len(names):.2f})")
    print(f"{'features':32s} {'linear probe':>12s} {'1-NN':>6s}")
    for name, r in results.items():
        print(f"{name:32s} {r['linear']:12.3f} {r['knn']:6.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
