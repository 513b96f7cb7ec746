"""Anchor for bench_ingest.sh: the same ingestion work in Python with PIL,
minus the perceptual hashes (imagehash/pdqhash are not in Debian): read,
sha256, decode, composite over white, 64x64 thumbnail, SQLite rows in one
transaction per 256. Two worker processes, like `index add -j 2`.
Prints: images, seconds."""
import hashlib, io, os, sqlite3, sys, time
from multiprocessing import Pool
from PIL import Image


def work(path):
    with open(path, "rb") as f:
        b = f.read()
    sha = hashlib.sha256(b).hexdigest()
    try:
        im = Image.open(io.BytesIO(b))
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(bg, im).convert("RGB")
        thumb = rgb.resize((64, 64), Image.BOX).tobytes()
        return path, sha, len(b), rgb.size, thumb, None
    except Exception as e:  # recorded, as index add does
        return path, sha, len(b), None, None, str(e)


def main():
    root, db = sys.argv[1], sys.argv[2]
    files = []
    for d, _, names in os.walk(root):
        files += [os.path.join(d, n) for n in names if n.lower().endswith((".png", ".jpg", ".jpeg"))]
    files.sort()
    t0 = time.time()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS refs(id INTEGER PRIMARY KEY, source TEXT UNIQUE, sha256 TEXT, "
                "size INT, width INT, height INT, status TEXT, error TEXT)")
    con.execute("CREATE TABLE IF NOT EXISTS thumbs(ref_id INTEGER PRIMARY KEY, rgb BLOB)")
    with Pool(2) as pool:
        for i in range(0, len(files), 256):
            res = pool.map(work, files[i:i + 256])
            with con:
                for p, sha, n, size, thumb, err in res:
                    cur = con.execute("INSERT INTO refs(source, sha256, size, width, height, status, error) "
                                      "VALUES(?,?,?,?,?,?,?)", (p, sha, n, size[0] if size else None,
                                      size[1] if size else None, "error" if err else "ok", err))
                    if thumb:
                        con.execute("INSERT INTO thumbs VALUES(?,?)", (cur.lastrowid, thumb))
    con.close()
    print(len(files), time.time() - t0)


if __name__ == "__main__":
    main()
