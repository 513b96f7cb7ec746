#!/usr/bin/python3
"""PyTorch anchor for bench_sd: the SD 1.x UNet forward (CompVis
openaimodel/attention.py math, written with torch.nn.functional, as the
CompVis code cannot be fetched here) on the same checkpoint, fp32, CPU.

  bench_sd_torch.py CKPT SIZE [SIZE...]   time UNet batch 2 at SIZExSIZE latents
  bench_sd_torch.py --check REFS_DIR      compare with REFS_DIR/cases/unet*.safetensors

Run by bench_sd (Debian's torch 1.13 via /usr/bin/python3). Prints one line
per size: "torch unet SIZE: SECONDS s"."""
import json
import os
import struct
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore")
torch.set_num_threads(int(os.environ.get("BENCH_SD_THREADS", "2")))
P = "model.diffusion_model."


def load(path, prefix=""):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    w = {}
    for k, v in hdr.items():
        if k == "__metadata__" or v["dtype"] != "F32" or not k.startswith(prefix):
            continue
        b, e = v["data_offsets"]
        w[k] = torch.from_numpy(np.frombuffer(mm[b:e], dtype=np.float32).reshape(v["shape"]))
    return w


class UNet:
    def __init__(self, w, heads):
        self.w, self.heads = w, heads

    def gn(self, x, p, eps):
        return F.group_norm(x, 32, self.w[p + ".weight"], self.w[p + ".bias"], eps)

    def conv(self, x, p, stride=1, pad=1):
        return F.conv2d(x, self.w[p + ".weight"], self.w[p + ".bias"], stride, pad)

    def lin(self, x, p):
        return F.linear(x, self.w[p + ".weight"], self.w.get(p + ".bias"))

    def ln(self, x, p):
        return F.layer_norm(x, (x.shape[-1],), self.w[p + ".weight"], self.w[p + ".bias"], 1e-5)

    def res(self, x, emb, p):
        h = self.conv(F.silu(self.gn(x, p + ".in_layers.0", 1e-5)), p + ".in_layers.2")
        h = h + self.lin(F.silu(emb), p + ".emb_layers.1")[:, :, None, None]
        h = self.conv(F.silu(self.gn(h, p + ".out_layers.0", 1e-5)), p + ".out_layers.3")
        if p + ".skip_connection.weight" in self.w:
            x = self.conv(x, p + ".skip_connection", pad=0)
        return x + h

    def attn(self, x, ctx, p):
        q, k, v = self.lin(x, p + ".to_q"), self.lin(ctx, p + ".to_k"), self.lin(ctx, p + ".to_v")
        b, n, c = q.shape
        h = self.heads
        d = c // h
        q, k, v = [t.reshape(b, -1, h, d).permute(0, 2, 1, 3).reshape(b * h, -1, d) for t in (q, k, v)]
        sim = torch.einsum("bid,bjd->bij", q, k) * d ** -0.5
        o = torch.einsum("bij,bjd->bid", sim.softmax(dim=-1), v)
        o = o.reshape(b, h, n, d).permute(0, 2, 1, 3).reshape(b, n, c)
        return self.lin(o, p + ".to_out.0")

    def st(self, x, ctx, p):
        b, c, hh, ww = x.shape
        h = self.conv(self.gn(x, p + ".norm", 1e-6), p + ".proj_in", pad=0)
        h = h.permute(0, 2, 3, 1).reshape(b, hh * ww, c)
        q = p + ".transformer_blocks.0"
        n1 = self.ln(h, q + ".norm1")
        h = h + self.attn(n1, n1, q + ".attn1")
        h = h + self.attn(self.ln(h, q + ".norm2"), ctx, q + ".attn2")
        a, g = self.lin(self.ln(h, q + ".norm3"), q + ".ff.net.0.proj").chunk(2, dim=-1)
        h = h + self.lin(a * F.gelu(g), q + ".ff.net.2")
        h = h.reshape(b, hh, ww, c).permute(0, 3, 1, 2)
        return x + self.conv(h, p + ".proj_out", pad=0)

    def block(self, x, emb, ctx, p):
        j = 0
        while True:
            q = "%s.%d" % (p, j)
            if q + ".in_layers.0.weight" in self.w:
                x = self.res(x, emb, q)
            elif q + ".proj_in.weight" in self.w:
                x = self.st(x, ctx, q)
            elif q + ".op.weight" in self.w:
                x = self.conv(x, q + ".op", stride=2)
            elif q + ".conv.weight" in self.w:
                x = self.conv(F.interpolate(x, scale_factor=2, mode="nearest"), q + ".conv")
            elif q + ".weight" in self.w:
                x = self.conv(x, q)
            else:
                return x
            j += 1

    def __call__(self, x, t, ctx):
        mc = self.w[P + "time_embed.0.weight"].shape[1]
        half = mc // 2
        freqs = torch.exp(-np.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        emb = self.lin(F.silu(self.lin(emb, P + "time_embed.0")), P + "time_embed.2")
        hs, h, i = [], x, 0
        while P + "input_blocks.%d.0.weight" % i in self.w or any(
                k.startswith(P + "input_blocks.%d." % i) for k in self.w):
            h = self.block(h, emb, ctx, P + "input_blocks.%d" % i)
            hs.append(h)
            i += 1
        h = self.block(h, emb, ctx, P + "middle_block")
        i = 0
        while hs:
            h = self.block(torch.cat([h, hs.pop()], dim=1), emb, ctx, P + "output_blocks.%d" % i)
            i += 1
        return self.conv(F.silu(self.gn(h, P + "out.0", 1e-5)), P + "out.2")


def main():
    if sys.argv[1] == "--check":
        refs = sys.argv[2]
        cfg = json.load(open(refs + "/config.json"))
        net = UNet(load(refs + "/model.safetensors", P), cfg["unet"]["num_heads"])
        for case in ("unet", "unet_frac_t"):
            c = load(refs + "/cases/%s.safetensors" % case)
            with torch.no_grad():
                eps = net(c["x"], c["timesteps"], c["context"])
            rel = float((eps - c["eps"]).abs().max() / c["eps"].abs().max())
            print("torch anchor vs reference %s: rel %.3g" % (case, rel))
        return
    ckpt, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
    net = UNet(load(ckpt, P), 8)
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(2, 77, 768, generator=g)
    t = torch.tensor([999.0, 999.0])
    with torch.no_grad():
        net(torch.randn(2, 4, 8, 8, generator=g), t, ctx)  # warm-up
        for s in sizes:
            x = torch.randn(2, 4, s, s, generator=g)
            t0 = time.time()
            net(x, t, ctx)
            print("torch unet %d: %.3f s" % (s, time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
