# Anchor for bench_pipeline.c: the empirical denoiser in numpy (OpenBLAS),
# one guided step = x.Y^T once, two softmaxes (all refs, half of them), two
# weighted sums w.Y; prints steps/s. Usage: pipeline_anchor.py NREFS
import sys, time
import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
d = 64 * 64 * 3
rng = np.random.default_rng(7)
Y = (rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
     .reshape(n, d).astype(np.float32) / 127.5 - 1.0)
y2 = (Y * Y).sum(1)
sub = np.arange(n) % 2 == 0
x = rng.standard_normal(d, dtype=np.float32) * 14.6


def D(dots, sigma, mask):
    l = (2 * dots - y2) / (2 * sigma * sigma)
    l = np.where(mask, l, -np.inf)
    w = np.exp(l - l.max())
    w /= w.sum()
    return w.astype(np.float32) @ Y


best = 1e30
for rep in range(3):
    t0 = time.perf_counter()
    steps = 5
    for s in np.geomspace(14.6, 0.03, steps):
        dots = Y @ x
        du = D(dots, s, np.ones(n, bool))
        dc = D(dots, s, sub)
        den = du + 3.0 * (dc - du)
        x = x + (x - den) / s * (-0.1 * s)
    best = min(best, (time.perf_counter() - t0) / steps)
print(1.0 / best)
