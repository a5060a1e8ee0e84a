#!/usr/bin/env python3
"""The daemon's downstream pretraining recipe written in PyTorch: the same encoder, method, optimizer
and views, trained for a number of steps on CPU, then exported as probe.py reads a daemon export.

This is the PyTorch side of "does the daemon train better than the same recipe in PyTorch?"
(samples/downstream/torch.sh runs it beside methods.sh's daemon runs). It reuses the benchmarks'
PyTorch code by import: the reference encoder (`make_encoder`) and the MoCo v2 step (`MoCo`) of
benchmarks/train_reference_torch.py, and PyAV decoding (`decode`) of benchmarks/end_to_end_torch.py.

What matches the daemon's defaults (Sources/TemporalContrast/Training/Learner.swift `LearnerConfig`,
Sources/DaemonRuntime/DaemonConfig.swift, README "Settings" and "Methods"; pretrain.toml changes only
training.threads):

- encoder: `model.video = "reference"`: 4 x [conv3x3 s2 (no bias) -> GroupNorm(8) -> ReLU],
  3->32->64->128->256, global average pool; projection head Linear 256->256 -> ReLU -> Linear
  256->128 (`model.projection_hidden` 256, `model.embedding` 128). The daemon's initialisation:
  convolutions He-normal with fan-out (std sqrt(2 / (9 * out)), Layers/Conv2d.swift; PyTorch's own
  default is kaiming_uniform(a = sqrt 5), so it is set here), linear layers uniform +-1/sqrt(in)
  (PyTorch's default), GroupNorm and LayerNorm weight 1, bias 0, eps 1e-5.
- moco (`objective.kind` "moco"): MoCo v2 as train_reference_torch's `MoCo`: L2-normalised head,
  key encoder EMA 0.99 (`objective.key_momentum`) before the keys are computed, queue 4096
  (`objective.queue`) of random unit keys at the start, temperature 0.1 (`objective.temperature`),
  cross-entropy with the positive first, keys enqueued after the update. Like the daemon, queue
  entries from the anchor's own clip within `objective.mask_window` (2 s) of the anchor are masked
  out as negatives (MoCoLoss in Objectives/KeyQueue.swift; `--mask-window 0` gives plain MoCo v2).
- byol (`objective.kind` "byol"; Methods/BYOL.swift, Methods/Predictor.swift): raw (unnormalised)
  projection, predictor Linear 128->512 -> LayerNorm -> ReLU -> Linear 512->128
  (`objective.byol_predictor_hidden` 512; LayerNorm where the paper has BatchNorm, as the daemon),
  target network = EMA of the online backbone and head with momentum 0.996
  (`objective.byol_momentum`, constant: no schedule towards 1), updated after each optimizer step;
  loss (2 - 2 cos(q(z1), z2')) + (2 - 2 cos(q(z2), z1')), each term a mean over the pairs, the
  target projections constant (golden_methods.py's -cos term: 2 (1 + it) per direction).
- optimizer (`optimizer.*`; Optimizers/Optimizer.swift): SGD, momentum 0.9, PyTorch semantics,
  weight decay 1e-4 on convolution and linear weights only (not biases or norm parameters), lr 0.03
  after a linear warmup over 200 steps (lr_k = 0.03 (k + 1) / 200 for k < 200), then constant (no
  decay: the daemon's stream has no end); global gradient-norm clip at 5 (`optimizer.max_gradient_norm`,
  torch.nn.utils.clip_grad_norm_, whose scale has a 1e-6 guard the daemon's lacks); a step whose
  loss or gradients are not finite is skipped, as the daemon does. Batch 64 pairs (`training.batch`).
- views (Pairing/Augmentation.swift, `pairing.image.*`): frames on a 10 fps grid with a short side
  of 128 (`decode.fps`, `decode.size`); temporal pairs (anchor a kept frame, positive another kept
  frame within +-0.5 s, `pairing.near`) at 4 per second of video per pass (`pairing.temporal_per_second`);
  each view: random resized crop to 64x64 (area 0.2-1, aspect 3/4-4/3, ten tries then the largest
  centred box), flip 0.5, colour jitter 0.8 (brightness 0.4, contrast 0.4, saturation 0.8, hue 0.5
  of the colour wheel, as the daemon's single YIQ matrix), grayscale 0.5, Gaussian blur 0.5 (sigma
  0.1-2, radius ceil(2 sigma), edges clamped), ImageNet mean/std. This is written here, not taken
  from end_to_end_torch.augment, because that one leaves out the hue rotation, which the daemon's
  downstream defaults depend on (Augmentation.swift: 0.44-0.47 linear probe without, 0.59 with).

What differs, by design or because a PyTorch user would not have it:

- Data: the clips are decoded once with PyAV (end_to_end_torch.decode) and kept in memory; a
  map-style Dataset of temporal pairs (per pass, int(4 x duration) per clip, fresh anchors, positives
  and augmentations each pass) is fed by a DataLoader from a seeded, shuffled, endless sampler
  (every pass a new permutation, batches run on across passes), augmentation in its worker
  processes. The daemon instead re-reads the files, keeps examples in a MinRed replay buffer
  (redundant examples evicted) and draws each up to replay_ratio 4 / max_reuse 8 times with fresh
  augmentation.
- Pair kinds: only temporal pairs. The daemon's batches also hold tracked-patch pairs
  (`pairing.mix.tracked` 0.25) and, on clips with audio (these have), audio-video pairs
  (`pairing.mix.audio_video` 0.25) trained with cross-modal InfoNCE and an audio encoder; here all
  64 pairs of a step are temporal image pairs and there is no audio encoder.
- Arithmetic: PyTorch's eager NCHW fp32 kernels (its oneDNN); README "Training speed" has eager
  NCHW at or above channels_last for this encoder and bf16 autocast slower, so neither is used.

Export (--out): video_encoder.onnx (torch.onnx.export, dynamo=False, opset 17: input "frames"
[batch, 3, 64, 64] float32 NCHW, output "features" [batch, 256], symbolic batch: the backbone without
the head, as the daemon's export), encoders.safetensors (the backbone with the daemon's tensor names
video.backbone.convN / gnN) and manifest.json with the daemon's structure and preprocessing values.

usage: torch_recipe.py --clips DIR --method moco|byol --steps N --seed S --threads T --workers W --out DIR
Last stdout line: {"seconds": S, "steps": N, "pairs_trained": P, "loss_first": F, "loss_last": L, ...}
(seconds: decoding and training, after imports, without the export; loss_first / loss_last: the mean
of the first and of the last 20 step losses, as the daemon's summary).
"""
import argparse
import copy
import datetime
import json
import math
import os
import random
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BENCHMARKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks")
sys.path.insert(0, os.path.normpath(BENCHMARKS))
import end_to_end_torch as e2e  # noqa: E402  (decode, FPS, SHORT, NEAR, PAIRS_PER_SECOND, SIDE, MEAN, STD)
import train_reference_torch as ref  # noqa: E402  (make_encoder, MoCo, EMBED, QUEUE, TEMP, MOMENTUM)

# The daemon's defaults (README "Settings"), beyond those the imported modules carry.
BATCH = 64                    # training.batch
LEARNING_RATE = 0.03          # optimizer.learning_rate
SGD_MOMENTUM = 0.9            # optimizer.momentum
WEIGHT_DECAY = 1e-4           # optimizer.weight_decay (weights only)
WARMUP_STEPS = 200            # optimizer.warmup_steps
MAX_GRADIENT_NORM = 5.0       # optimizer.max_gradient_norm
MASK_WINDOW = 2.0             # objective.mask_window
BYOL_MOMENTUM = 0.996         # objective.byol_momentum
BYOL_PREDICTOR_HIDDEN = 512   # objective.byol_predictor_hidden
FEATURES = 256                # the reference backbone's output
CROP_SCALE, CROP_RATIO = (0.2, 1.0), (3 / 4, 4 / 3)
FLIP, JITTER, GRAYSCALE, BLUR = 0.5, 0.8, 0.5, 0.5
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0.4, 0.4, 0.8, 0.5
BLUR_SIGMA = (0.1, 2.0)
TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
TO_RGB = torch.tensor([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
GRAY = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".ts", ".m4v")


# ----------------------------------------------------------------------------------------------
# Views: the daemon's ImageAugmentation.apply, step for step.

def crop_box(width, height, rng):
    """torchvision-style random resized crop box (x, y, w, h), as ImageAugmentation.cropBox."""
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        ratio = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        w, h = math.floor(math.sqrt(target * ratio) + 0.5), math.floor(math.sqrt(target / ratio) + 0.5)
        if 0 < w <= width and 0 < h <= height:
            return rng.randrange(width - w + 1), rng.randrange(height - h + 1), w, h
    w, h = width, height
    if width / height < CROP_RATIO[0]:
        h = math.floor(w / CROP_RATIO[0] + 0.5)
    elif width / height > CROP_RATIO[1]:
        w = math.floor(h * CROP_RATIO[1] + 0.5)
    return (width - w) // 2, (height - h) // 2, w, h


def view(frame, rng):
    """One augmented, normalised 3 x SIDE x SIDE view of an H x W x 3 uint8 frame."""
    height, width, _ = frame.shape
    x0, y0, w, h = crop_box(width, height, rng)
    x = torch.from_numpy(np.ascontiguousarray(frame[y0:y0 + h, x0:x0 + w])).permute(2, 0, 1).float()[None]
    x = F.interpolate(x, size=(e2e.SIDE, e2e.SIDE), mode="bilinear", align_corners=False)[0] / 255
    if rng.random() < FLIP:
        x = x.flip(2)
    if rng.random() < JITTER:
        b = rng.uniform(max(0.0, 1 - BRIGHTNESS), 1 + BRIGHTNESS)
        k = rng.uniform(max(0.0, 1 - CONTRAST), 1 + CONTRAST)
        s = rng.uniform(max(0.0, 1 - SATURATION), 1 + SATURATION)
        theta = 2 * math.pi * rng.uniform(-HUE, HUE)
        mean_gray = float((x * GRAY).sum(0).mean()) * b
        c, n = math.cos(theta), math.sin(theta)
        rotate = torch.tensor([[1.0, 0.0, 0.0], [0.0, s * c, -s * n], [0.0, s * n, s * c]])
        m = TO_RGB @ rotate @ TO_YIQ
        x = torch.einsum("ij,jhw->ihw", m, x * b)
        x = ((x - mean_gray) * k + mean_gray).clamp_(0, 1)
    if rng.random() < GRAYSCALE:
        x = (x * GRAY).sum(0, keepdim=True).expand(3, -1, -1)
    if rng.random() < BLUR:
        sigma = rng.uniform(*BLUR_SIGMA)
        radius = max(1, math.ceil(2 * sigma))
        d = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-d * d / (2 * sigma * sigma))
        kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).expand(3, 1, 1, -1)
        y = F.conv2d(F.pad(x[None], (radius, radius, 0, 0), mode="replicate"), kernel, groups=3)
        x = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kernel.transpose(2, 3), groups=3)[0]
    return (x - e2e.MEAN) / e2e.STD


# ----------------------------------------------------------------------------------------------
# Data: decoded clips, temporal pairs, an endless shuffled sampler.

class TemporalPairs(torch.utils.data.Dataset):
    """Index epoch * len + i -> (anchor view, positive view, clip, anchor time): the i-th pair slot
    of a pass (slot -> clip fixed; anchor, positive and augmentation drawn from (seed, epoch, i))."""

    def __init__(self, clips, seed):
        self.clips, self.seed = clips, seed  # clips: [(times float64 [F], frames uint8 [F, H, W, 3])]
        self.slots = [c for c, (times, _) in enumerate(clips)
                      for _ in range(int((times[-1] - times[0]) * e2e.PAIRS_PER_SECOND))]
        # Frames with at least one positive: another kept frame within +-NEAR seconds.
        self.anchors = []
        for times, _ in clips:
            near = [[j for j in range(len(times)) if j != i and 0 < abs(times[j] - times[i]) <= e2e.NEAR]
                    for i in range(len(times))]
            self.anchors.append([(i, js) for i, js in enumerate(near) if js])

    def __len__(self):
        return len(self.slots)

    def __getitem__(self, key):
        epoch, i = divmod(key, len(self.slots))
        rng = random.Random(f"{self.seed}/{epoch}/{i}")
        c = self.slots[i]
        times, frames = self.clips[c]
        a, positives = rng.choice(self.anchors[c])
        p = rng.choice(positives)
        return view(frames[a], rng), view(frames[p], rng), c, float(times[a])


class EndlessShuffle(torch.utils.data.Sampler):
    """epoch * n + permutation_epoch(n), pass after pass (detectron2's TrainingSampler, seeded)."""

    def __init__(self, n, seed):
        self.n, self.seed = n, seed

    def __iter__(self):
        epoch = 0
        while True:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            yield from (epoch * self.n + torch.randperm(self.n, generator=g)).tolist()
            epoch += 1


def load_clips(folder):
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(VIDEO_SUFFIXES))
    clips = []
    for path in paths:
        decoded = e2e.decode(path)
        if len(decoded) >= 2:
            clips.append((np.array([t for t, _ in decoded], np.float64), np.stack([f for _, f in decoded])))
    return paths, clips


# ----------------------------------------------------------------------------------------------
# Methods.

def daemon_init(encoder):
    """The daemon's initialisation of a fresh encoder (convs He-normal, fan-out; the rest as PyTorch)."""
    for m in encoder.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return encoder


class MaskedMoCo(ref.MoCo):
    """train_reference_torch's MoCo with the daemon's origin mask: queue keys from the anchor's own
    clip within `window` seconds of it are no negatives (queue slots remember clip and time; the
    initial random keys have none)."""

    def __init__(self, window):
        super().__init__()
        self.window = window
        daemon_init(self.encoder_q)
        self.encoder_k.load_state_dict(self.encoder_q.state_dict())
        self.register_buffer("queue_clip", torch.full((ref.QUEUE,), -1, dtype=torch.long))
        self.register_buffer("queue_time", torch.zeros(ref.QUEUE, dtype=torch.float64))

    @property
    def online(self):
        return self.encoder_q

    def trained(self):
        return list(self.encoder_q.parameters())

    def forward(self, anchors, positives, clip, when):
        q = F.normalize(self.encoder_q(anchors), dim=1)
        with torch.no_grad():
            self.momentum_update()  # EMA before computing the keys
            k = F.normalize(self.encoder_k(positives), dim=1)
        l_pos = (q * k).sum(dim=1, keepdim=True)
        l_neg = q @ self.queue.T
        if self.window > 0:
            mask = (self.queue_clip[None] == clip[:, None]) & ((self.queue_time[None] - when[:, None]).abs() < self.window)
            l_neg = l_neg.masked_fill(mask, float("-inf"))
        logits = torch.cat([l_pos, l_neg], dim=1) / ref.TEMP
        self.pending = (k, clip, when)
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))

    @torch.no_grad()
    def after_update(self):
        k, clip, when = self.pending  # every batch is whole and divides the queue (checked in main)
        self.queue_clip[self.ptr:self.ptr + len(k)] = clip
        self.queue_time[self.ptr:self.ptr + len(k)] = when
        self.enqueue(k)


class BYOL(nn.Module):
    """BYOL with the daemon's settings: predictor 128 -> 512 -> LN -> ReLU -> 128, target EMA 0.996."""

    def __init__(self):
        super().__init__()
        self.online = daemon_init(ref.make_encoder())
        self.predictor = nn.Sequential(nn.Linear(ref.EMBED, BYOL_PREDICTOR_HIDDEN), nn.LayerNorm(BYOL_PREDICTOR_HIDDEN),
                                       nn.ReLU(inplace=True), nn.Linear(BYOL_PREDICTOR_HIDDEN, ref.EMBED))
        self.target = copy.deepcopy(self.online)
        for p in self.target.parameters():
            p.requires_grad = False

    def trained(self):
        return list(self.online.parameters()) + list(self.predictor.parameters())

    def forward(self, anchors, positives, clip=None, when=None):
        n = len(anchors)
        both = torch.cat([anchors, positives])  # GroupNorm and LayerNorm are per sample: one pass for both views
        p = self.predictor(self.online(both))
        with torch.no_grad():
            t = self.target(both)
        # golden_methods.py's predictor term, -cos with the target constant; BYOL's 2 - 2 cos = 2 (1 + it).
        first = -F.cosine_similarity(p[:n], t[n:], dim=1).mean()
        second = -F.cosine_similarity(p[n:], t[:n], dim=1).mean()
        return 2 * (1 + first) + 2 * (1 + second)

    @torch.no_grad()
    def after_update(self):
        for pt, po in zip(self.target.parameters(), self.online.parameters()):
            pt.mul_(BYOL_MOMENTUM).add_(po, alpha=1 - BYOL_MOMENTUM)


# ----------------------------------------------------------------------------------------------
# Export: what `ssl-daemon export` writes, for the video encoder.

def backbone_of(encoder):
    """make_encoder()'s layers up to the pooled 256 features (the head dropped, as the daemon's export)."""
    layers = list(encoder.children())
    end = next(i for i, m in enumerate(layers) if isinstance(m, nn.Flatten)) + 1
    return nn.Sequential(*layers[:end])


def daemon_tensor_names(backbone):
    """(name, tensor) with the daemon's export names: video.backbone.convN.weight, .gnN.weight/bias."""
    out, n = [], 0
    for m in backbone:
        if isinstance(m, nn.Conv2d):
            n += 1
            out.append((f"video.backbone.conv{n}.weight", m.weight))
        elif isinstance(m, nn.GroupNorm):
            out += [(f"video.backbone.gn{n}.weight", m.weight), (f"video.backbone.gn{n}.bias", m.bias)]
    return out


def export(encoder, out, step, source):
    import onnx
    from safetensors.torch import save_file

    os.makedirs(out, exist_ok=True)
    backbone = copy.deepcopy(backbone_of(encoder)).eval().float().to(memory_format=torch.contiguous_format)
    example = torch.randn(2, 3, e2e.SIDE, e2e.SIDE)
    path = os.path.join(out, "video_encoder.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False: the TorchScript exporter, on purpose
        torch.onnx.export(backbone, (example,), path, dynamo=False, opset_version=17, input_names=["frames"],
                          output_names=["features"], dynamic_axes={"frames": {0: "batch"}, "features": {0: "batch"}})
    model = onnx.load(path)
    for key, value in {"ssl_daemon.step": str(step), "ssl_daemon.source_checkpoint": source,
                       "ssl_daemon.architecture": "reference", "trainer": f"pytorch {torch.__version__}"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, path)

    # The file must compute what the network does (checked before the manifest, which marks a finished export).
    import onnxruntime as ort
    x = torch.randn(5, 3, e2e.SIDE, e2e.SIDE)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(["features"], {"frames": x.numpy()})[0]
    with torch.no_grad():
        want = backbone(x).numpy()
    error = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
    if error > 1e-4:
        raise SystemExit(f"torch_recipe: the ONNX export differs from the network (relative error {error:.2e})")

    tensors = daemon_tensor_names(backbone)
    save_file({name: t.detach().contiguous() for name, t in tensors}, os.path.join(out, "encoders.safetensors"),
              metadata={"format": "pt", "step": str(step), "source_checkpoint": source})
    manifest = {
        "format": "ssl-daemon-export", "format_version": 1,
        "step": step, "source_checkpoint": source,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "weights": "encoders.safetensors",
        "encoders": {"video": {
            "modality": "video", "architecture": "reference", "onnx": "video_encoder.onnx", "opset": 17,
            "input": {"name": "frames", "shape": ["batch", 3, e2e.SIDE, e2e.SIDE], "layout": "NCHW", "dtype": "float32"},
            "output": {"name": "features", "shape": ["batch", FEATURES], "dtype": "float32"},
            "embedding_size": FEATURES,
            "tensors": {name: list(t.shape) for name, t in tensors},
            "preprocess": {  # EncoderInput.Video.manifest with the daemon's decode.size, decode.fps, output_size
                "color": "RGB", "decode_short_side": e2e.SHORT,
                "fps": int(e2e.FPS) if float(e2e.FPS).is_integer() else e2e.FPS,  # as the daemon's JSON writes it
                "crop": "centre square of the decoded frame (side = its short side), resized bilinearly (half-pixel centres) to input size",
                "input_size": e2e.SIDE, "scale": "pixel / 255",
                "mean": [round(v, 6) for v in e2e.MEAN.flatten().tolist()],  # 0.485, not float32's 0.48500001...
                "std": [round(v, 6) for v in e2e.STD.flatten().tolist()],
                "normalise": "(pixel / 255 - mean[c]) / std[c]",
            },
        }},
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)

    return error


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", required=True, help="folder of unlabelled clips (methods.sh's $WORK/pretrain)")
    ap.add_argument("--method", choices=["moco", "byol"], default="moco")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="PyTorch compute threads of the training process")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader worker processes (augmentation)")
    ap.add_argument("--out", required=True, help="export folder (video_encoder.onnx, encoders.safetensors, manifest.json)")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"pairs per step (default {BATCH}, training.batch)")
    ap.add_argument("--mask-window", type=float, default=MASK_WINDOW,
                    help=f"moco: mask same-clip queue keys within this many seconds (default {MASK_WINDOW}; 0: none)")
    ap.add_argument("--log-every", type=int, default=100, help="steps between progress lines on stderr")
    args = ap.parse_args()
    if args.steps < 0 or args.batch < 2 or args.threads < 1 or args.workers < 0:
        ap.error("need --steps >= 0, --batch >= 2, --threads >= 1, --workers >= 0")
    if args.method == "moco" and ref.QUEUE % args.batch:
        ap.error(f"moco: the queue ({ref.QUEUE}) must be a multiple of --batch")

    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    start = time.perf_counter()

    paths, clips = load_clips(args.clips)
    if not clips:
        raise SystemExit(f"torch_recipe: no decodable clips in {args.clips}")
    data = TemporalPairs(clips, args.seed)
    decoded = time.perf_counter() - start
    print(f"torch_recipe: {len(clips)} of {len(paths)} clips decoded in {decoded:.1f} s, {len(data)} pairs per pass, "
          f"{args.method}, {args.steps} steps of {args.batch}, seed {args.seed}, {args.threads} threads, "
          f"{args.workers} workers, torch {torch.__version__}", file=sys.stderr)

    model = MaskedMoCo(args.mask_window) if args.method == "moco" else BYOL()
    model.train()
    params = model.trained()
    opt = torch.optim.SGD([
        {"params": [p for p in params if p.dim() > 1], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ], lr=LEARNING_RATE, momentum=SGD_MOMENTUM)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: (k + 1) / WARMUP_STEPS if WARMUP_STEPS > 0 and k < WARMUP_STEPS else 1.0)

    loader = torch.utils.data.DataLoader(
        data, batch_size=args.batch, sampler=EndlessShuffle(len(data), args.seed), num_workers=args.workers,
        persistent_workers=args.workers > 0, prefetch_factor=4 if args.workers > 0 else None)
    losses, skipped, steps = [], 0, 0
    batches = iter(loader)
    last_log, last_time = 0, time.perf_counter()
    while steps < args.steps:
        anchors, positives, clip, when = next(batches)
        loss = model(anchors, positives, clip, when.double())
        opt.zero_grad(set_to_none=False)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, MAX_GRADIENT_NORM)
        value = loss.item()
        if math.isfinite(value) and math.isfinite(float(norm)):
            opt.step()
            model.after_update()
            losses.append(value)
        else:
            skipped += 1
            opt.zero_grad(set_to_none=False)
        schedule.step()
        steps += 1
        if args.log_every and (steps % args.log_every == 0 or steps == args.steps):
            now = time.perf_counter()
            print(f"step {steps}: loss {value:.4f}, lr {opt.param_groups[0]['lr']:.4g}, "
                  f"{(steps - last_log) * args.batch / (now - last_time):.0f} pairs/s", file=sys.stderr)
            last_log, last_time = steps, now
    del batches, loader
    seconds = time.perf_counter() - start

    source = (f"pytorch:samples/downstream/torch_recipe.py --method {args.method} --steps {args.steps} "
              f"--seed {args.seed} --clips {os.path.abspath(args.clips)}")
    t = time.perf_counter()
    model.eval()
    error = export(model.online, args.out, steps, source)
    export_seconds = time.perf_counter() - t

    mean = lambda xs: round(sum(xs) / len(xs), 6) if xs else None  # noqa: E731
    print(json.dumps({"seconds": round(seconds, 2), "steps": steps, "pairs_trained": steps * args.batch,
                      "loss_first": mean(losses[:20]), "loss_last": mean(losses[-20:]), "skipped_updates": skipped,
                      "method": args.method, "seed": args.seed, "decode_seconds": round(decoded, 2),
                      "export_seconds": round(export_seconds, 2), "onnx_relative_error": error,
                      "threads": args.threads, "workers": args.workers, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
