#!/usr/bin/python3
"""to_f16.py SRC DST - copies a single-file HF checkpoint, rewriting every
F32 tensor of model.safetensors as F16 (IEEE half, numpy's rounding), so
the suites can check F16 checkpoints (`make-test-model` writes F32/BF16).
Safetensors layout: u64 LE header length, JSON header, data; offsets in
the header are relative to the end of the header."""
import json
import os
import shutil
import struct
import sys

import numpy as np

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for f in os.listdir(src):
    if f != "model.safetensors":
        shutil.copy(os.path.join(src, f), os.path.join(dst, f))
with open(os.path.join(src, "model.safetensors"), "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    data = f.read()
out_header, blobs, off = {}, [], 0
for name in sorted(k for k in header if k != "__metadata__"):
    info = header[name]
    b, e = info["data_offsets"]
    raw = data[b:e]
    dtype = info["dtype"]
    if dtype == "F32":
        raw = np.frombuffer(raw, dtype="<f4").astype("<f2").tobytes()
        dtype = "F16"
    out_header[name] = {"dtype": dtype, "shape": info["shape"],
                        "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
if "__metadata__" in header:
    out_header["__metadata__"] = header["__metadata__"]
h = json.dumps(out_header).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
cfg_path = os.path.join(dst, "config.json")
cfg = json.load(open(cfg_path))
cfg["torch_dtype"] = "float16"
json.dump(cfg, open(cfg_path, "w"), indent=2)
