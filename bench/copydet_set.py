#!/usr/bin/python3
"""copydet_set.py — builds the copy-detection benchmark set of issue 13.

    /usr/bin/python3 bench/copydet_set.py OUTDIR [--seed N]

Sources (the issue names them; the held-out set uses others): the demo emoji
(../shared/data/twemoji-64), the breeze icon theme (SVG, rasterised at 256 px
by rsvg-convert) and the GNOME wallpapers (/usr/share/backgrounds, webp/svg,
scaled to 512 px wide). CS_COPYDET_ICONS and CS_COPYDET_WALLS point it at other
sources of the same kinds, for a set no rule was developed on: an icon theme
laid out as breeze (apps/48) or papirus (48x48/apps), a folder of wallpapers or
of Plasma wallpaper packages (NAME/contents/images/WxH.jpg, the largest size
taken), e.g. papirus-icon-theme and plasma-workspace-wallpapers unpacked by
`dpkg-deb -x`. Every source image is flattened on white and written
as an RGB PNG; a seeded draw splits them into references and distractor
sources (never both).

Writes OUTDIR/refs/*.png, OUTDIR/queries/*.{png,jpg}, OUTDIR/truth.tsv and
OUTDIR/bg/*.png: N_BG edited images of emoji and icons used nowhere else,
the background set that score normalisation is calibrated on (the SSCD
recipe: what does an unrelated image score?); they are not queries.
(query<TAB>reference file or '-'<TAB>edit). Half the queries are edited
copies of references, half edited distractors (the same edits, so an edit
does not give a query away); the ten edits take 10 % each:
resize 50-200 %, crop keeping 70-90 % of the area at a random place, JPEG
quality 30-70, rotation by 5-15 degrees either way (the canvas grows), a
horizontal flip, brightness/contrast/saturation/hue shifts, a Gaussian blur,
a text caption over 10-16 % of the height, the image at 60 % of the side of a
new canvas (plasma, gradient or plain) at a random place, and two of these in
sequence. Same seed -> the same files.

Ground truth: a distractor must not be a copy. The icon theme draws one folder
in eight colours and one archive in five, and a wallpaper comes light and
dark; such a source is a global colour edit of its sibling, a copy by the
issue's own colour edit. A distractor or background source that is a global
colour edit of a reference (one affine map of the reference's colours explains
every tile of it to within copy_tl2, see recolours()) is dropped and listed in
OUTDIR/recolours.tsv. Template twins (the same page or folder with another
glyph) and part recolours (an emoji's skin tone) stay: they are other pictures."""
import os
import random
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
EMOJI = os.path.join(SHARED, "data", "twemoji-64", "img")
# other sources for a generalisation check (a set the rules were not developed on), e.g. papirus
# icons and the Plasma wallpapers unpacked from their .deb: CS_COPYDET_ICONS, CS_COPYDET_WALLS
ICONS = os.environ.get("CS_COPYDET_ICONS", "/usr/share/icons/breeze")
WALLS = os.environ.get("CS_COPYDET_WALLS", "/usr/share/backgrounds")
ICON_KINDS = ("apps", "places", "devices", "mimetypes")

N_EMOJI, N_ICON = 260, 260          # sampled from each source (refs + distractors)
N_BG = 100                          # background images (neither references nor query sources)
N_COPIES = 300                      # 30 per edit; as many distractor queries
EDITS = ["resize", "crop", "jpeg", "rotate", "hflip", "colour", "blur", "caption", "embed", "two"]


def flatten(im):
    im = im.convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return Image.alpha_composite(bg, im).convert("RGB")


def load_svg(path, width):
    png = subprocess.run(["rsvg-convert", "-w", str(width), path], capture_output=True, check=True).stdout
    from io import BytesIO
    return flatten(Image.open(BytesIO(png)))


def icon_paths():
    ic = []
    for root, _, files in sorted(os.walk(ICONS)):
        # the 48 px and larger app/place/device/mimetype icons are coloured drawings; the
        # small symbolic ones are monochrome glyphs. breeze: apps/48, papirus: 48x48/apps
        parts = root.split("/")
        if not any(d in parts for d in ICON_KINDS):
            continue
        if not any(d in parts for d in ("48", "64", "48x48", "64x64")):
            continue
        for f in sorted(files):
            p = os.path.join(root, f)
            if f.endswith(".svg") and not os.path.islink(p):
                ic.append(p)
    return ic


def icon_name(p):
    kind = next(d for d in reversed(p.split("/")) if d in ICON_KINDS)
    return "icon-" + kind + "-" + os.path.basename(p)[:-4]


def wall_paths():
    """(name, path) of each wallpaper: a file of WALLS, or a Plasma wallpaper package
    (NAME/contents/images/WxH.ext, the same picture at several sizes: the largest, named NAME)."""
    out = []
    for root, _, files in sorted(os.walk(WALLS)):
        parts = root.split("/")
        if "contents" in parts:
            if parts[-1] != "images" or parts[-2] != "contents":
                continue  # a package's dark variant, screenshot: not another wallpaper
            pics = [f for f in files if f.endswith((".webp", ".jpg", ".png")) and "x" in f]
            if pics:
                size = lambda f: int(f.split("x")[0]) if f.split("x")[0].isdigit() else 0
                out.append((parts[-3], os.path.join(root, max(sorted(pics), key=size))))
            continue
        for f in sorted(files):
            p = os.path.join(root, f)
            if not os.path.islink(p) and f.endswith((".webp", ".jpg", ".png", ".svg")):
                out.append((f.rsplit(".", 1)[0], p))
    return out


def sources(rng):
    out = []  # (name, loader)
    em = sorted(f for f in os.listdir(EMOJI) if f.endswith(".png"))
    for f in rng.sample(em, N_EMOJI):
        out.append(("emoji-" + f[:-4], lambda f=f: flatten(Image.open(os.path.join(EMOJI, f)))))
    ic = icon_paths()
    for p in rng.sample(ic, N_ICON):
        out.append((icon_name(p), lambda p=p: load_svg(p, 256)))
    for name, p in wall_paths():
        if p.endswith(".svg"):
            out.append(("wall-" + name, lambda p=p: load_svg(p, 512)))
        else:
            def ld(p=p):
                im = flatten(Image.open(p))
                return im.resize((512, max(1, round(512 * im.height / im.width))), Image.LANCZOS)
            out.append(("wall-" + name, ld))
    seen, uniq = set(), []  # an icon can be in two size folders: keep one
    for e in out:
        if e[0] not in seen:
            seen.add(e[0])
            uniq.append(e)
    return uniq


RECOLOUR_TL2 = 0.04  # see recolours(): the copy bound of tiled L2 (analyze/settings.c copy_tl2)
TILE_MIN_STD = 0.08  # a tile with less spread proves nothing (analyze/settings.c tile_min_std)


def colour_thumb(im):
    """64x64 RGB in [0,1], one row per pixel, as the tiled L2's thumbnail (aspect not kept)."""
    return np.asarray(im.convert("RGB").resize((64, 64), Image.BOX), np.float32).reshape(-1, 3) / 255


def recolours(cands, refs):
    """Which candidates (colour_thumb) are a global colour edit of a reference, as is or mirrored.

    Ground truth, not detection: the bench's colour edit (brightness, contrast, saturation, hue) is a
    copy by the issue's definition, so a distractor or background source that IS such an edit of a
    reference (the icon theme draws one folder in eight colours, one archive in five; a wallpaper
    comes light and dark) is no unrelated image. The rule: the candidate's pixels are fitted as one
    affine map of the reference's colours, c = A [r g b 1] (12 numbers for the whole image:
    brightness, contrast and saturation are affine in RGB, a hue rotation nearly so) by least squares,
    and the candidate is a recolour when the fit is a copy by the project's own pixel definition:
    the RMS residual of every one of the 4x4 tiles of the 64x64 thumbnail at most copy_tl2 (0.04).
    A plain candidate (no tile with a spread of tile_min_std) is explained by the constant term of any
    map and is never a recolour, as a plain picture is no near-copy in the product (two near-flat
    wallpapers were matched to an emoji without this).
    The same template with another glyph, or one part recoloured alone (an emoji's skin tone), leaves
    a tile unexplained and stays a distractor. On the seed-13 sources the recolours fit within 0.006
    (folder-blue/red of folder-yellow, two tricolour flags) and the nearest non-recolour at 0.05 (the
    json and java page templates, another glyph). Returns {candidate index: reference index}."""
    out = {}
    if not refs or not cands:
        return out
    R = np.stack(refs).astype(np.float64)  # [nr, 4096, 3]
    Rm = R.reshape(len(refs), 64, 64, 3)[:, :, ::-1, :].reshape(len(refs), -1, 3)
    for variant in (R, Rm):
        X = np.concatenate([variant, np.ones(variant.shape[:2] + (1,))], axis=2)
        XtX = np.einsum("rpi,rpj->rij", X, X) + 1e-9 * np.eye(4)
        for ci, c in enumerate(cands):
            if ci in out:
                continue
            c = c.astype(np.float64)
            if c.reshape(4, 16, 4, 16, 3).std(axis=(1, 3)).max() < TILE_MIN_STD:  # per tile and channel
                continue  # a plain picture: the constant term alone explains it, nothing is copied
            A = np.linalg.solve(XtX, np.einsum("rpi,pj->rij", X, c))
            res = (c[None] - np.einsum("rpi,rij->rpj", X, A)).reshape(len(refs), 4, 16, 4, 16, 3)
            worst = np.sqrt((res ** 2).mean(axis=(2, 4, 5))).max(axis=(1, 2))
            best = int(np.argmin(worst))
            if worst[best] <= RECOLOUR_TL2:
                out[ci] = best
    return out


def canvas(rng, w, h):
    kind = rng.choice(["plasma", "gradient", "plain"])
    if kind == "plain":
        return Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    if kind == "gradient":
        a = np.array([rng.randrange(256) for _ in range(3)], np.float32)
        b = np.array([rng.randrange(256) for _ in range(3)], np.float32)
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        g = a[None, :] * (1 - t[:, None]) + b[None, :] * t[:, None]
        arr = np.broadcast_to(g[None, :, :], (h, w, 3)) if len(t) == w else np.broadcast_to(g[:, None, :], (h, w, 3))
        return Image.fromarray(np.ascontiguousarray(arr).astype(np.uint8))
    nr = np.random.default_rng(rng.randrange(1 << 30))  # plasma: smooth random colour field
    small = Image.fromarray(nr.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    return small.resize((w, h), Image.BICUBIC).filter(ImageFilter.GaussianBlur(max(w, h) / 16))


def edit(im, kind, rng):
    w, h = im.size
    if kind == "resize":
        s = rng.uniform(0.5, 2.0)
        return im.resize((max(8, round(w * s)), max(8, round(h * s))), Image.BICUBIC), None
    if kind == "crop":
        a = rng.uniform(0.70, 0.90)
        ar = rng.uniform(0.85, 1.15)  # the kept part's side ratio varies a little
        cw = min(w, round(w * (a * ar) ** 0.5))
        ch = min(h, round(w * h * a / cw))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        return im.crop((x0, y0, x0 + cw, y0 + ch)), None
    if kind == "jpeg":
        return im, rng.randint(30, 70)
    if kind == "rotate":
        ang = rng.uniform(5, 15) * rng.choice([-1, 1])
        fill = tuple(rng.randrange(256) for _ in range(3))
        return im.rotate(ang, resample=Image.BICUBIC, expand=True, fillcolor=fill), None
    if kind == "hflip":
        return im.transpose(Image.FLIP_LEFT_RIGHT), None
    if kind == "colour":
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.7, 1.3))
        im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.7, 1.3))
        im = ImageEnhance.Color(im).enhance(rng.uniform(0.5, 1.5))
        hsv = np.array(im.convert("HSV"))
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + rng.randint(-40, 40)) % 256
        return Image.fromarray(hsv, "HSV").convert("RGB"), None
    if kind == "blur":
        return im.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0) * max(w, h) / 128)), None
    if kind == "caption":
        band = round(h * rng.uniform(0.10, 0.16))
        out = im.copy()
        d = ImageDraw.Draw(out)
        y0 = rng.choice([0, h - band])
        words = ["memory", "copy", "a photo of", "sunset", "icon", "new", "sale", "art", "the", "by"]
        text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 4)))
        col = rng.choice([(0, 0, 0), (255, 255, 255)])
        if rng.random() < 0.5:  # a solid band, else the text over the image
            d.rectangle((0, y0, w, y0 + band), fill=tuple(255 - c for c in col))
        # the default bitmap font drawn small, then scaled to the band (no font files needed)
        tw, th = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=ImageFont.load_default())[2:]
        mask = Image.new("L", (tw + 2, th + 2), 0)
        ImageDraw.Draw(mask).text((1, 1), text, fill=255, font=ImageFont.load_default())
        sc = band * 0.8 / mask.height
        mask = mask.resize((max(1, round(mask.width * sc)), max(1, round(mask.height * sc))), Image.BILINEAR)
        out.paste(Image.new("RGB", mask.size, col), (rng.randint(0, max(1, w // 8)), y0 + round(band * 0.1)), mask)
        return out, None
    if kind == "embed":
        cw, ch = round(w / 0.6), round(h / 0.6)
        out = canvas(rng, cw, ch)
        out.paste(im, (rng.randint(0, cw - w), rng.randint(0, ch - h)))
        return out, None
    raise ValueError(kind)


def apply(im, kind, rng):
    """-> (image, jpeg quality or None, edit label)"""
    if kind != "two":
        im, q = edit(im, kind, rng)
        return im, q, kind
    a, b = rng.sample(EDITS[:-1], 2)
    im, q1 = edit(im, a, rng)
    im, q2 = edit(im, b, rng)
    return im, q2 or q1, f"two:{a}+{b}"


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: copydet_set.py OUTDIR [--seed N]")
    out = sys.argv[1]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--seed" else 13
    rng = random.Random(seed)
    src = sources(rng)
    rng.shuffle(src)
    # half references, half distractor sources, stratified by source kind
    refs, dis = [], []
    for kind in ("emoji", "icon", "wall"):
        s = [x for x in src if x[0].startswith(kind)]
        cut = (len(s) + 1) // 2 if kind == "wall" else len(s) // 2
        refs += s[:cut]
        dis += s[cut:]
    # ground truth: a distractor source that is a global colour edit of a reference is a copy
    # of it, not a distractor (recolours()); it is dropped, and so is such a background source
    cached = {}

    def loaded(entry):
        if entry[0] not in cached:
            cached[entry[0]] = entry[1]()
        return cached[entry[0]]

    ref_thumbs = [colour_thumb(loaded(e)) for e in refs]
    rec = recolours([colour_thumb(loaded(e)) for e in dis], ref_thumbs)
    dropped = [(dis[i][0], refs[r][0]) for i, r in sorted(rec.items())]
    dis = [e for i, e in enumerate(dis) if i not in rec]
    os.makedirs(os.path.join(out, "refs"), exist_ok=True)
    os.makedirs(os.path.join(out, "queries"), exist_ok=True)
    def img(entry):
        return loaded(entry)

    for name, _ in refs:
        img((name, dict(refs)[name])).save(os.path.join(out, "refs", name + ".png"))
    truth, srcs = [], []
    for i in range(2 * N_COPIES):
        kind = EDITS[(i // 2) % len(EDITS)]
        is_copy = i % 2 == 0
        entry = rng.choice(refs if is_copy else dis)
        im, q, label = apply(img(entry), kind, rng)
        qn = f"q{i:04d}." + ("jpg" if q else "png")
        if q:
            im.save(os.path.join(out, "queries", qn), quality=q)
        else:
            im.save(os.path.join(out, "queries", qn))
        truth.append(f"{qn}\t{entry[0] + '.png' if is_copy else '-'}\t{label}\n")
        srcs.append(f"{qn}\t{entry[0]}\n")
    with open(os.path.join(out, "truth.tsv"), "w") as f:
        f.write("# query\treference (- = distractor)\tedit\n")
        f.writelines(truth)
    # every query's source, distractors included (to read why a distractor is flagged:
    # some icon-theme sources are near-twins of references)
    with open(os.path.join(out, "sources.tsv"), "w") as f:
        f.write("# query\tsource image\n")
        f.writelines(srcs)
    # background: emoji and icons used nowhere above, edited like the queries
    os.makedirs(os.path.join(out, "bg"), exist_ok=True)
    used = set(n for n, _ in refs + dis)
    em = sorted(f for f in os.listdir(EMOJI) if f.endswith(".png") and "emoji-" + f[:-4] not in used)
    ic = [p for p in icon_paths() if icon_name(p) not in used]
    bgsrc = []
    for pool, n, load in ((em, N_BG // 2, lambda f: flatten(Image.open(os.path.join(EMOJI, f)))),
                          (ic, N_BG - N_BG // 2, lambda p: load_svg(p, 256))):
        order = rng.sample(pool, len(pool))
        got = 0
        for k in range(0, len(order), n):  # in draw order, skipping the recolours of references
            ims = [load(x) for x in order[k:k + n]]
            skip = recolours([colour_thumb(im) for im in ims], ref_thumbs)
            for j, im in enumerate(ims):
                if got < n and j not in skip:
                    bgsrc.append(im)
                    got += 1
                elif j in skip:
                    dropped.append((os.path.basename(order[k + j]), refs[skip[j]][0]))
            if got == n:
                break
    for i, im in enumerate(bgsrc):
        im, q, _ = apply(im, EDITS[i % len(EDITS)], rng)
        im.save(os.path.join(out, "bg", f"b{i:04d}.png"))
    with open(os.path.join(out, "recolours.tsv"), "w") as f:
        f.write("# source dropped (a global colour edit of a reference: a copy, no distractor)\treference\n")
        f.writelines(f"{a}\t{b}\n" for a, b in dropped)
    print(f"copydet_set: {len(refs)} references, {2 * N_COPIES} queries ({N_COPIES} copies) in {out}; "
          f"{len(dropped)} recolours of references dropped from the distractor and background sources")


if __name__ == "__main__":
    main()
