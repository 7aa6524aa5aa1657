"""Benchmark data, shared by the JAX and PyTorch reference implementations.

Two data sets (the Rust side, `ebm-bench`, implements the same definitions):

* 8-Gaussians (FFJORD, Grathwohl et al. 2019, `toy_data.py`): a mixture of 8 isotropic Gaussians with
  equal weights, centres 4 (cos k pi/4, sin k pi/4) / sqrt(2) for k = 0..7 and standard deviation
  0.5 / sqrt(2). FFJORD draws `(4 c_k + 0.5 n) / 1.414` with `n ~ N(0, I)`; we use sqrt(2) exactly.
  Each framework samples it with its own RNG inside the timed step (see `CENTRES`, `STD`).
* UCI digits (data/digits.csv, see data/README.md): 1,797 8x8 images, pixels 0..16. The benchmark
  uses `pixels / 16` as float32 and draws each minibatch uniformly with replacement.

This module only depends on numpy, so the frameworks can build their samplers on top of it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_CSV = REPO_ROOT / "data" / "digits.csv"

# 8-Gaussians: centres on a circle of radius 4/sqrt(2) = 2.83, noise std 0.5/sqrt(2) = 0.354.
_ANGLES = np.arange(8) * (math.pi / 4)
CENTRES = (4.0 / math.sqrt(2.0)) * np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)  # [8, 2]
STD = 0.5 / math.sqrt(2.0)


def eight_gaussians(n: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """n samples of 8-Gaussians, shape [n, 2] (numpy reference sampler, used for tests/plots)."""
    k = rng.integers(0, 8, size=n)
    return (CENTRES[k] + STD * rng.standard_normal((n, 2))).astype(dtype)


def load_digits(path: Path | str = DIGITS_CSV, scale: bool = True, dtype=np.float32):
    """Return (pixels [1797, 64], labels [1797]); pixels divided by 16 when `scale` (the benchmark's data)."""
    raw = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
    if raw.shape != (1797, 65):
        raise ValueError(f"{path}: expected 1797 rows x 65 columns, got {raw.shape}")
    pixels, labels = raw[:, :64], raw[:, 64]
    if pixels.min() < 0 or pixels.max() > 16:
        raise ValueError(f"{path}: pixel values outside 0..16")
    x = pixels.astype(dtype)
    if scale:
        x = x / dtype(16.0)
    return x, labels


if __name__ == "__main__":
    x, y = load_digits()
    print("digits", x.shape, x.dtype, float(x.min()), float(x.max()), np.bincount(y))
    s = eight_gaussians(100_000, np.random.default_rng(0))
    print("8-Gaussians mean", s.mean(0), "std per axis", s.std(0), "centres\n", CENTRES)
