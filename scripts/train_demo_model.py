#!/usr/bin/python3
"""train_demo_model.py -- trains the small SD-1.x-shaped model that memorised
(models/demo-memo): `make demo-model`. Not part of CI; CPU, seeded.

  /usr/bin/python3 scripts/train_demo_model.py --data DIR --out models/demo-memo
      [--ae-steps N] [--unet-steps N] [--seed S] [--vocab bpe_simple_vocab_16e6.txt.gz]

DIR is a Twemoji 64 px folder with captions.jsonl (demo/data/twemoji-64 as
scripts/demo.sh prepares it, or ../shared/data/twemoji-64). The model is SD 1.x
in every part but its sizes (configs/stable-diffusion/v1-inference.yaml):

  - KL autoencoder (CompVis Encoder/Decoder, f = 4: 64x64x3 -> 16x16x4),
    trained on the training images with L1 + L2 + 1e-6 KL;
  - CLIP text transformer (openai/CLIP numerics, causal, quick_gelu) with
    frozen random weights (openai/CLIP initialize_parameters()), the real CLIP
    BPE tokenizer and vocabulary, so copyscope's C tokenizer reads its prompts;
  - UNet (CompVis openaimodel, SpatialTransformer cross-attention, GEGLU),
    trained with SD 1.x's objective: eps-prediction, scaled-linear betas
    0.00085..0.012 over 1,000 steps, uniform t, 10 % caption dropout (empty
    prompt) for classifier-free guidance, AdamW, cosine LR to 5 %.

The training set has a known duplication structure: unique emoji repeated
100x, 30x, 10x, 3x and 1x (manifest.json lists image, caption, copies), plus
novel prompts whose words appear in no training caption. Output (--out):
model.safetensors (F16, CompVis single-file key names), config.json (read by
pipeline/sd_config.c), manifest.json, train-log.json, recon/ (the
autoencoder's reconstruction of every training image, the pixel floor that
copies are judged against), cases/ (reference cases for `copyscope selftest
--refs OUT`, computed here in PyTorch), SHA256SUMS.

Images: Twemoji by Twitter, Inc and other contributors, CC BY 4.0.
"""
import argparse
import gzip
import hashlib
import json
import math
import os
import random
import re
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

# ---- data and duplication structure -------------------------------------------------

GROUPS = [(100, 4), (30, 6), (10, 8), (3, 8), (1, 32)]  # (copies, unique images): 716 samples an epoch
N_NOVEL = 24
SKIP_CATEGORIES = {"Flags", "Symbols", "Component"}  # near-identical shapes: ambiguous copies


def words(s):
    return set(re.findall(r"[a-z0-9]+", s.lower()))


def load_captions(data):
    rows = [json.loads(l) for l in open(os.path.join(data, "captions.jsonl"), encoding="utf-8")]
    return rows


def choose(rows, seed):
    """Training emoji with pairwise word-disjoint captions (so a caption names one
    image), then novel prompts sharing no word with any training caption."""
    rng = random.Random(seed)
    pool = [r for r in rows if r["category"] not in SKIP_CATEGORIES and
            1 <= len(r["caption"].split()) <= 4 and r["caption"].isascii()]
    rng.shuffle(pool)
    need = sum(n for _, n in GROUPS)
    used, train = set(), []
    for r in pool:
        w = words(r["caption"])
        if w & used:
            continue
        used |= w
        train.append(r)
        if len(train) == need:
            break
    assert len(train) == need, "not enough word-disjoint captions"
    chosen = {r["file"] for r in train}
    novel, nused = [], set()
    for r in pool:
        w = words(r["caption"])
        if r["file"] in chosen or w & used or w & nused:
            continue
        nused |= w
        novel.append(r)
        if len(novel) == N_NOVEL:
            break
    items, k = [], 0
    for copies, n in GROUPS:
        for r in train[k:k + n]:
            items.append({"file": r["file"], "unified": r["unified"], "caption": r["caption"],
                          "copies": copies})
        k += n
    novel = [{"prompt": r["caption"], "unified": r["unified"]} for r in novel]
    return items, novel


def load_rgb(path):
    """RGBA over white, as copyscope's index stores references (core/schema.c)."""
    im = Image.open(path).convert("RGBA")
    a = np.asarray(im, dtype=np.float64) / 255.0
    rgb = a[..., :3] * a[..., 3:4] + (1.0 - a[..., 3:4])
    rgb = np.floor(rgb * 255.0 + 0.5) / 255.0
    return torch.tensor(rgb.transpose(2, 0, 1), dtype=torch.float32) * 2 - 1  # [-1, 1]


# ---- CLIP BPE tokenizer (openai/CLIP simple_tokenizer behaviour, ASCII prompts) ----------

def byte_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs, n = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(keep, cs)}


class Tokenizer:
    def __init__(self, path):
        raw = open(path, "rb").read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        merges = raw.decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
        merges = [tuple(m.split()) for m in merges]
        self.b2u = byte_unicode()
        vocab = list(self.b2u.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.enc = {v: i for i, v in enumerate(vocab)}
        self.rank = {m: i for i, m in enumerate(merges)}
        self.pat = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"
                              r"[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)

    def bpe(self, tok):
        w = list(tok[:-1]) + [tok[-1] + "</w>"]
        while len(w) > 1:
            pairs = [(self.rank.get((w[i], w[i + 1]), 1 << 30), i) for i in range(len(w) - 1)]
            r, _ = min(pairs)
            if r == 1 << 30:
                break
            a, b = w[[i for rr, i in pairs if rr == r][0]], w[[i for rr, i in pairs if rr == r][0] + 1]
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            w = out
        return w

    def __call__(self, text):
        text = " ".join(text.split()).lower()
        ids = []
        for t in self.pat.findall(text):
            t = "".join(self.b2u[b] for b in t.encode("utf-8"))
            ids += [self.enc[p] for p in self.bpe(t)]
        ids = [49406] + ids[:75] + [49407]
        return ids + [49407] * (77 - len(ids))


# ---- CLIP text transformer (Hugging Face CLIPTextModel names) ---------------------------

class CLIPLayer(nn.Module):
    def __init__(self, d, heads, inter):
        super().__init__()
        self.heads = heads
        self.self_attn = nn.Module()
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.self_attn, n, nn.Linear(d, d))
        self.layer_norm1 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, inter)
        self.mlp.fc2 = nn.Linear(inter, d)
        self.layer_norm2 = nn.LayerNorm(d, eps=1e-5)

    def forward(self, x, mask):
        B, T, D = x.shape
        h, a = self.heads, self.self_attn
        y = self.layer_norm1(x)
        q, k, v = (p(y).view(B, T, h, D // h).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
        w = (q @ k.transpose(-1, -2)) * (D // h) ** -0.5 + mask
        y = (w.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + a.out_proj(y)
        y = self.mlp.fc1(self.layer_norm2(x))
        return x + self.mlp.fc2(y * torch.sigmoid(1.702 * y))


class CLIPText(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.embeddings = nn.Module()
        self.embeddings.token_embedding = nn.Embedding(c["vocab_size"], d)
        self.embeddings.position_embedding = nn.Embedding(77, d)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(CLIPLayer(d, c["num_attention_heads"], c["intermediate_size"])
                                            for _ in range(c["num_hidden_layers"]))
        self.final_layer_norm = nn.LayerNorm(d, eps=1e-5)
        # openai/CLIP initialize_parameters()
        nn.init.normal_(self.embeddings.token_embedding.weight, std=0.02)
        nn.init.normal_(self.embeddings.position_embedding.weight, std=0.01)
        L = c["num_hidden_layers"]
        for l in self.encoder.layers:
            for n in ("q_proj", "k_proj", "v_proj"):
                nn.init.normal_(getattr(l.self_attn, n).weight, std=d ** -0.5)
                nn.init.zeros_(getattr(l.self_attn, n).bias)
            nn.init.normal_(l.self_attn.out_proj.weight, std=d ** -0.5 * (2 * L) ** -0.5)
            nn.init.zeros_(l.self_attn.out_proj.bias)
            nn.init.normal_(l.mlp.fc1.weight, std=(2 * d) ** -0.5)
            nn.init.normal_(l.mlp.fc2.weight, std=d ** -0.5 * (2 * L) ** -0.5)

    def forward(self, ids):
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding.weight[None]
        mask = torch.full((77, 77), float("-inf")).triu(1)
        for l in self.encoder.layers:
            x = l(x, mask)
        return self.final_layer_norm(x)


# ---- UNet (CompVis ldm openaimodel names) ---------------------------------------------

def gn(c, eps):
    return nn.GroupNorm(32, c, eps=eps)


class Seq(nn.ModuleList):  # TimestepEmbedSequential
    def forward(self, x, emb, ctx):
        for m in self:
            if isinstance(m, ResBlock):
                x = m(x, emb)
            elif isinstance(m, SpatialTransformer):
                x = m(x, ctx)
            else:
                x = m(x)
        return x


class ResBlock(nn.Module):
    def __init__(self, cin, cout, ted):
        super().__init__()
        self.in_layers = nn.Sequential(gn(cin, 1e-5), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(ted, cout))
        self.out_layers = nn.Sequential(gn(cout, 1e-5), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)
        nn.init.zeros_(self.out_layers[3].weight)  # zero_module
        nn.init.zeros_(self.out_layers[3].bias)

    def forward(self, x, emb):
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Attn(nn.Module):  # CrossAttention
    def __init__(self, q_dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(q_dim, q_dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, q_dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, q_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(q_dim, q_dim), nn.Dropout(0.0))

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        B, T, C = x.shape
        h = self.heads
        q = self.to_q(x).view(B, T, h, C // h).transpose(1, 2)
        k = self.to_k(ctx).view(B, -1, h, C // h).transpose(1, 2)
        v = self.to_v(ctx).view(B, -1, h, C // h).transpose(1, 2)
        w = (q @ k.transpose(-1, -2)) * (C // h) ** -0.5
        return self.to_out((w.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C))


class GEGLU(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, 8 * d)

    def forward(self, x):
        a, g = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(g)


class Block(nn.Module):  # BasicTransformerBlock
    def __init__(self, c, ctx_dim, heads):
        super().__init__()
        self.attn1 = Attn(c, c, heads)
        self.attn2 = Attn(c, ctx_dim, heads)
        self.ff = nn.Module()
        self.ff.net = nn.Sequential(GEGLU(c), nn.Dropout(0.0), nn.Linear(4 * c, c))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(c, eps=1e-5) for _ in range(3))

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff.net(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, c, ctx_dim, heads):
        super().__init__()
        self.norm = gn(c, 1e-6)
        self.proj_in = nn.Conv2d(c, c, 1)
        self.transformer_blocks = nn.ModuleList([Block(c, ctx_dim, heads)])
        self.proj_out = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x, ctx):
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        for b in self.transformer_blocks:
            h = b(h, ctx)
        return self.proj_out(h.transpose(1, 2).reshape(B, C, H, W)) + x


class Down(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.op = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, u):
        super().__init__()
        mc, ted, ctx, heads = u["model_channels"], u["time_embed_dim"], u["context_dim"], u["num_heads"]
        mult, nrb = u["channel_mult"], u["num_res_blocks"]
        attn = [2 ** l in u["attention_resolutions"] for l in range(len(mult))]
        self.mc = mc
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        self.input_blocks = nn.ModuleList([Seq([nn.Conv2d(u["in_channels"], mc, 3, padding=1)])])
        chans, ch = [mc], mc
        for l, m in enumerate(mult):
            for _ in range(nrb):
                layers = [ResBlock(ch, m * mc, ted)]
                ch = m * mc
                if attn[l]:
                    layers.append(SpatialTransformer(ch, ctx, heads))
                self.input_blocks.append(Seq(layers))
                chans.append(ch)
            if l != len(mult) - 1:
                self.input_blocks.append(Seq([Down(ch)]))
                chans.append(ch)
        self.middle_block = Seq([ResBlock(ch, ch, ted), SpatialTransformer(ch, ctx, heads),
                                 ResBlock(ch, ch, ted)])
        self.output_blocks = nn.ModuleList()
        for l in reversed(range(len(mult))):
            for i in range(nrb + 1):
                layers = [ResBlock(ch + chans.pop(), mult[l] * mc, ted)]
                ch = mult[l] * mc
                if attn[l]:
                    layers.append(SpatialTransformer(ch, ctx, heads))
                if l and i == nrb:
                    layers.append(Up(ch))
                self.output_blocks.append(Seq(layers))
        self.out = nn.Sequential(gn(ch, 1e-5), nn.SiLU(), nn.Conv2d(ch, u["out_channels"], 3, padding=1))
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)

    def forward(self, x, t, ctx):
        half = self.mc // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        a = t.float()[:, None] * freqs[None]
        emb = self.time_embed(torch.cat([torch.cos(a), torch.sin(a)], dim=-1))
        hs, h = [], x
        for b in self.input_blocks:
            h = b(h, emb, ctx)
            hs.append(h)
        h = self.middle_block(h, emb, ctx)
        for b in self.output_blocks:
            h = b(torch.cat([h, hs.pop()], dim=1), emb, ctx)
        return self.out(h)


# ---- KL autoencoder (CompVis ldm.modules.diffusionmodules.model names) ----------------

class VResnet(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = gn(cin, 1e-6), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = gn(cout, 1e-6), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class VAttn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = gn(c, 1e-6)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.norm(x)
        q = self.q(h).flatten(2).transpose(1, 2)
        k = self.k(h).flatten(2)
        v = self.v(h).flatten(2)
        w = (q @ k * C ** -0.5).softmax(-1)  # [B, HW(q), HW(k)]
        return x + self.proj_out((v @ w.transpose(1, 2)).view(B, C, H, W))


def vmid(c):
    m = nn.Module()
    m.block_1, m.attn_1, m.block_2 = VResnet(c, c), VAttn(c), VResnet(c, c)
    return m


class VDown(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Encoder(nn.Module):
    def __init__(self, v):
        super().__init__()
        ch, mult, nrb = v["ch"], v["ch_mult"], v["num_res_blocks"]
        self.conv_in = nn.Conv2d(v["in_channels"], ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch
        for l, m in enumerate(mult):
            d = nn.Module()
            d.block = nn.ModuleList()
            for _ in range(nrb):
                d.block.append(VResnet(cin, ch * m))
                cin = ch * m
            if l != len(mult) - 1:
                d.downsample = VDown(cin)
            self.down.append(d)
        self.mid = vmid(cin)
        self.norm_out = gn(cin, 1e-6)
        self.conv_out = nn.Conv2d(cin, 2 * v["z_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for d in self.down:
            for b in d.block:
                h = b(h)
            if hasattr(d, "downsample"):
                h = d.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, v):
        super().__init__()
        ch, mult, nrb = v["ch"], v["ch_mult"], v["num_res_blocks"]
        cin = ch * mult[-1]
        self.conv_in = nn.Conv2d(v["z_channels"], cin, 3, padding=1)
        self.mid = vmid(cin)
        ups = []
        for l in reversed(range(len(mult))):
            u = nn.Module()
            u.block = nn.ModuleList()
            for _ in range(nrb + 1):
                u.block.append(VResnet(cin, ch * mult[l]))
                cin = ch * mult[l]
            if l:
                u.upsample = Up(cin)
            ups.insert(0, u)
        self.up = nn.ModuleList(ups)
        self.norm_out = gn(cin, 1e-6)
        self.conv_out = nn.Conv2d(cin, v["out_ch"], 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for u in reversed(self.up):
            for b in u.block:
                h = b(h)
            if hasattr(u, "upsample"):
                h = u.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.encoder, self.decoder = Encoder(v), Decoder(v)
        z, e = v["z_channels"], v["embed_dim"]
        self.quant_conv = nn.Conv2d(2 * z, 2 * e, 1)
        self.post_quant_conv = nn.Conv2d(e, z, 1)

    def encode(self, x):
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


# ---- schedule, sampling -----------------------------------------------------------

def alphas_cumprod():
    b = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - b, 0).float()


@torch.no_grad()
def ddim(unet, ctx, unc, noise, steps, cfg, ac):
    """Deterministic DDIM (eta 0), CompVis ddim_uniform timesteps, CFG; x in sampler space."""
    ts = list(range(0, 1000, 1000 // steps))
    ts = [t + 1 for t in ts]
    x = noise
    for i in reversed(range(len(ts))):
        t = ts[i]
        a, ap = ac[t], (ac[ts[i - 1]] if i else ac[0])
        tt = torch.full((x.shape[0],), float(t))
        e = unet(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([unc.expand_as(ctx), ctx]))
        eu, ec = e.chunk(2)
        e = eu + cfg * (ec - eu)
        x0 = (x - (1 - a).sqrt() * e) / a.sqrt()
        x = ap.sqrt() * x0 + (1 - ap).sqrt() * e
    return x


def psnr(a, b):
    """a, b in [-1, 1], per image, on [0, 1] pixels."""
    mse = (((a - b) / 2) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


# ---- export -----------------------------------------------------------------------

def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        dt = {torch.float16: "F16", torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        b = t.numpy().tobytes()
        header[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def state_f16(unet, vae, text, ac):
    sd = {}
    for p, m in (("model.diffusion_model.", unet), ("first_stage_model.", vae),
                 ("cond_stage_model.transformer.text_model.", text)):
        for k, v in m.state_dict().items():
            sd[p + k] = v.detach().half()
    sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    sd["alphas_cumprod"] = ac.clone()
    return sd


def rounded(m):
    """A copy of module m with its weights rounded through F16, as exported."""
    import copy
    r = copy.deepcopy(m)
    with torch.no_grad():
        for p in r.parameters():
            p.copy_(p.half().float())
    return r


def write_cases(out, unet, vae, text, tok, prompts, tok_prompts, seed):
    """Reference cases for `copyscope selftest --refs OUT` (format of
    ../shared/refs/sd-tiny/cases): the exported F16 weights in float32."""
    cdir = os.path.join(out, "cases")
    os.makedirs(cdir, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    U, V, T = rounded(unet), rounded(vae), rounded(text)
    with torch.no_grad():
        ids = torch.tensor([tok(p) for p in prompts])
        hid = T(ids)
        all_ids = torch.tensor([tok(p) for p in tok_prompts])
        x = torch.randn(2, 4, 16, 16, generator=g)
        ts = torch.tensor([999.0, 37.5])
        ctx = hid[:2]
        eps = U(x, ts, ctx)
        z = torch.randn(1, 4, 16, 16, generator=g) / 0.18215 * 0.5
        img = V.decode(z)
    cases = []

    def case(name, op, t, params):
        save_safetensors(os.path.join(cdir, name + ".safetensors"), {k: v.float() for k, v in t.items()})
        cases.append({"name": name, "file": "cases/%s.safetensors" % name, "op": op, "params": params})
    case("tokenizer", "tokenize", {"ids": all_ids.float()}, {"prompts": tok_prompts})
    case("text_encoder", "text_encoder", {"ids": ids.float(), "last_hidden_state": hid}, {})
    case("unet", "unet", {"x": x, "timesteps": ts, "context": ctx, "eps": eps}, {})
    case("vae_decoder", "vae_decode", {"z": z, "image": img}, {})
    json.dump({"variant": "demo-memo", "config": "config.json", "weights": "model.safetensors",
               "cases": cases}, open(os.path.join(cdir, "index.json"), "w"), indent=1)


# ---- main -------------------------------------------------------------------------

def model_config():
    """The architecture, in the layout of ../shared/refs/sd-tiny/config.json (pipeline/sd_config.c)."""
    return {
        "name": "demo-memo",
        "format_version": 1,
        "description": "Small Stable-Diffusion-1.x-shaped model TRAINED to memorise (scripts/train_demo_model.py): "
                       "Twemoji 64 px images repeated 100x/30x/10x/3x/1x (manifest.json). Architecture and math "
                       "identical to SD 1.x except the sizes below; frozen random-weight CLIP text encoder.",
        "dtype": "float16",
        "weights": {"file": "model.safetensors",
                    "layout": "CompVis single-file SD1.x checkpoint key names",
                    "prefixes": {"unet": "model.diffusion_model.", "vae": "first_stage_model.",
                                 "text_encoder": "cond_stage_model.transformer.text_model."}},
        "unet": {"in_channels": 4, "out_channels": 4, "model_channels": 64, "channel_mult": [1, 2],
                 "num_res_blocks": 1, "attention_resolutions": [2], "num_heads": 4, "transformer_depth": 1,
                 "context_dim": 128, "num_head_channels": -1, "time_embed_dim": 256,
                 "use_scale_shift_norm": False, "resblock_updown": False, "legacy": False},
        "vae": {"ch": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "z_channels": 4,
                "embed_dim": 4, "double_z": True, "in_channels": 3, "out_ch": 3, "resolution": 64},
        "text_encoder": {"vocab_size": 49408, "max_position_embeddings": 77, "hidden_size": 128,
                         "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512,
                         "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu",
                         "weights": "frozen random (openai/CLIP initialize_parameters, seeded)",
                         "tokenizer": "openai/CLIP BPE, bpe_simple_vocab_16e6.txt.gz (beside the model)"},
        "schedule": {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                     "beta_end": 0.012, "prediction_type": "epsilon"},
        "scale_factor": 0.18215,
        "latent": {"channels": 4, "image_hw": [64, 64], "reference_hw": [16, 16]},
    }


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:40]


def write_suite(path, out, manifest):
    """The `make run` suite over this model (suites/demo-memo.json): every
    training caption (expect_ref = its image) and every novel prompt, three
    seeds each, DDIM 20 steps at guidance 5; white-box score at the first step."""
    rel = os.path.relpath(out, os.path.dirname(os.path.abspath(path)) or ".")
    prompts = [{"id": "x%d-%s" % (it["copies"], slug(it["caption"])), "text": it["caption"],
                "expect_ref": it["file"]} for it in manifest["train"]]
    prompts += [{"id": "novel-%s" % slug(n["prompt"]), "text": n["prompt"]} for n in manifest["novel"]]
    suite = {
        "name": "demo-memo",
        "description": "The demo's trained model (models/demo-memo, scripts/train_demo_model.py): a small SD-1.x-shaped "
                       "model trained on Twemoji images repeated 100x/30x/10x/3x/1x (manifest.json beside the model). "
                       "Prompts: every training caption (expect_ref = its training image) and novel prompts that share "
                       "no word with any training caption. Generated by copyscope's own SD sampler.",
        "model": rel + "/model.safetensors", "config": rel + "/config.json",
        "vocab": rel + "/bpe_simple_vocab_16e6.txt.gz",
        "defaults": {"sampler": "ddim", "steps": 20, "guidance": 5.0, "size": 64, "samples": 3, "seed": 2000,
                     "whitebox_k": 1},
        "prompts": prompts,
    }
    with open(path, "w") as f:
        f.write('{\n')
        keys = list(suite)
        for i, k in enumerate(keys):
            end = ",\n" if i + 1 < len(keys) else "\n"
            if k == "prompts":
                f.write('  "prompts": [\n' + ",\n".join("    " + json.dumps(p) for p in prompts) + "\n  ]" + end)
            else:
                f.write("  %s: %s%s" % (json.dumps(k), json.dumps(suite[k]), end))
        f.write("}\n")


def cosine(step, total, warm, base):
    if step < warm:
        return base * (step + 1) / warm
    p = (step - warm) / max(1, total - warm)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="models/demo-memo")
    ap.add_argument("--vocab", default=None)
    ap.add_argument("--ae-steps", type=int, default=400)
    ap.add_argument("--unet-steps", type=int, default=0,
                    help="UNet steps; 0: as many as --budget-min allows, fixed from the speed of the "
                         "first 40 steps (logged: rerun with that number to repeat the run exactly)")
    ap.add_argument("--budget-min", type=float, default=38.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--suite", default=None, help="also write the make-run suite here (suites/demo-memo.json)")
    a = ap.parse_args()
    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    vocab = a.vocab or os.path.join(a.out, "bpe_simple_vocab_16e6.txt.gz")
    tok = Tokenizer(vocab)
    log = {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
           "threads": a.threads, "seed": a.seed, "args": vars(a), "ae": [], "unet": [], "eval": []}
    logf = os.path.join(a.out, "train-log.json")

    def flush():
        log["elapsed_s"] = round(time.time() - t_start, 1)
        json.dump(log, open(logf + ".tmp", "w"), indent=1)
        os.replace(logf + ".tmp", logf)

    def say(*x):
        print("[%7.1fs]" % (time.time() - t_start), *x, flush=True)

    items, novel = choose(load_captions(a.data), a.seed)
    imgs = torch.stack([load_rgb(os.path.join(a.data, it["file"])) for it in items])
    cfg = model_config()
    text = CLIPText(cfg["text_encoder"]).eval()
    vae = AutoencoderKL(cfg["vae"])
    unet = UNet(cfg["unet"])
    n_par = lambda m: sum(p.numel() for p in m.parameters())
    log["params"] = {"unet": n_par(unet), "vae": n_par(vae), "text_encoder": n_par(text)}
    say("images", len(items), "novel prompts", len(novel), "params", log["params"])

    # -- 1. autoencoder
    t0 = time.time()
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed + 1)
    for step in range(a.ae_steps):
        for pg in opt.param_groups:
            pg["lr"] = cosine(step, a.ae_steps, 50, 1.5e-3)
        x = imgs[torch.randint(len(imgs), (16,), generator=g)]
        mean, logvar = vae.encode(x)
        z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=g)
        rec = vae.decode(z)
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).sum((1, 2, 3)).mean()
        loss = (rec - x).abs().mean() + ((rec - x) ** 2).mean() + 1e-6 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == a.ae_steps - 1:
            log["ae"].append([step, round(loss.item(), 5), round(time.time() - t0, 1)])
            say("ae", step, "loss %.4f" % loss.item())
            flush()
    vae.eval()
    with torch.no_grad():
        mean, _ = vae.encode(imgs)
        # SD's fixed scale factor 0.18215: rescale the latent space exactly (mean x k,
        # logvar + 2 ln k, decoder input / k) so that 0.18215 x latent has unit std.
        k = float(1.0 / (0.18215 * mean.std()))
        qc, pq, e = vae.quant_conv, vae.post_quant_conv, cfg["vae"]["embed_dim"]
        qc.weight[:e] *= k
        qc.bias[:e] *= k
        qc.bias[e:] += 2 * math.log(k)
        pq.weight *= 1.0 / k
        V16 = rounded(vae)
        lat = V16.encode(imgs)[0] * 0.18215  # sampler space, the training target
        rec = V16.decode(lat / 0.18215).clamp(-1, 1)
        rec = torch.floor((rec + 1) / 2 * 255 + 0.5) / 255 * 2 - 1
        ae_psnr = psnr(rec, imgs)
    log["ae_time_s"] = round(time.time() - t0, 1)
    log["ae_psnr_mean"] = round(ae_psnr.mean().item(), 2)
    log["ae_psnr_min"] = round(ae_psnr.min().item(), 2)
    log["latent_rescale"] = k
    say("ae done: psnr mean %.2f min %.2f, latent std x%.3f" % (ae_psnr.mean(), ae_psnr.min(), k))
    rdir = os.path.join(a.out, "recon")
    os.makedirs(rdir, exist_ok=True)
    for it, r, p in zip(items, rec, ae_psnr):
        u8 = ((r + 1) / 2 * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        it["recon"] = "recon/" + os.path.basename(it["file"])
        it["ae_psnr"] = round(p.item(), 2)
        Image.fromarray(u8).save(os.path.join(a.out, it["recon"]))

    # -- 2. captions -> frozen text encoder
    with torch.no_grad():
        T16 = rounded(text)
        ctx_all = T16(torch.tensor([tok(it["caption"]) for it in items]))
        unc = T16(torch.tensor([tok("")]))
        ctx_novel = T16(torch.tensor([tok(n["prompt"]) for n in novel]))
    index = torch.tensor(sum([[i] * it["copies"] for i, it in enumerate(items)], []))
    log["dataset_size"] = len(index)
    ac = alphas_cumprod()

    manifest = {
        "model": "model.safetensors", "config": "config.json",
        "images": "Twemoji 64 px (emoji-datasource-twitter@16.0.0, img/twitter/64): file names as in "
                  "scripts/demo.sh's demo/data/twemoji-64",
        "attribution": "Twemoji graphics by Twitter, Inc and other contributors, CC BY 4.0 "
                       "(https://creativecommons.org/licenses/by/4.0/)",
        "groups": [{"copies": c, "images": n} for c, n in GROUPS],
        "dataset_size": len(index), "train": items, "novel": novel,
        "caption_dropout": 0.1,
    }

    def export(tag):
        U = rounded(unet)
        save_safetensors(os.path.join(a.out, "model.safetensors"), state_f16(unet, vae, text, ac))
        json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)
        manifest["checkpoint"] = tag
        json.dump(manifest, open(os.path.join(a.out, "manifest.json"), "w"), indent=1)
        if a.suite:
            write_suite(a.suite, a.out, manifest)
        return U

    def evaluate(step, U, full):
        """Python-side copy rate (DDIM 20 steps, guidance 5, one seed): own image >= 25 dB vs recon."""
        sel = [i for i, it in enumerate(items) if full or it["copies"] >= 10]
        gz = torch.Generator().manual_seed(12345)
        with torch.no_grad():
            noise = torch.randn(len(items), 4, 16, 16, generator=gz)[sel]
            x = ddim(U, ctx_all[sel], unc, noise, 20 if full else 10, 5.0, ac)
            out = V16.decode(x / 0.18215).clamp(-1, 1)
            p = torch.stack([psnr(out, r.expand_as(out)) for r in rec], 1)  # [n, n_items]
        res = {}
        for j, i in enumerate(sel):
            c = items[i]["copies"]
            own = p[j, i].item()
            r = res.setdefault(str(c), [0, 0])
            r[0] += own >= 25.0
            r[1] += 1
        log["eval"].append({"step": step, "copies_own_ge25dB": res})
        say("eval", step, res)

    # -- 3. UNet
    t0 = time.time()
    opt = torch.optim.AdamW(unet.parameters(), lr=a.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed + 2)
    ema = None
    total = a.unet_steps or 10 ** 9
    step = 0
    while step < total:
        if step == 40 and not a.unet_steps:  # before the warm-up ends: the schedule never saw 10**9
            per = (time.time() - t0) / 40
            total = max(200, int(a.budget_min * 60 / per))
            log["unet_steps_auto"] = total
            say("unet: %.2f s/step -> %d steps" % (per, total))
        lr = cosine(step, total, 100, a.lr)
        for pg in opt.param_groups:
            pg["lr"] = lr
        bi = index[torch.randint(len(index), (a.batch,), generator=g)]
        x0 = lat[bi]
        c = ctx_all[bi].clone()
        drop = torch.rand(a.batch, generator=g) < 0.1
        c[drop] = unc[0]
        t = torch.randint(1000, (a.batch,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        at = ac[t][:, None, None, None]
        xt = at.sqrt() * x0 + (1 - at).sqrt() * eps
        loss = F.mse_loss(unet(xt, t, c), eps)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 25 == 0 or step == total - 1:
            log["unet"].append([step, round(loss.item(), 5), round(ema, 5), round(lr, 7),
                                round(time.time() - t0, 1)])
            say("unet", step, "loss %.4f ema %.4f lr %.2e" % (loss.item(), ema, lr))
            flush()
        if (step + 1) % a.save_every == 0 and step + 1 < total:
            unet.eval()
            evaluate(step + 1, export("step %d of %d" % (step + 1, total)), False)
            unet.train()
            flush()
        step += 1
    log["unet_time_s"] = round(time.time() - t0, 1)
    log["final_loss_ema"] = round(ema, 5)
    unet.eval()
    log["unet_steps"] = total
    U = export("final, step %d" % total)
    evaluate(total, U, True)
    write_cases(a.out, unet, vae, text, tok,
                [items[0]["caption"], novel[0]["prompt"], "", "a photograph of an astronaut riding a horse"],
                [it["caption"] for it in items] + [n["prompt"] for n in novel] + [""], a.seed + 3)
    log["train_time_s"] = round(log["ae_time_s"] + log["unet_time_s"], 1)
    flush()
    sums = []
    for f in sorted(["model.safetensors", "config.json", "manifest.json"]):
        h = hashlib.sha256(open(os.path.join(a.out, f), "rb").read()).hexdigest()
        sums.append("%s  %s\n" % (h, f))
    open(os.path.join(a.out, "SHA256SUMS"), "w").write("".join(sums))
    say("done")


if __name__ == "__main__":
    main()
