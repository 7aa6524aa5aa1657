"""The conv energies of the benchmark (issue 14), in PyTorch and JAX: the architecture of ebm's
`ConvEnergy` (nn/src/resnet.rs), parameter names included, so one checkpoint loads in all three.

    h = conv_in(x)                                   x: [B, C*H*W] rows, viewed as [B, C, H, W]
    per stage s: (s > 0: 2x2 average pool), then
        blocks = 0: h = conv(silu(h))
        blocks > 0: h = shortcut(h) + conv2(silu(norm2(conv1(silu(norm1(h))))))  per block
    E(x) = head(sum over H, W of silu(h))            one scalar per row

3x3 convs with padding 1 and bias; shortcut: 1x1 conv where the channels change; norms:
GroupNorm(min(groups, channels), channels, eps 1e-5) when norm_groups > 0. Names as ebm writes
them: conv_in.weight, stages.{s}.conv.weight, stages.{s}.blocks.{b}.{norm1,conv1,norm2,conv2,
shortcut}.{weight,bias}, head.weight [1, width], head.bias [1]. `cfg` is a `conv` entry of
common.CONV_MODELS. Frameworks are imported inside the functions, so the JAX script never loads
PyTorch and the other way round.
"""
from __future__ import annotations

import math

GN_EPS = 1e-5


def layers(cfg):
    """The layers in order: (name, kind, in_channels, out_channels, kernel); kind is "conv",
    "norm" (channels in both slots) or "linear"."""
    out = [("conv_in", "conv", cfg["image"][0], cfg["widths"][0], 3)]
    width = cfg["widths"][0]
    for s, w in enumerate(cfg["widths"]):
        if cfg["blocks"] == 0:
            out.append((f"stages.{s}.conv", "conv", width, w, 3))
        for b in range(cfg["blocks"]):
            n, i = f"stages.{s}.blocks.{b}", width if b == 0 else w
            if cfg["norm_groups"]:
                out.append((f"{n}.norm1", "norm", i, i, 0))
            out.append((f"{n}.conv1", "conv", i, w, 3))
            if cfg["norm_groups"]:
                out.append((f"{n}.norm2", "norm", w, w, 0))
            out.append((f"{n}.conv2", "conv", w, w, 3))
            if i != w:
                out.append((f"{n}.shortcut", "conv", i, w, 1))
        width = w
    out.append(("head", "linear", width, 1, 0))
    return out


# ----------------------------------------------------------------------------------------------
# JAX (also the conv and group-norm definitions of conv_fixtures.py's JAX side)
# ----------------------------------------------------------------------------------------------
def jconv(x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """PyTorch's conv2d (NCHW, OIHW, no bias) with lax."""
    from jax import lax
    return lax.conv_general_dilated(
        x, w, window_strides=stride, padding=[(p, p) for p in padding], rhs_dilation=dilation,
        feature_group_count=groups, dimension_numbers=("NCHW", "OIHW", "NCHW"))


def jgroup_norm(x, w, b, groups, eps=GN_EPS):
    """PyTorch's group_norm: normalise each (sample, group of channels), biased variance."""
    import jax.numpy as jnp
    n = x.shape[0]
    z = x.reshape(n, groups, -1)
    z = (z - z.mean(-1, keepdims=True)) / jnp.sqrt(z.var(-1, keepdims=True) + eps)
    return z.reshape(x.shape) * w[None, :, None, None] + b[None, :, None, None]


def javg_pool2(x):
    """2x2 average pooling with stride 2 (floor), as avg_pool2d(x, 2)."""
    n, c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, :, :2 * h2, :2 * w2].reshape(n, c, h2, 2, w2, 2).mean((3, 5))


def jax_init(key, cfg, dtype=None):
    """Parameters as PyTorch initialises them: conv/linear W, b ~ U(+-1/sqrt(fan_in)), norms 1, 0."""
    import jax
    import jax.numpy as jnp
    dtype = dtype or jnp.float32
    p = {}
    for name, kind, i, o, k in layers(cfg):
        if kind == "norm":
            p[f"{name}.weight"], p[f"{name}.bias"] = jnp.ones((o,), dtype), jnp.zeros((o,), dtype)
            continue
        key, kw, kb = jax.random.split(key, 3)
        fan_in = i * k * k if kind == "conv" else i
        shape = (o, i, k, k) if kind == "conv" else (o, i)
        bound = 1.0 / math.sqrt(fan_in)
        p[f"{name}.weight"] = jax.random.uniform(kw, shape, dtype, -bound, bound)
        p[f"{name}.bias"] = jax.random.uniform(kb, (o,), dtype, -bound, bound)
    return p


def jax_energy(p, x, cfg):
    """E(x), one scalar per row: [B, C*H*W] -> [B]."""
    import jax
    silu = jax.nn.silu

    def conv(name, h, pad=1):
        return jconv(h, p[f"{name}.weight"], padding=(pad, pad)) + p[f"{name}.bias"][None, :, None, None]

    def norm(name, h):
        if not cfg["norm_groups"]:
            return h
        ch = h.shape[1]
        return jgroup_norm(h, p[f"{name}.weight"], p[f"{name}.bias"], min(cfg["norm_groups"], ch))

    h = conv("conv_in", x.reshape((x.shape[0], *cfg["image"])))
    for s, _ in enumerate(cfg["widths"]):
        if s > 0:
            h = javg_pool2(h)
        if cfg["blocks"] == 0:
            h = conv(f"stages.{s}.conv", silu(h))
        for b in range(cfg["blocks"]):
            n = f"stages.{s}.blocks.{b}"
            r = conv(f"{n}.conv1", silu(norm(f"{n}.norm1", h)))
            r = conv(f"{n}.conv2", silu(norm(f"{n}.norm2", r)))
            h = (conv(f"{n}.shortcut", h, 0) if f"{n}.shortcut.weight" in p else h) + r
    feats = silu(h).sum((2, 3))
    return (feats @ p["head.weight"].T + p["head.bias"])[:, 0]


# ----------------------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------------------
def torch_module(cfg):
    """An nn.Module with ebm's parameter names; forward: [B, C*H*W] -> [B]."""
    import torch.nn.functional as F
    from torch import nn

    def container(**children):
        m = nn.Module()
        for k, v in children.items():
            setattr(m, k, v)
        return m

    class ConvEnergy(nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = cfg
            mods = {}
            for name, kind, i, o, k in layers(cfg):
                mods[name] = (nn.Conv2d(i, o, k, padding=k // 2) if kind == "conv" else
                              nn.GroupNorm(min(cfg["norm_groups"], o), o, eps=GN_EPS)
                              if kind == "norm" else nn.Linear(i, o))
            self.conv_in, self.head = mods["conv_in"], mods["head"]
            stages = []
            for s, _ in enumerate(cfg["widths"]):
                if cfg["blocks"] == 0:
                    stages.append(container(conv=mods[f"stages.{s}.conv"]))
                    continue
                blocks = []
                for b in range(cfg["blocks"]):
                    n = f"stages.{s}.blocks.{b}"
                    blocks.append(container(**{part: mods[f"{n}.{part}"] for part in
                                               ("norm1", "conv1", "norm2", "conv2", "shortcut")
                                               if f"{n}.{part}" in mods}))
                stages.append(container(blocks=nn.ModuleList(blocks)))
            self.stages = nn.ModuleList(stages)

        def forward(self, x):
            h = self.conv_in(x.reshape(x.shape[0], *cfg["image"]))
            for s, stage in enumerate(self.stages):
                if s > 0:
                    h = F.avg_pool2d(h, 2)
                if cfg["blocks"] == 0:
                    h = stage.conv(F.silu(h))
                    continue
                for bl in stage.blocks:
                    n1 = getattr(bl, "norm1", None)
                    n2 = getattr(bl, "norm2", None)
                    r = bl.conv1(F.silu(n1(h) if n1 is not None else h))
                    r = bl.conv2(F.silu(n2(r) if n2 is not None else r))
                    sc = getattr(bl, "shortcut", None)
                    h = (sc(h) if sc is not None else h) + r
            return self.head(F.silu(h).sum((2, 3))).squeeze(-1)

    return ConvEnergy()
