#!/usr/bin/env python3
"""Convert an SSCD checkpoint to the safetensors file copyscope reads.

    python3 convert_sscd.py sscd_disc_mixup.torchvision.pt sscd.safetensors [--f16]

Run it where PyTorch is installed (pip install torch, or Debian's python3-torch);
copyscope itself never needs Python. Input: SSCD's published TorchScript model
(facebookresearch/sscd-copy-detection, the *.torchvision.pt files: a torchvision
ResNet-50 trunk with GeM pooling and a 512-d projection), or a plain state dict
saved with torch.save. Output: every tensor of the state dict except the batch
norms' num_batches_tracked counters, names unchanged (SSCD's keys start with
"backbone."; copyscope accepts them with or without that prefix), F32 by
default or F16 with --f16 (half the size; copyscope widens it exactly).

Only the torchvision variant (TV_RESNET50) is supported; the Classy Vision
files (*.classy.pt) use other tensor names and are refused here.

Then:  copyscope index add --embedder sscd:sscd.safetensors
"""
import argparse
import json
import struct
import sys

import numpy as np
import torch


def load_state_dict(path):
    try:
        model = torch.jit.load(path, map_location="cpu")
        return model.state_dict()
    except RuntimeError:
        obj = torch.load(path, map_location="cpu")
        if isinstance(obj, dict) and "state_dict" in obj:
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            sys.exit("%s: neither a TorchScript model nor a state dict" % path)
        return obj


def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr).tobytes()
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}[arr.dtype]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # tensors start 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--f16", action="store_true", help="store F16 instead of F32")
    a = ap.parse_args()
    sd = load_state_dict(a.src)
    out = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        arr = v.detach().cpu().float().numpy()
        out[k] = arr.astype(np.float16) if a.f16 else arr
    prefix = "backbone." if "backbone.conv1.weight" in out else ""
    if prefix + "conv1.weight" not in out or prefix + "layer4.2.conv3.weight" not in out:
        sys.exit("%s: not a torchvision ResNet-50 state dict (keys: %s ...)" % (a.src, ", ".join(list(out)[:5])))
    fc = out.get(prefix + "fc.weight")
    if fc is None:
        print("note: no fc.weight: copyscope will use the 2048-d GeM vector as the descriptor")
    elif fc.shape[1] != 2048:
        sys.exit("%s: fc.weight has shape %s, expected [dim, 2048]" % (a.src, list(fc.shape)))
    write_safetensors(a.dst, out, {"source": a.src.split("/")[-1], "converter": "copyscope convert_sscd.py"})
    print("%s: %d tensors, descriptor dim %s" % (a.dst, len(out), fc.shape[0] if fc is not None else 2048))


if __name__ == "__main__":
    main()
