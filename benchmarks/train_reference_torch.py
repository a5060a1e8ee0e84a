#!/usr/bin/env python3
"""PyTorch eager reference for the MoCo "reference workload" training step.

Plain, idiomatic MoCo (v2-style) code, no torch.compile and no layout tricks,
timed on random inputs so it can be compared with the Swift trainer:

- Encoder: 4 x [Conv2d 3x3 s2 p1 (no bias) -> GroupNorm(8, affine) -> ReLU],
  channels 3->32->64->128->256, global average pool (256-d),
  projector Linear 256->256 -> ReLU -> Linear 256->128, F.normalize(dim=1).
- Input 3x64x64, batch of 64 (anchor, positive) pairs.
- One step: EMA update of the key encoder (k = 0.99 k + 0.01 q, no_grad),
  q = f_q(anchors), k = f_k(positives) under no_grad,
  logits = cat([q.k, q @ queue.T]) / 0.1, cross-entropy with label 0,
  SGD(lr 0.03, momentum 0.9, wd 1e-4 on conv and linear weights, none on
  GroupNorm parameters and biases), then enqueue k (FIFO, 4096 x 128).

--preset resnet-small swaps the encoder for the daemon's resnet-small (stem
conv3x3 s2 3->32 -> GN -> ReLU, then basic blocks 32->64 s2, 64->64, 64->128 s2,
128->128, 128->256 s2 with GroupNorm(8) and 1x1-conv shortcuts where the shape
changes; global average pool) on 112x112 inputs, batch 32.

Variants a PyTorch user would try: --layout channels_last (NHWC, oneDNN's
preferred layout), --compile (torch.compile of both encoders), --bf16
(torch.autocast("cpu", dtype=torch.bfloat16) around the forward passes).

Data is generated once before timing; only the timed steps are inside the
perf_counter window. The last stdout line is JSON:
  {"pairs_per_second": P, "ms_per_step": M, "gflops": G, "threads": N, "torch": V, ...}
GFLOP/s counts the matrix-product FLOPs of the step (for the reference preset the
analytic count below; for resnet-small torch.utils.flop_counter's count). The FLOP
breakdown and PyTorch's threading info go to stderr.
"""
import argparse
import copy
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CHANNELS = [3, 32, 64, 128, 256]
EMBED, QUEUE, TEMP, MOMENTUM = 128, 4096, 0.1, 0.99
PRESETS = {"reference": (64, 64), "resnet-small": (112, 32)}  # image side, pairs per step
PRESET = "reference"
IMAGE = 64


class BasicBlock(nn.Module):
    """relu(main(x) + shortcut(x)), as the daemon's ResidualBlock."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False), nn.GroupNorm(8, cout))
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.GroupNorm(8, cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return F.relu(self.main(x) + self.shortcut(x))


def make_resnet_small() -> nn.Sequential:
    layers = [nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.GroupNorm(8, 32), nn.ReLU(inplace=True)]
    for cin, cout, stride in [(32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2)]:
        layers.append(BasicBlock(cin, cout, stride))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(256, 256), nn.ReLU(inplace=True), nn.Linear(256, EMBED)]
    return nn.Sequential(*layers)


def make_encoder() -> nn.Sequential:
    if PRESET == "resnet-small":
        return make_resnet_small()
    layers = []
    for cin, cout in zip(CHANNELS[:-1], CHANNELS[1:]):
        layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                   nn.GroupNorm(8, cout), nn.ReLU(inplace=True)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(256, 256), nn.ReLU(inplace=True), nn.Linear(256, EMBED)]
    return nn.Sequential(*layers)


class MoCo(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder_q = make_encoder()
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(QUEUE, EMBED), dim=1))
        self.ptr = 0

    @torch.no_grad()
    def momentum_update(self):
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            pk.mul_(MOMENTUM).add_(pq, alpha=1.0 - MOMENTUM)

    @torch.no_grad()
    def enqueue(self, k):
        b = k.shape[0]  # QUEUE is a multiple of the batch (64), so no wrap inside a batch
        self.queue[self.ptr:self.ptr + b] = k
        self.ptr = (self.ptr + b) % QUEUE

    def forward(self, anchors, positives):
        q = F.normalize(self.encoder_q(anchors), dim=1)
        with torch.no_grad():
            self.momentum_update()  # EMA before computing the keys
            k = F.normalize(self.encoder_k(positives), dim=1)
        l_pos = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)  # B x 1
        l_neg = q @ self.queue.T                                # B x QUEUE (queue is a constant)
        logits = torch.cat([l_pos, l_neg], dim=1) / TEMP
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
        return F.cross_entropy(logits, labels), k


def flops_per_pair():
    """Analytic multiply-add FLOPs (2 per MAC) per (anchor, positive) pair.

    GroupNorm, ReLU, pooling, normalize, softmax, the EMA and SGD updates are
    elementwise and left out.
    """
    conv, size = [], IMAGE
    for cin, cout in zip(CHANNELS[:-1], CHANNELS[1:]):
        size //= 2  # output 32, 16, 8, 4
        conv.append(2 * cout * cin * 9 * size * size)
    proj = 2 * 256 * 256 + 2 * 256 * EMBED
    enc_fwd = sum(conv) + proj
    # Backward: weight grad + input grad (2x fwd) except the first conv,
    # whose input (the image) needs no gradient (1x).
    enc_bwd = conv[0] + 2 * sum(conv[1:]) + 2 * proj
    logits_fwd = 2 * EMBED * QUEUE + 2 * EMBED      # q @ queue.T and q.k
    logits_bwd = logits_fwd                         # only dq (queue and k are constants)
    parts = {"query_fwd": enc_fwd, "query_bwd": enc_bwd, "key_fwd": enc_fwd,
             "logits_fwd": logits_fwd, "logits_bwd": logits_bwd}
    return sum(parts.values()), parts, conv, proj


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="reference")
    ap.add_argument("--batch", type=int, default=None, help="pairs per step (default: the preset's)")
    ap.add_argument("--layout", choices=["nchw", "channels_last"], default="nchw")
    ap.add_argument("--compile", action="store_true", help="torch.compile both encoders")
    ap.add_argument("--bf16", action="store_true", help='torch.autocast("cpu", dtype=torch.bfloat16) around the forward passes')
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    global PRESET, IMAGE
    PRESET = args.preset
    IMAGE, default_batch = PRESETS[args.preset]
    args.batch = args.batch or default_batch

    # Set threads before any parallel work starts (interop must be set first thing).
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    model = MoCo()
    model.train()
    memory_format = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    if args.compile:
        model.encoder_q = torch.compile(model.encoder_q)
        model.encoder_k = torch.compile(model.encoder_k)
    # Weight decay on weights only, as the daemon's SGD does (norm scales and biases are 1-d).
    params = list(model.encoder_q.parameters())
    opt = torch.optim.SGD([
        {"params": [p for p in params if p.dim() > 1], "weight_decay": 1e-4},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ], lr=0.03, momentum=0.9)
    # Inputs generated once, outside the timed region.
    anchors = torch.randn(args.batch, 3, IMAGE, IMAGE).contiguous(memory_format=memory_format)
    positives = torch.randn(args.batch, 3, IMAGE, IMAGE).contiguous(memory_format=memory_format)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss, k = model(anchors, positives)
        loss, k = loss.float(), k.float()
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.enqueue(k)
        return loss

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    seconds = (time.perf_counter() - t0) / args.steps
    loss = loss.item()

    if args.preset == "reference":
        per_pair, parts, conv, proj = flops_per_pair()
    else:
        from torch.utils.flop_counter import FlopCounterMode
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        per_pair, parts, conv, proj = counter.get_total_flops() / args.batch, {}, [], 0
    per_step = per_pair * args.batch
    info = [l.strip() for l in torch.__config__.parallel_info().splitlines()
            if "threads" in l.lower() or l.startswith("ATen parallel backend")]
    print("parallel_info: " + "; ".join(info), file=sys.stderr)
    print("conv backend: mkldnn available=%s enabled=%s" % (
        torch.backends.mkldnn.is_available(), torch.backends.mkldnn.enabled), file=sys.stderr)
    m = lambda x: "%.3f" % (x / 1e6)
    print("MFLOP/pair: conv fwd [%s] + proj %s; " % (", ".join(m(c) for c in conv), m(proj))
          + ", ".join("%s %s" % (k, m(v)) for k, v in parts.items())
          + "; total %s (x%d = %.3f GFLOP/step); final loss %.4f"
          % (m(per_pair), args.batch, per_step / 1e9, loss), file=sys.stderr)
    print(json.dumps({"pairs_per_second": round(args.batch / seconds, 2),
                      "ms_per_step": round(seconds * 1e3, 3),
                      "gflops": round(per_step / seconds / 1e9, 3),
                      "threads": torch.get_num_threads(),
                      "torch": torch.__version__,
                      "preset": args.preset, "layout": args.layout, "compile": args.compile, "bf16": args.bf16}))


if __name__ == "__main__":
    main()
