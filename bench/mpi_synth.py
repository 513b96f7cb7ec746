#!/usr/bin/python3
"""The synthetic reference set of docs/SCALE.md's sharding check: N 64x64 PNGs
of random shapes (seeded by index, so any machine makes the same bytes); every
50th is an exact copy of an image 1/3 of the set earlier (duplicates that fall
in other shards). Usage: mpi_synth.py OUT_DIR N"""
import os
import random
import shutil
import sys

from PIL import Image, ImageDraw

out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
for i in range(n):
    p = os.path.join(out, "s%06d.png" % i)
    if i % 50 == 49 and i > n // 3:
        shutil.copyfile(os.path.join(out, "s%06d.png" % (i - n // 3)), p)
        continue
    r = random.Random(i)
    im = Image.new("RGB", (64, 64), tuple(r.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(r.randrange(2, 7)):
        x0, y0 = r.randrange(56), r.randrange(56)
        box = (x0, y0, x0 + r.randrange(6, 40), y0 + r.randrange(6, 40))
        col = tuple(r.randrange(256) for _ in range(3))
        (d.ellipse if r.random() < 0.5 else d.rectangle)(box, fill=col)
    im.save(p)
