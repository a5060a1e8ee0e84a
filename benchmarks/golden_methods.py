#!/usr/bin/env python3
"""Golden fixture for the methods' losses: PyTorch float64 autograd on fixed embeddings.

Writes Tests/TemporalContrastTests/Fixtures/golden_methods.safetensors with, for each method
whose loss is not already in golden_moco.safetensors (MoCo and NT-Xent are):

  vicreg:  VICReg (lambda = mu = 25, nu = 1, gamma = 1, eps = 1e-4, unbiased variance and
           covariance) on raw embeddings a, b           -> vicreg_loss, vicreg_grad_a, vicreg_grad_b
  barlow:  Barlow Twins (lambda = 0.0051; each view standardised per dimension with the biased
           variance and eps = 1e-5, as affine-free BatchNorm1d; C = za^T zb / n)
                                                         -> barlow_loss, barlow_grad_a, barlow_grad_b
  simsiam: the predictor methods' regression term, mean over rows of -cos(p_i, t_i) with the target
           t constant (SimSiam's D; BYOL's 2 - 2 cos is 2 (1 + this)), p = a, t = b
                                                         -> simsiam_loss, simsiam_grad_p
  dino:    DINO's loss with two views: student scores s = z W^T / ||W rows|| of the unit rows
           z = f, g (za, zb) over 10 prototypes W; teacher outputs ta, tb [8, 10] and a centre c given;
           L = 0.5 [H(softmax((ta - c)/0.04), log_softmax(sb/0.1)) + H(softmax((tb - c)/0.04), log_softmax(sa/0.1))]
                                                         -> dino_loss, dino_grad_f, dino_grad_g, dino_grad_w
  swav:    SwAV's codes (Sinkhorn-Knopp, eps 0.05, 3 iterations, on each view's scores alone) and its
           swapped-prediction loss, tau 0.1, the codes constant
                                                         -> swav_codes_a, swav_loss, swav_grad_f, swav_grad_g, swav_grad_w
  standardised: SwAV's and DINO's head before the prototypes, u = normalize(batch_norm(a)) (batch
           statistics, no scale or shift, eps 1e-5), and the gradient of sum(u * r) for a fixed r
                                                         -> standardised_unit, standardised_grad_a
  pirl:    PIRL's NCE against a memory bank with the candidates given (row i: its own entry
           ids[i] first, then five others): L = lam * CE(g . bank[c] / T) + (1 - lam) * CE(f . bank[c] / T),
           target 0, mean over rows, T = 0.1, lam = 0.5; f = unit(a) (original), g = unit(b)
           (transformed)                                -> pirl_loss, pirl_grad_f, pirl_grad_g

Inputs, from numpy.random.default_rng(2025), rounded to float32 once: a [8, 6] = N(0,1),
b = a + 0.5 N(0,1) (correlated views), bank [12, 6] unit rows, ids [8], candidates [8, 6].
Stored outputs are the float64 results rounded to float32; losses also in the metadata at full
precision.

Usage: .venv/bin/python benchmarks/golden_methods.py [--out DIR]   (needs torch: setup.sh "torch")
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_reference import DEFAULT_OUT, f32_exact, read_safetensors, write_safetensors  # noqa: E402

N, D, BANK, K = 8, 6, 12, 5


def draw():
    rng = np.random.default_rng(2025)
    a = f32_exact(rng.standard_normal((N, D)))
    b = f32_exact(a + 0.5 * rng.standard_normal((N, D)))
    bank = rng.standard_normal((BANK, D))
    bank = f32_exact(bank / np.linalg.norm(bank, axis=1, keepdims=True))
    ids = rng.integers(0, BANK, N)
    candidates = np.zeros((N, K + 1), dtype=np.int64)
    for i in range(N):
        others = [c for c in rng.permutation(BANK) if c != ids[i]][:K]
        candidates[i] = [ids[i]] + others
    w = f32_exact(rng.standard_normal((10, D)))
    centre = f32_exact(0.3 * rng.standard_normal(10))
    ta = f32_exact(rng.standard_normal((N, 10)))
    tb = f32_exact(rng.standard_normal((N, 10)))
    r = f32_exact(rng.standard_normal((N, D)))
    f = f32_exact(a / np.linalg.norm(a, axis=1, keepdims=True))
    g = f32_exact(b / np.linalg.norm(b, axis=1, keepdims=True))
    return {"a": a, "b": b, "bank": bank, "ids": ids.astype(np.float64), "candidates": candidates.astype(np.float64),
            "f": f, "g": g, "w": w, "centre": centre, "ta": ta, "tb": tb, "r": r}


def reference(x):
    import torch
    import torch.nn.functional as F

    torch.set_default_dtype(torch.float64)
    out = {}

    a = torch.tensor(x["a"], requires_grad=True)
    b = torch.tensor(x["b"], requires_grad=True)
    n, d = a.shape

    def vicreg(za, zb):
        inv = F.mse_loss(za, zb)
        def var(z):
            std = torch.sqrt(z.var(dim=0) + 1e-4)
            return torch.mean(F.relu(1 - std))
        def cov(z):
            zc = z - z.mean(dim=0)
            c = zc.T @ zc / (n - 1)
            off = c - torch.diag(torch.diag(c))
            return (off ** 2).sum() / d
        return 25 * inv + 25 * (var(za) + var(zb)) + 1 * (cov(za) + cov(zb))

    def barlow(za, zb, lam=0.0051, eps=1e-5):
        def standardise(z):
            return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)
        c = standardise(za).T @ standardise(zb) / n
        on = ((1 - torch.diag(c)) ** 2).sum()
        off = ((c - torch.diag(torch.diag(c))) ** 2).sum()
        return on + lam * off

    for name, fn in (("vicreg", vicreg), ("barlow", barlow)):
        loss = fn(a, b)
        ga, gb = torch.autograd.grad(loss, [a, b])
        out[f"{name}_loss"] = np.array([loss.item()])
        out[f"{name}_grad_a"] = ga.numpy()
        out[f"{name}_grad_b"] = gb.numpy()

    p = torch.tensor(x["a"], requires_grad=True)
    t = torch.tensor(x["b"])
    loss = -F.cosine_similarity(p, t, dim=1).mean()
    (gp,) = torch.autograd.grad(loss, [p])
    out["simsiam_loss"] = np.array([loss.item()])
    out["simsiam_grad_p"] = gp.numpy()

    f = torch.tensor(x["f"], requires_grad=True)
    g = torch.tensor(x["g"], requires_grad=True)
    bank = torch.tensor(x["bank"])
    cand = torch.tensor(x["candidates"].astype(np.int64))
    entries = bank[cand]                                  # [N, K+1, D]
    target = torch.zeros(N, dtype=torch.long)
    lg = torch.einsum("nd,nkd->nk", g, entries) / 0.1
    lf = torch.einsum("nd,nkd->nk", f, entries) / 0.1
    loss = 0.5 * F.cross_entropy(lg, target) + 0.5 * F.cross_entropy(lf, target)
    gf, gg = torch.autograd.grad(loss, [f, g])
    out["pirl_loss"] = np.array([loss.item()])

    def scores(z, w):
        return z @ (w / w.norm(dim=1, keepdim=True)).T

    za = torch.tensor(x["f"], requires_grad=True)
    zb = torch.tensor(x["g"], requires_grad=True)
    w = torch.tensor(x["w"], requires_grad=True)
    centre = torch.tensor(x["centre"])
    pa = F.softmax((torch.tensor(x["ta"]) - centre) / 0.04, dim=1)
    pb = F.softmax((torch.tensor(x["tb"]) - centre) / 0.04, dim=1)
    sa, sb = scores(za, w), scores(zb, w)
    loss = 0.5 * ((-(pa * F.log_softmax(sb / 0.1, dim=1)).sum(1).mean()) + (-(pb * F.log_softmax(sa / 0.1, dim=1)).sum(1).mean()))
    g = torch.autograd.grad(loss, [za, zb, w])
    out["dino_loss"] = np.array([loss.item()])
    out["dino_grad_f"], out["dino_grad_g"], out["dino_grad_w"] = (t.numpy() for t in g)

    @torch.no_grad()
    def sinkhorn(s, eps=0.05, iterations=3):
        q = torch.exp(s / eps).T                          # the paper's distributed_sinkhorn, one rank
        q /= q.sum()
        k, b = q.shape
        for _ in range(iterations):
            q /= q.sum(dim=1, keepdim=True)
            q /= k
            q /= q.sum(dim=0, keepdim=True)
            q /= b
        return (q * b).T

    sa, sb = scores(za, w), scores(zb, w)
    qa, qb = sinkhorn(sa.detach()), sinkhorn(sb.detach())
    loss = -0.5 * ((qa * F.log_softmax(sb / 0.1, dim=1)).sum(1).mean() + (qb * F.log_softmax(sa / 0.1, dim=1)).sum(1).mean())
    g = torch.autograd.grad(loss, [za, zb, w])
    out["swav_codes_a"] = qa.numpy()
    out["swav_loss"] = np.array([loss.item()])
    out["swav_grad_f"], out["swav_grad_g"], out["swav_grad_w"] = (t.numpy() for t in g)

    a = torch.tensor(x["a"], requires_grad=True)
    u = F.normalize(F.batch_norm(a, None, None, training=True, eps=1e-5), dim=1)
    (ga,) = torch.autograd.grad((u * torch.tensor(x["r"])).sum(), [a])
    out["standardised_unit"] = u.detach().numpy()
    out["standardised_grad_a"] = ga.numpy()
    out["pirl_grad_f"] = gf.numpy()
    out["pirl_grad_g"] = gg.numpy()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    x = draw()
    ref = reference(x)
    names = ["a", "b", "f", "g", "bank", "ids", "candidates", "w", "centre", "ta", "tb", "r"]
    tensors = [(n, x[n]) for n in names] + [(n, ref[n]) for n in sorted(ref)]
    metadata = {
        "description": "method losses on fixed embeddings, golden values (benchmarks/golden_methods.py)",
        **{f"{m}_loss_f64": repr(float(ref[f"{m}_loss"][0])) for m in ("vicreg", "barlow", "simsiam", "pirl", "dino", "swav")},
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "golden_methods.safetensors")
    write_safetensors(path, tensors, metadata)
    back, meta, _ = read_safetensors(path)
    assert meta == metadata and list(back) == [n for n, _ in tensors]
    for name, arr in tensors:
        assert np.array_equal(back[name], np.asarray(arr, dtype=np.float32)), name
    print(f"wrote {path}")
    for m in ("vicreg", "barlow", "simsiam", "pirl", "dino", "swav"):
        print(f"{m}_loss = {float(ref[m + '_loss'][0])!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
