"""Anchors for bench_embed (run with Debian's /usr/bin/python3).

  flat DB.vec QUERIES.f32 NQ K THREADS OUT_IDS   FAISS IndexFlatIP on the same column file
  torch WEIGHTS.safetensors BATCH SIZE THREADS   torchvision ResNet-50 + GeM + fc, same weights

Prints "key value" lines that bench_embed.c parses.
"""
import json
import struct
import sys
import time

import numpy as np


def flat(db_path, q_path, nq, k, threads, out_ids):
    import faiss
    faiss.omp_set_num_threads(threads)
    with open(db_path, "rb") as f:
        hdr = f.read(64)
    dim, count = struct.unpack_from("<I", hdr, 12)[0], struct.unpack_from("<Q", hdr, 24)[0]
    xb = np.memmap(db_path, dtype=np.float32, mode="r", offset=64, shape=(count, dim))
    xq = np.fromfile(q_path, dtype=np.float32).reshape(-1, dim)[:nq]
    index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(xb))
    index.search(xq[:20], k)  # warm-up
    t = time.perf_counter()
    D, I = index.search(xq, k)
    dt = time.perf_counter() - t
    I.astype(np.int64).tofile(out_ids)
    print("faiss_flat_qps %.3f" % (nq / dt))
    print("faiss_version %s" % faiss.__version__)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    dt = {"F16": np.float16, "F32": np.float32, "BF16": None}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dt[t["dtype"]]).reshape(t["shape"]).astype(np.float32)
    return out


def torch_bench(weights, batch, size, threads):
    import torch
    import torchvision
    torch.set_num_threads(threads)
    w = read_safetensors(weights)
    w = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in w.items()}
    dim = w["fc.weight"].shape[0]
    m = torchvision.models.resnet50(num_classes=dim)

    class GeM(torch.nn.Module):
        def forward(self, x):
            return x.clamp(min=1e-6).pow(3).mean(dim=(2, 3), keepdim=True).pow(1.0 / 3)

    m.avgpool = GeM()
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in w.items()}, strict=False)
    m.eval()
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        torch.nn.functional.normalize(m(x))  # warm-up
        it = 3
        t, c = time.perf_counter(), time.process_time()
        for _ in range(it):
            torch.nn.functional.normalize(m(x))
        dt, dc = time.perf_counter() - t, time.process_time() - c
    print("torch_img_s %.3f" % (batch * it / dt))
    print("torch_img_cpu_s %.3f" % (batch * it / dc))  # per CPU-second, all threads
    print("torch_version %s" % torch.__version__)


if __name__ == "__main__":
    if sys.argv[1] == "flat":
        flat(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    elif sys.argv[1] == "torch":
        torch_bench(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
