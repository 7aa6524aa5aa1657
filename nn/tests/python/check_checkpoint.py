"""Reads ebm-nn checkpoints with safetensors.numpy, as a PyTorch/NumPy user would.

usage: check_checkpoint.py PARAMS_ONLY FULL REFERENCE_WEIGHTS
Exits non-zero with a message on the first disagreement; prints "ok" at the end.
"""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

FIXTURE = {
    "l0.weight": (128, 2),
    "l0.bias": (128,),
    "l1.weight": (128, 128),
    "l1.bias": (128,),
    "l2.weight": (1, 128),
    "l2.bias": (1,),
}

params_path, full_path, ref_path = sys.argv[1:4]

# A parameters-only checkpoint has exactly the fixture's tensors, values and dtype.
ours = load_file(params_path)
ref = load_file(ref_path)
assert set(ours) == set(FIXTURE), f"tensors {sorted(ours)} != {sorted(FIXTURE)}"
for name, shape in FIXTURE.items():
    a = ours[name]
    assert a.shape == shape, f"{name}: shape {a.shape} != {shape}"
    assert a.dtype == np.float32, f"{name}: dtype {a.dtype}"
    assert np.array_equal(a, ref[name]), f"{name}: values differ from the fixture"

# A full checkpoint adds prefixed optimizer and EMA state and string metadata.
full = load_file(full_path)
top = {k for k in full if not k.startswith(("optim.", "ema."))}
assert top == set(FIXTURE), f"top-level tensors {sorted(top)}"
for name, shape in FIXTURE.items():
    for prefix in ("optim.exp_avg.", "optim.exp_avg_sq.", "ema."):
        t = full[prefix + name]
        assert t.shape == shape and t.dtype == np.float32, f"{prefix}{name}: {t.shape} {t.dtype}"
assert len(full) == 4 * len(FIXTURE), f"{len(full)} tensors"

with safe_open(full_path, framework="np") as f:
    md = f.metadata()
assert md["format"] == "ebm-checkpoint/1", md["format"]
model = json.loads(md["model"])
assert model["kind"] == "mlp" and model["widths"] == [2, 128, 128, 1], model
assert json.loads(md["params"]) == list(FIXTURE), md["params"]
assert md["step"] == "7", md["step"]
rng = json.loads(md["rng"])
assert len(rng) == 3 and all(isinstance(v, int) and 0 <= v < 2**64 for v in rng), rng
opt = json.loads(md["optimizer"])
assert opt["config"]["kind"] == "adam" and opt["step"] == 1, opt
print("ok")
