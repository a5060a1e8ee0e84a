#!/usr/bin/env python3
"""Golden fixture for the TemporalContrast learning library (tiny MoCo encoder).

Builds a SMALL variant of the reference encoder in float64 PyTorch, with
deterministic weights, runs one MoCo InfoNCE step and one NT-Xent (SimCLR)
step, and writes everything the Swift tests need to check the forward pass,
the losses and the gradients against:

  Tests/TemporalContrastTests/Fixtures/golden_moco.safetensors
  Tests/TemporalContrastTests/Fixtures/golden_moco.json   (human-readable summary)

Network ("tiny reference"), input images 3x16x16 (NCHW):
  backbone  = 4 x [Conv2d 3x3, stride 2, padding 1, bias=False
                   -> GroupNorm(4 groups, affine, eps=1e-5) -> ReLU]
              channels 3 -> 8 -> 8 -> 16 -> 16, spatial 16 -> 8 -> 4 -> 2 -> 1,
              then the mean over H,W -> 16-d "features"
  projector = Linear 16->16 (bias) -> ReLU -> Linear 16->8 (bias)
              -> z / ||z||_2  (plain division, no eps)

Weights: np.random.default_rng(2024), drawn in this order (standard_normal):
  conv1.weight, gn1.weight, gn1.bias, conv2.weight, gn2.weight, gn2.bias,
  conv3.weight, gn3.weight, gn3.bias, conv4.weight, gn4.weight, gn4.bias,
  proj1.weight, proj1.bias, proj2.weight, proj2.bias
  conv / linear weights: 0.3 * N(0,1)   linear biases: 0.1 * N(0,1)
  GN weights: 1 + 0.1 * N(0,1)          GN biases:     0.1 * N(0,1)
Then, from the same generator: anchors [4,3,16,16], positives [4,3,16,16]
(N(0,1)), then queue [16,8] (N(0,1), each row divided by its L2 norm).

Every drawn value is rounded to float32 ONCE, right after drawing (the queue
after normalising). All computation then happens in float64 from these
float32-representable values, so the float32 inputs stored in the fixture are
exactly the inputs of the float64 computation; the stored outputs are the
float64 results rounded to float32 (the float64 losses are in the JSON and in
the safetensors metadata at full precision).

Quantities:
  features_anchor [4,16]  backbone(anchors)
  q [4,8]                 embedding of anchors (with gradient)
  k [4,8]                 embedding of positives, DETACHED (a constant)
  The query and key encoders use the SAME weights: this is a MoCo step at the
  moment the key encoder equals the query encoder (e.g. momentum update just
  initialised it as a copy). No momentum difference is modelled.
  moco_loss   = CE(cat([sum(q*k,1,keepdim), q @ queue.T], 1) / 0.1, target 0),
                mean over the 4 rows
  grad.<name> = d moco_loss / d <name> for every parameter (through q only)
  ntxent_loss = NT-Xent on z = cat([q_a, q_p]) (8 rows; q_p = embedding of
                positives WITH gradient), S = z @ z.T / 0.1, diagonal = -inf,
                the positive of row i is row (i + 4) mod 8; mean CE over 8 rows
  ntxent_grad.conv1.weight = d ntxent_loss / d conv1.weight

File format (safetensors, written by hand below): u64 little-endian header
length N, N bytes of JSON header (padded with spaces to a multiple of 8), then
the raw tensor bytes, packed in the order written. Every tensor is F32,
little-endian, C-contiguous, in PyTorch's layout (conv [out,in,kh,kw],
linear [out,in], images NCHW); scalars are shape [1].

Usage:
  python benchmarks/golden_reference.py [--out DIR] [--check]
--check additionally recomputes the whole forward pass and both losses in
float64 NumPy WITHOUT torch (im2col conv, GroupNorm, ReLU, mean pool, linears,
normalise, losses), starting from the tensors read back from the written
file, and asserts agreement with torch to 1e-9. It also checks the autograd
gradients against central finite differences of the NumPy losses.
"""

import argparse
import hashlib
import json
import os
import re
import struct
import sys

import numpy as np

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(
    os.path.join(SCRIPT_DIR, "..", "Tests", "TemporalContrastTests", "Fixtures")
)
STEM = "golden_moco"

# ---------------------------------------------------------------------------
# Hyper-parameters
# ---------------------------------------------------------------------------
SEED = 2024
BATCH = 4
IMAGE = (3, 16, 16)              # C, H, W
CHANNELS = [3, 8, 8, 16, 16]     # backbone channels, input -> block 4
GN_GROUPS = 4
GN_EPS = 1e-5
FEATURE_DIM = 16                 # = CHANNELS[-1]
HIDDEN_DIM = 16
EMBED_DIM = 8
QUEUE_SIZE = 16
TEMPERATURE = 0.1

# Parameter names and shapes, in the order they are drawn from the rng.
PARAM_SPECS = []
for i in range(4):
    cin, cout = CHANNELS[i], CHANNELS[i + 1]
    PARAM_SPECS += [
        (f"conv{i + 1}.weight", (cout, cin, 3, 3)),
        (f"gn{i + 1}.weight", (cout,)),
        (f"gn{i + 1}.bias", (cout,)),
    ]
PARAM_SPECS += [
    ("proj1.weight", (HIDDEN_DIM, FEATURE_DIM)),
    ("proj1.bias", (HIDDEN_DIM,)),
    ("proj2.weight", (EMBED_DIM, HIDDEN_DIM)),
    ("proj2.bias", (EMBED_DIM,)),
]
PARAM_NAMES = [n for n, _ in PARAM_SPECS]


def f32_exact(a):
    """Round to float32 once and return as float64 (exactly representable)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def draw_everything():
    """Draw parameters, then inputs, then the queue, from one generator.

    Returns (params: dict name -> float64 array, data: dict name -> float64 array),
    all values float32-representable.
    """
    rng = np.random.default_rng(SEED)
    params = {}
    for name, shape in PARAM_SPECS:
        n = rng.standard_normal(shape)
        if name.startswith("gn") and name.endswith(".weight"):
            v = 1.0 + 0.1 * n
        elif name.endswith(".bias"):          # GN and linear biases
            v = 0.1 * n
        else:                                 # conv and linear weights
            v = 0.3 * n
        params[name] = f32_exact(v)
    anchors = f32_exact(rng.standard_normal((BATCH,) + IMAGE))
    positives = f32_exact(rng.standard_normal((BATCH,) + IMAGE))
    queue = rng.standard_normal((QUEUE_SIZE, EMBED_DIM))
    queue = f32_exact(queue / np.linalg.norm(queue, axis=1, keepdims=True))
    return params, {"anchors": anchors, "positives": positives, "queue": queue}


# ---------------------------------------------------------------------------
# Torch float64 reference (forward + autograd)
# ---------------------------------------------------------------------------
def torch_reference(params_np, data_np):
    import torch
    import torch.nn.functional as F

    torch.set_default_dtype(torch.float64)
    P = {n: torch.tensor(v, requires_grad=True) for n, v in params_np.items()}
    anchors = torch.tensor(data_np["anchors"])
    positives = torch.tensor(data_np["positives"])
    queue = torch.tensor(data_np["queue"])

    # Smallest |pre-activation| seen at any ReLU (a diagnostic: how far the
    # fixture is from a ReLU kink that a float32 implementation could flip).
    relu_margin = [float("inf")]

    def relu(x):
        relu_margin[0] = min(relu_margin[0], x.detach().abs().min().item())
        return F.relu(x)

    def backbone(x):
        for i in range(1, 5):
            x = F.conv2d(x, P[f"conv{i}.weight"], bias=None, stride=2, padding=1)
            x = F.group_norm(x, GN_GROUPS, P[f"gn{i}.weight"], P[f"gn{i}.bias"], eps=GN_EPS)
            x = relu(x)
        return x.mean(dim=(2, 3))                         # [B, 16]

    def projector(f):
        h = relu(F.linear(f, P["proj1.weight"], P["proj1.bias"]))
        z = F.linear(h, P["proj2.weight"], P["proj2.bias"])
        return z / z.norm(dim=1, keepdim=True)            # plain division

    def moco_loss(q, k):
        l_pos = (q * k).sum(dim=1, keepdim=True)          # [B, 1]
        l_neg = q @ queue.T                               # [B, K]
        logits = torch.cat([l_pos, l_neg], dim=1) / TEMPERATURE
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))

    def ntxent_loss(za, zp):
        z = torch.cat([za, zp], dim=0)                    # [2B, D]
        n = z.shape[0]
        b = n // 2
        sim = (z @ z.T) / TEMPERATURE
        sim = sim.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
        targets = (torch.arange(n) + b) % n               # i <-> i+B
        return F.cross_entropy(sim, targets)

    # --- MoCo: same weights for query and key encoder; k detached ---
    features_anchor = backbone(anchors)
    q = projector(features_anchor)
    with torch.no_grad():
        k = projector(backbone(positives))
    loss_moco = moco_loss(q, k)
    grads = torch.autograd.grad(loss_moco, [P[n] for n in PARAM_NAMES])

    # --- NT-Xent: both views carry gradient ---
    qa = projector(backbone(anchors))
    qp = projector(backbone(positives))
    loss_nt = ntxent_loss(qa, qp)
    (g_nt_conv1,) = torch.autograd.grad(loss_nt, [P["conv1.weight"]])

    out = {
        "features_anchor": features_anchor.detach().numpy(),
        "q": q.detach().numpy(),
        "k": k.numpy(),
        "moco_loss": np.array([loss_moco.item()]),
        "ntxent_loss": np.array([loss_nt.item()]),
        "ntxent_grad.conv1.weight": g_nt_conv1.numpy(),
        "relu_margin": relu_margin[0],
    }
    for n, g in zip(PARAM_NAMES, grads):
        out[f"grad.{n}"] = g.numpy()
    return out


# ---------------------------------------------------------------------------
# safetensors writer / reader (F32 only)
# ---------------------------------------------------------------------------
def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, array) in file order; metadata: dict str -> str."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors:
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()   # LE, C order
        shape = [int(s) for s in np.shape(arr)]
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-len(hbytes) % 8)                   # pad to multiple of 8
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """Returns (ordered dict name -> float32 array, metadata, header length)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = blob[8 + n:]
    tensors, expect = {}, 0
    # Tensors in file order (sorted by begin offset), must be packed tightly.
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        assert info["dtype"] == "F32", (name, info["dtype"])
        assert begin == expect and end <= len(data), (name, begin, end)
        count = int(np.prod(info["shape"], dtype=np.int64))
        assert end - begin == 4 * count, (name, info)
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
        expect = end
    assert expect == len(data), "trailing bytes after the last tensor"
    return tensors, metadata, n


# ---------------------------------------------------------------------------
# Independent NumPy float64 forward (no torch) for --check
# ---------------------------------------------------------------------------
def np_conv3x3_s2(x, w):
    """Conv2d 3x3, stride 2, padding 1, no bias, via im2col. x [B,C,H,W], w [O,C,3,3]."""
    b, c, h, wd = x.shape
    ho, wo = (h + 2 - 3) // 2 + 1, (wd + 2 - 3) // 2 + 1
    xp = np.zeros((b, c, h + 2, wd + 2))
    xp[:, :, 1:-1, 1:-1] = x
    # cols[b, c, ky, kx, oy, ox] = xp[b, c, 2*oy + ky, 2*ox + kx]
    cols = np.empty((b, c, 3, 3, ho, wo))
    for ky in range(3):
        for kx in range(3):
            cols[:, :, ky, kx] = xp[:, :, ky:ky + 2 * ho:2, kx:kx + 2 * wo:2]
    cols = cols.reshape(b, c * 9, ho * wo)                 # [B, C*9, HoWo]
    out = np.einsum("ok,bkp->bop", w.reshape(w.shape[0], -1), cols)
    return out.reshape(b, w.shape[0], ho, wo)


def np_group_norm(x, gamma, beta):
    b, c, h, w = x.shape
    g = x.reshape(b, GN_GROUPS, -1)
    mean = g.mean(axis=2, keepdims=True)
    var = ((g - mean) ** 2).mean(axis=2, keepdims=True)   # biased variance
    g = (g - mean) / np.sqrt(var + GN_EPS)
    return g.reshape(b, c, h, w) * gamma[None, :, None, None] + beta[None, :, None, None]


def np_backbone(P, x):
    for i in range(1, 5):
        x = np_conv3x3_s2(x, P[f"conv{i}.weight"])
        x = np_group_norm(x, P[f"gn{i}.weight"], P[f"gn{i}.bias"])
        x = np.maximum(x, 0.0)
    return x.mean(axis=(2, 3))


def np_projector(P, f):
    h = np.maximum(f @ P["proj1.weight"].T + P["proj1.bias"], 0.0)
    z = h @ P["proj2.weight"].T + P["proj2.bias"]
    return z / np.sqrt((z * z).sum(axis=1, keepdims=True))


def np_cross_entropy(logits, targets):
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return float(np.mean(lse - logits[np.arange(len(targets)), targets]))


def np_moco_loss(q, k, queue):
    logits = np.concatenate([(q * k).sum(axis=1, keepdims=True), q @ queue.T], axis=1)
    return np_cross_entropy(logits / TEMPERATURE, np.zeros(len(q), dtype=int))


def np_ntxent_loss(za, zp):
    z = np.concatenate([za, zp], axis=0)
    n = len(z)
    sim = z @ z.T / TEMPERATURE
    sim[np.arange(n), np.arange(n)] = -np.inf
    return np_cross_entropy(sim, (np.arange(n) + n // 2) % n)


def np_everything(P, D, k_fixed=None):
    """Forward + both losses. k_fixed: use this k (the detached key) if given."""
    f = np_backbone(P, D["anchors"])
    q = np_projector(P, f)
    k = np_projector(P, np_backbone(P, D["positives"])) if k_fixed is None else k_fixed
    qp = np_projector(P, np_backbone(P, D["positives"]))
    return {"features_anchor": f, "q": q, "k": k,
            "moco_loss": np_moco_loss(q, k, D["queue"]),
            "ntxent_loss": np_ntxent_loss(q, qp)}


def run_check(path, ref, params, data):
    """Cross-check the written file and torch's float64 values with NumPy only."""
    stored, _, _ = read_safetensors(path)
    # Inputs come from the FILE (float32 -> float64 is exact): the NumPy path
    # shares nothing with the torch path except these bytes.
    P = {n: stored[n].astype(np.float64) for n in PARAM_NAMES}
    D = {n: stored[n].astype(np.float64) for n in ("anchors", "positives", "queue")}
    for n in PARAM_NAMES:
        assert np.array_equal(P[n], params[n]), n
    for n in D:
        assert np.array_equal(D[n], data[n]), n

    npv = np_everything(P, D)
    worst = 0.0
    for name in ("features_anchor", "q", "k", "moco_loss", "ntxent_loss"):
        a, b = np.asarray(npv[name]).ravel(), np.asarray(ref[name]).ravel()
        err = float(np.max(np.abs(a - b)))
        worst = max(worst, err)
        print(f"  numpy vs torch  {name:16s} max|diff| = {err:.3e}")
        assert err <= 1e-9, f"{name}: numpy/torch mismatch {err}"
        # Stored float32 values must be the float64 values rounded once.
        assert np.array_equal(stored[name].ravel(), b.astype(np.float32)), name

    # Gradients: central finite differences of the NumPy losses along random
    # directions, compared with <autograd grad, direction>. Second-order
    # accurate; not part of the 1e-9 forward criterion.
    rng = np.random.default_rng(7)
    k_fixed = npv["k"]
    h = 1e-5
    for trial in range(3):
        dirs = {n: rng.standard_normal(P[n].shape) for n in PARAM_NAMES}
        for loss_name, names, gkey in (
            ("moco_loss", PARAM_NAMES, "grad.{}"),
            ("ntxent_loss", ["conv1.weight"], "ntxent_grad.{}"),
        ):
            def loss_at(t):
                Pt = dict(P)
                for n in names:
                    Pt[n] = P[n] + t * dirs[n]
                kf = k_fixed if loss_name == "moco_loss" else None
                return np_everything(Pt, D, k_fixed=kf)[loss_name]
            fd = (loss_at(h) - loss_at(-h)) / (2 * h)
            an = sum(float((ref[gkey.format(n)] * dirs[n]).sum()) for n in names)
            rel = abs(fd - an) / max(1e-12, abs(an))
            print(f"  finite diff     {loss_name:12s} dir {trial}: autograd {an:+.12f}"
                  f"  fd {fd:+.12f}  rel {rel:.1e}")
            assert rel < 1e-6, f"{loss_name} gradient mismatch (rel {rel})"
    # Per-parameter: one coordinate of every MoCo gradient.
    for n in PARAM_NAMES:
        idx = tuple(int(rng.integers(s)) for s in P[n].shape)

        def loss_at(t):
            Pt = dict(P)
            Pt[n] = P[n].copy()
            Pt[n][idx] += t
            return np_everything(Pt, D, k_fixed=k_fixed)["moco_loss"]
        fd = (loss_at(h) - loss_at(-h)) / (2 * h)
        an = float(ref[f"grad.{n}"][idx])
        assert abs(fd - an) <= 1e-7 + 1e-6 * abs(an), (n, idx, fd, an)
    print(f"  per-parameter coordinate finite differences: all {len(PARAM_NAMES)} ok")
    print(f"check passed (worst forward diff {worst:.3e} <= 1e-9)")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory")
    ap.add_argument("--check", action="store_true",
                    help="independent NumPy (no torch) cross-check")
    args = ap.parse_args()

    params, data = draw_everything()
    ref = torch_reference(params, data)

    # Tensor order in the file: parameters, inputs, outputs, losses, gradients.
    tensors = [(n, params[n]) for n in PARAM_NAMES]
    tensors += [(n, data[n]) for n in ("anchors", "positives", "queue")]
    tensors += [(n, ref[n]) for n in ("features_anchor", "q", "k", "moco_loss", "ntxent_loss")]
    tensors += [(f"grad.{n}", ref[f"grad.{n}"]) for n in PARAM_NAMES]
    tensors += [("ntxent_grad.conv1.weight", ref["ntxent_grad.conv1.weight"])]

    moco64, nt64 = float(ref["moco_loss"][0]), float(ref["ntxent_loss"][0])
    metadata = {
        "description": "tiny MoCo reference encoder, golden values (benchmarks/golden_reference.py)",
        "temperature": repr(TEMPERATURE),
        "seed": str(SEED),
        "batch": str(BATCH),
        "queue_size": str(QUEUE_SIZE),
        "embed_dim": str(EMBED_DIM),
        "gn_groups": str(GN_GROUPS),
        "gn_eps": repr(GN_EPS),
        "moco_loss_f64": repr(moco64),
        "ntxent_loss_f64": repr(nt64),
        "key_encoder": "same weights as query encoder (no momentum difference); k detached",
    }

    os.makedirs(args.out, exist_ok=True)
    st_path = os.path.join(args.out, STEM + ".safetensors")
    write_safetensors(st_path, tensors, metadata)

    # Round trip: bytes read back equal what was meant to be written.
    back, meta_back, hlen = read_safetensors(st_path)
    assert hlen % 8 == 0
    assert list(back) == [n for n, _ in tensors], "tensor order changed"
    assert meta_back == metadata
    for name, arr in tensors:
        assert back[name].shape == np.shape(arr), name
        assert np.array_equal(back[name], np.asarray(arr, dtype=np.float32)), name
    size = os.path.getsize(st_path)
    assert size < 100_000, size
    with open(st_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()

    def spot(a):
        return [float(v) for v in np.asarray(a).ravel()]

    summary = {
        "file": STEM + ".safetensors",
        "bytes": size,
        "sha256": sha,
        "generator": "benchmarks/golden_reference.py",
        "format": "safetensors: u64 LE header length, JSON header padded with spaces to a "
                  "multiple of 8, raw data; all tensors F32 little-endian C-contiguous in "
                  "PyTorch layout (conv [out,in,kh,kw], linear [out,in], images NCHW); "
                  "scalars have shape [1]",
        "precision": "values drawn in float64 and rounded to float32 once; forward/backward "
                     "computed in float64 (torch) from those float32 values; stored outputs "
                     "are the float64 results rounded to float32",
        "network": {
            "input": list(IMAGE),
            "backbone": "4 x [Conv2d 3x3 stride 2 padding 1 no bias -> GroupNorm(4, affine, "
                        "eps 1e-5) -> ReLU], channels 3-8-8-16-16, spatial 16-8-4-2-1, "
                        "then mean over H,W -> 16-d features",
            "projector": "Linear 16->16 (bias) -> ReLU -> Linear 16->8 (bias) -> z/||z||_2",
        },
        "hyperparameters": {
            "seed": SEED, "batch": BATCH, "channels": CHANNELS, "gn_groups": GN_GROUPS,
            "gn_eps": GN_EPS, "feature_dim": FEATURE_DIM, "hidden_dim": HIDDEN_DIM,
            "embed_dim": EMBED_DIM, "queue_size": QUEUE_SIZE, "temperature": TEMPERATURE,
        },
        "initialisation": {
            "rng": "numpy.random.default_rng(2024).standard_normal, drawn in order: "
                   + ", ".join(PARAM_NAMES) + ", then anchors, positives, queue",
            "conv and linear weights": "0.3 * N(0,1)",
            "linear biases": "0.1 * N(0,1)",
            "groupnorm weights": "1 + 0.1 * N(0,1)",
            "groupnorm biases": "0.1 * N(0,1)",
            "anchors, positives": "N(0,1), shape [4,3,16,16]",
            "queue": "N(0,1) [16,8], each row divided by its L2 norm, then rounded to float32",
        },
        "objectives": {
            "key_encoder": "the SAME weights as the query encoder (no momentum difference); "
                           "k = embedding of positives, detached (constant)",
            "moco": "logits = cat([sum(q*k,1,keepdim), q @ queue.T], 1) / 0.1; "
                    "loss = mean cross-entropy with target 0; grad.* = d loss / d param "
                    "through q only",
            "ntxent": "z = cat([q_anchors, q_positives]) (both with gradient); "
                      "S = z @ z.T / 0.1 with diagonal -inf; positive of row i is "
                      "(i+4) mod 8; loss = mean CE over 8 rows; "
                      "ntxent_grad.conv1.weight = d loss / d conv1.weight",
        },
        "moco_loss": moco64,
        "ntxent_loss": nt64,
        "notes": [
            "The last conv block works on a 1x1 map, so GroupNorm normalises 4 values "
            "per group and about half of the 16 features are exactly 0 after the ReLU; "
            "ReLU units that are off for all 4 anchors give EXACT zeros in the gradients ("
            + ", ".join(f"grad.{n}: {int(np.sum(ref['grad.' + n] == 0))}/{ref['grad.' + n].size}"
                        for n in PARAM_NAMES if np.any(ref["grad." + n] == 0)) + ").",
            f"Smallest |pre-activation| at any ReLU: {ref['relu_margin']:.2e} "
            "(so float32 implementations should take the same ReLU branches).",
            "The mean over H,W in the backbone is over a 1x1 map for 16x16 inputs.",
        ],
        "tensors": {n: list(np.shape(a)) for n, a in tensors},
        "spot_values": {
            "q[0]": spot(ref["q"][0]),
            "features_anchor[0][:4]": spot(ref["features_anchor"][0][:4]),
            "grad.conv1.weight[0,0,0,:]": spot(ref["grad.conv1.weight"][0, 0, 0, :]),
            "grad.proj2.bias": spot(ref["grad.proj2.bias"]),
        },
    }
    json_path = os.path.join(args.out, STEM + ".json")
    text = json.dumps(summary, indent=2)
    # Keep numeric lists (shapes, spot values) on one line for readability.
    text = re.sub(r"\[\s+([-+0-9.e,\s]+?)\s+\]",
                  lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    assert json.loads(text) == summary
    with open(json_path, "w") as f:
        f.write(text + "\n")

    print(f"wrote {st_path} ({size} bytes, {len(tensors)} tensors, header {hlen} bytes)")
    print(f"wrote {json_path}")
    print(f"moco_loss   = {moco64!r}")
    print(f"ntxent_loss = {nt64!r}")
    for k, v in summary["spot_values"].items():
        print(f"{k} = {v}")

    if args.check:
        print("--check: NumPy float64 recomputation (no torch)")
        run_check(st_path, ref, params, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
