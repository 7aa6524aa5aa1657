"""Shared helpers: the repository's fixture files (read without the safetensors package), the
`ebm` command for side-by-side runs, and a scratch folder per test."""
from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "autodiff" / "tests" / "data"

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path) -> dict:
    """Every tensor of a .safetensors file as a NumPy array (the format: an 8-byte little-endian
    header length, a JSON header of dtype/shape/offsets, then the raw little-endian data)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        dt = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(body[lo:hi], dtype=dt).reshape(info["shape"])
    return out


@pytest.fixture(scope="session")
def m2():
    """The M2 reference values (PyTorch/JAX, float64): weights and inputs upcast exactly to f64."""
    w = {k: v.astype(np.float64) for k, v in read_safetensors(FIXTURES / "M2_weights.safetensors").items()}
    x = {k: v.astype(np.float64) for k, v in read_safetensors(FIXTURES / "M2_inputs.safetensors").items()}
    e = read_safetensors(FIXTURES / "M2_expected.safetensors")
    return w, x, e


def ebm_command() -> str:
    """The `ebm` command built by cargo (EBM_BIN, else target/release or target/debug)."""
    env = os.environ.get("EBM_BIN")
    candidates = [env] if env else [REPO / "target" / "release" / "ebm", REPO / "target" / "debug" / "ebm"]
    for c in candidates:
        if c and Path(c).is_file():
            return str(c)
    found = shutil.which("ebm")
    if found:
        return found
    pytest.fail("the `ebm` command is not built: run `cargo build -p ebm` or set EBM_BIN")


def rel_err(a, b) -> float:
    """max|a - b| / max|b| (absolute when b is all zeros)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.max(np.abs(b)) if b.size else 0.0
    return float(np.max(np.abs(a - b)) / (scale if scale > 0 else 1.0)) if b.size else 0.0
