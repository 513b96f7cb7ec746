#!/usr/bin/python3
"""memo_truths.py DB REPORT_JSON MODEL_DIR [OUTDIR] -- the trained model's copy
verdicts against several pixel ground truths, computed here with numpy from the
PNGs (independent of reports/memo.c), for each reading of "copy verdict":

  truths (each: a generation is a copy of training image i):
    tl2_recon   Carlini et al. 2023 s4.2: tiled L2 (4x4 tiles, [0,1] RGB, the
                largest tile RMS) to i's autoencoder reconstruction <= 0.15,
                i the nearest reconstruction by it
    psnr_issue  PSNR to i (the training image as indexed) >= floor_i - 7.9 dB,
                i the nearest by PSNR: the issue's prototype margin (its copies
                at >= 22 dB with an autoencoder floor of 29.9 dB)
    psnr_tri    PSNR to i >= floor_i - 20 log10(2) (6.02 dB): a decoder copy
                within the autoencoder's own loss of the reconstruction is,
                by the triangle inequality, within twice that loss of i
  readings:
    strict      copy or near-copy of i
    partial     copy, near-copy or partial of i (issue 13 counts partial as
                flagged)
floor_i = PSNR(reconstruction_i, training image_i). Prints the table and each
disagreement (with the finding's tiles beyond the autoencoder floor and the
region of ae_floor_part, pixel_comparison.part_at_floor); with OUTDIR, writes a
PNG per disagreement (generation | training image | reconstruction, 4x) for a
person to look at."""
import json
import os
import sqlite3
import sys

import numpy as np
from PIL import Image

DB, REP, MOD = sys.argv[1:4]
OUT = sys.argv[4] if len(sys.argv) > 4 else None


def load(path, size=None):
    im = Image.open(path)
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    if size and im.size != (size, size):
        im = im.resize((size, size), Image.BOX)
    return np.asarray(im, dtype=np.float64) / 255.0


def psnr(a, b):
    mse = np.mean((a - b) ** 2)
    return 99.0 if mse == 0 else -10 * np.log10(mse)


def tl2(a, b):
    h, w = a.shape[0] // 4, a.shape[1] // 4
    return max(np.sqrt(np.mean((a[y * h:(y + 1) * h, x * w:(x + 1) * w] - b[y * h:(y + 1) * h, x * w:(x + 1) * w]) ** 2))
               for y in range(4) for x in range(4))


db = sqlite3.connect(DB)
man = json.load(open(os.path.join(MOD, "manifest.json")))["train"]
files = [t["file"] for t in man]
cap_of = {t["caption"]: t["file"] for t in man}
copies = {t["file"]: t["copies"] for t in man}
# the training images as indexed: the reference thumbnails (64 x 64 RGB)
thumb = {}
for f in files:
    r = db.execute("SELECT t.w, t.h, t.rgb FROM refs r JOIN ref_thumbs t ON t.ref_id = COALESCE(r.dup_of, r.id) "
                   "WHERE r.source = ? OR r.source LIKE ?", (f, "%/" + f)).fetchone()
    thumb[f] = np.frombuffer(r[2], dtype=np.uint8).reshape(r[1], r[0], 3).astype(np.float64) / 255.0
recon = {t["file"]: load(os.path.join(MOD, t["recon"]), 64) for t in man}
floor = {f: psnr(recon[f], thumb[f]) for f in files}
ref_file = {}
for rid, src, dup in db.execute("SELECT id, source, dup_of FROM refs"):
    for f in files:
        if src == f or src.endswith("/" + f):
            ref_file[rid] = f
            if dup:
                ref_file[dup] = f

rep = json.load(open(REP))["memorisation"]["generations"]
run = db.execute("SELECT r.id FROM runs r WHERE r.suite LIKE '%demo-memo%' ORDER BY r.id DESC").fetchone()[0]
ana = db.execute("SELECT max(id) FROM analyses WHERE run_id = ?", (run,)).fetchone()[0]
find = {}
for gid, v, rid, ev in db.execute(
        "SELECT f.generation_id, f.verdict, f.ref_id, f.evidence_json FROM findings f JOIN generations g ON "
        "g.id = f.generation_id WHERE g.run_id = ? AND json_extract(f.evidence_json, '$.analysis_id') = ? "
        "ORDER BY f.severity DESC, f.id", (run, ana)):
    find.setdefault(gid, []).append((v, ref_file.get(rid), json.loads(ev)))
paths = dict(db.execute("SELECT id, path FROM generations WHERE run_id = ?", (run,)))

rows = []
for g in rep:
    gid = g["generation_id"]
    im = load(paths[gid], 64)
    ps = {f: psnr(im, thumb[f]) for f in files}
    tl = {f: tl2(im, recon[f]) for f in files}
    n_ps = max(files, key=lambda f: ps[f])
    n_tl = min(files, key=lambda f: tl[f])
    truth = {
        "tl2_recon": n_tl if tl[n_tl] <= 0.15 else None,
        "psnr_issue": n_ps if ps[n_ps] >= floor[n_ps] - (29.9 - 22.0) else None,
        "psnr_tri": n_ps if ps[n_ps] >= floor[n_ps] - 20 * np.log10(2) else None,
    }
    fs = find.get(gid, [])
    strict = next((f for v, f, _ in fs if v in ("copy", "near-copy") and f), None)
    part = next((f for v, f, _ in fs if v in ("copy", "near-copy", "partial") and f), None)
    top = fs[0] if fs else ("none", None, {})
    rows.append(dict(gid=gid, prompt=g["prompt"], path=paths[gid], truth=truth, strict=strict, partial=part,
                     verdict=top[0], vref=top[1], rule=top[2].get("rule", ""), ps=ps[n_ps], n_ps=n_ps,
                     floor=floor[n_ps], tl=tl[n_tl], n_tl=n_tl, im=im,
                     beyond=top[2].get("pixel_comparison", {}).get("tiles_beyond_floor"),
                     part=top[2].get("pixel_comparison", {}).get("part_at_floor", {}).get("tiles")))

print("%d generations, analysis %d of run %d" % (len(rows), ana, run))
print("| truth | reading | TP | FP | FN | TN | precision | recall |")
print("|---|---|---|---|---|---|---|---|")
for t in ("tl2_recon", "psnr_issue", "psnr_tri"):
    for rd in ("strict", "partial"):
        c = [0, 0, 0, 0]
        for r in rows:
            v, tr = r[rd], r["truth"][t]
            c[0 if v and v == tr else 1 if v else 2 if tr else 3] += 1
        p = c[0] / (c[0] + c[1]) if c[0] + c[1] else float("nan")
        rc = c[0] / (c[0] + c[2]) if c[0] + c[2] else float("nan")
        print("| %s | %s | %d | %d | %d | %d | %.3f | %.3f |" % (t, rd, *c, p, rc))

print("\ndisagreements (any truth vs any reading), per generation:")
dis = []
for r in rows:
    keys = [r["truth"][t] for t in r["truth"]] + [r["strict"], r["partial"]]
    if len(set(keys)) > 1:
        dis.append(r)
        print("gen %d %-28s verdict %-9s %-22s ref %-26s | tl2 %.3f %-22s | psnr %.1f floor %.1f %-22s | "
              "truths %s | beyond %s | part at floor %s" % (
                  r["gid"], r["prompt"][:28], r["verdict"], r["rule"], r["vref"], r["tl"], r["n_tl"], r["ps"],
                  r["floor"], r["n_ps"], {k: (v or "-")[4:] for k, v in r["truth"].items()}, r["beyond"], r["part"]))
if OUT:
    os.makedirs(OUT, exist_ok=True)
    for r in dis:
        f = r["n_tl"]
        strip = np.concatenate([r["im"], np.ones((64, 4, 3)), thumb[f], np.ones((64, 4, 3)), recon[f]], axis=1)
        diff = np.abs(r["im"] - recon[f]).mean(axis=2, keepdims=True).repeat(3, axis=2)
        strip = np.concatenate([strip, np.ones((64, 4, 3)), 1 - np.clip(diff * 3, 0, 1)], axis=1)
        img = Image.fromarray((strip * 255).round().astype(np.uint8)).resize((strip.shape[1] * 4, 256), Image.NEAREST)
        img.save(os.path.join(OUT, "g%d_%s.png" % (r["gid"], r["prompt"].replace(" ", "_").replace(":", "")[:20])))
