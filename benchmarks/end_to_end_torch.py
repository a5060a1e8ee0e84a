#!/usr/bin/env python3
"""The daemon's `run --once` job written the way a PyTorch user would: PyAV decoding in DataLoader
workers, the same sampling and augmentation, the same MoCo step, until as many pairs are trained.

Per epoch, each worker decodes its share of the clips with PyAV, keeps frames on a 10 fps grid
scaled to a short side of 128 (`frame.to_ndarray(width, height, format="rgb24")`), and emits
temporal pairs at 4 per second of video (the anchor a kept frame, the positive a kept frame within
+-0.5 s, as the daemon's `pairing.near`), each view augmented as the daemon's defaults do: random
resized crop to 64x64 (area 0.2-1, ratio 3/4-4/3), horizontal flip 0.5, colour jitter 0.8
(brightness 0.4, contrast 0.4, saturation 0.8), grayscale 0.5, Gaussian blur 0.5, per-channel
normalisation. The main process trains the reference MoCo step (benchmarks/train_reference_torch.py)
on batches of 64 pairs until --pairs pairs are trained, re-reading the clips epoch after epoch.

Last stdout line: {"seconds": S, "pairs_trained": T, "pairs_per_epoch": P, "epochs": E, "steps": N}.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import av
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_reference_torch as ref  # noqa: E402

FPS, SHORT, NEAR, PAIRS_PER_SECOND, SIDE = 10.0, 128, 0.5, 4.0, 64
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def decode(path):
    """(time, HxWx3 uint8) frames on the fps grid, short side SHORT."""
    frames, last_slot = [], None
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        w, h = stream.codec_context.width, stream.codec_context.height
        scale = SHORT / min(w, h)
        ow, oh = round(w * scale) // 2 * 2, round(h * scale) // 2 * 2
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            slot = math.floor(t * FPS + 1e-6)
            if last_slot is not None and slot <= last_slot:
                continue
            last_slot = slot
            frames.append((t, frame.to_ndarray(width=ow, height=oh, format="rgb24")))
    return frames


def augment(img, rng):
    """The daemon's default view: crop, flip, jitter, grayscale, blur, normalise. img: HxWx3 uint8."""
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    _, h, w = x.shape
    for _ in range(10):
        area = rng.uniform(0.2, 1.0) * h * w
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            break
    else:
        cw = ch = min(w, h)
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    x = F.interpolate(x[None, :, y0:y0 + ch, x0:x0 + cw], size=(SIDE, SIDE), mode="bilinear", align_corners=False)[0]
    if rng.random() < 0.5:
        x = x.flip(2)
    if rng.random() < 0.8:
        x = x * rng.uniform(0.6, 1.4)
        m = x.mean()
        x = (x - m) * rng.uniform(0.6, 1.4) + m
        gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
        x = (x - gray) * rng.uniform(0.2, 1.8) + gray
        x = x.clamp(0, 1)
    if rng.random() < 0.5:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).expand(3, -1, -1).clone()
    if rng.random() < 0.5:
        sigma = rng.uniform(0.1, 2.0)
        k = torch.arange(-4, 5, dtype=torch.float32)
        k = torch.exp(-k * k / (2 * sigma * sigma))
        k = (k / k.sum()).view(1, 1, 1, 9).expand(3, 1, 1, 9)
        x = F.conv2d(F.pad(x[None], (4, 4, 0, 0), mode="reflect"), k, groups=3)
        x = F.conv2d(F.pad(x, (0, 0, 4, 4), mode="reflect"), k.transpose(2, 3), groups=3)[0]
    return (x - MEAN) / STD


class Pairs(torch.utils.data.IterableDataset):
    def __init__(self, clips, epoch):
        self.clips, self.epoch = clips, epoch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, count = (info.id, info.num_workers) if info else (0, 1)
        rng = random.Random(self.epoch * 1000 + wid)
        for path in self.clips[wid::count]:
            frames = decode(path)
            if len(frames) < 2:
                continue
            times = [t for t, _ in frames]
            duration = times[-1] - times[0]
            for _ in range(int(duration * PAIRS_PER_SECOND)):
                i = rng.randrange(len(frames))
                near = [j for j in range(len(frames)) if j != i and abs(times[j] - times[i]) <= NEAR]
                if not near:
                    continue
                j = rng.choice(near)
                yield augment(frames[i][1], rng), augment(frames[j][1], rng)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--pairs", type=int, required=True, help="pairs to train (the daemon's pairs_trained)")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch compute threads in the main process")
    args = ap.parse_args()
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clips = sorted(os.path.join(args.corpus, f) for f in os.listdir(args.corpus) if f.endswith(".mp4"))
    start = time.perf_counter()
    model = ref.MoCo()
    model.train()
    params = list(model.encoder_q.parameters())
    opt = torch.optim.SGD([
        {"params": [p for p in params if p.dim() > 1], "weight_decay": 1e-4},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ], lr=0.03, momentum=0.9)
    trained, steps, epoch, per_epoch = 0, 0, 0, 0
    while trained < args.pairs:
        loader = torch.utils.data.DataLoader(Pairs(clips, epoch), batch_size=64, num_workers=args.workers,
                                             persistent_workers=False, prefetch_factor=4 if args.workers else None)
        seen = 0
        for anchors, positives in loader:
            loss, k = model(anchors, positives)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.enqueue(k) if k.shape[0] == 64 else None
            seen += anchors.shape[0]
            trained += anchors.shape[0]
            steps += 1
            if trained >= args.pairs:
                break
        per_epoch = max(per_epoch, seen)
        epoch += 1
        if seen == 0:
            break
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": round(seconds, 2), "pairs_trained": trained, "pairs_per_epoch": per_epoch,
                      "epochs": epoch, "steps": steps, "workers": args.workers, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
