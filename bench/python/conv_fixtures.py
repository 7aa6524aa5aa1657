"""Reference values for ebm's convolution ops: PyTorch float64 autograd, cross-checked with JAX.

Writes autodiff/tests/data/conv_fixtures.safetensors (all float64). For each case `k`:

  k.spec   [sh, sw, ph, pw, dh, dw, groups, oph, opw]  (oph/opw: conv_transpose output padding;
           for pool cases [kh, kw, sh, sw, ph, pw, 0, 0, 0]; for upsample [fh, fw, 0, ...];
           for group_norm [groups, eps·1e8, 0, ...])
  k.x, k.w, k.b   input, weight, bias (absent where the op has none)
  k.c, k.v        a cotangent of the output and an HVP direction of the input
  k.y             the op's output
  k.gx, k.gw, k.gb   gradients of L = Σ c·y w.r.t. x, w, b
  k.hvp           ∇ₓ(v·∇ₓ E) with E = Σ c·softplus(y): a Hessian-vector product w.r.t. the input

The same quantities are recomputed with an independent JAX implementation (lax convolutions,
vjp for the transposed conv, reduce_window for pooling) and the script fails unless both agree
to 1e-12 relative. Run: bench/.venv/bin/python bench/python/conv_fixtures.py
"""

import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conv_models import jconv, jgroup_norm  # noqa: E402  (shared with the conv bench cells)

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "autodiff", "tests", "data",
                   "conv_fixtures.safetensors")

# name: (kind, x shape, w shape, bias?, stride, padding, dilation, groups, output_padding)
CASES = {
    "conv_mixed": ("conv", [2, 4, 7, 6], [6, 2, 3, 2], True, (2, 1), (1, 2), (1, 2), 2, (0, 0)),
    "conv_same": ("conv", [3, 3, 8, 8], [5, 3, 3, 3], True, (1, 1), (1, 1), (1, 1), 1, (0, 0)),
    "conv_depthwise": ("conv", [2, 6, 9, 9], [6, 1, 5, 5], False, (2, 2), (2, 2), (1, 1), 6, (0, 0)),
    "convt_grouped": ("convt", [2, 4, 4, 5], [4, 3, 3, 3], True, (2, 2), (1, 1), (1, 1), 2, (1, 0)),
    "convt_dilated": ("convt", [1, 3, 5, 5], [3, 2, 4, 4], False, (2, 3), (1, 2), (2, 1), 1, (0, 2)),
}
POOL = ("pool", [2, 3, 7, 7], (3, 3), (2, 2), (1, 1))
UPSAMPLE = ("upsample", [2, 3, 3, 4], (2, 3))
GROUP_NORM = ("group_norm", [3, 6, 4, 5], 3, 1e-5)


def rand(gen, shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def torch_case(op, x, params, c, v):
    """y, grads of Σ c·y w.r.t. every tensor in [x] + params, and the input HVP."""
    x = x.clone().requires_grad_(True)
    params = [p.clone().requires_grad_(True) for p in params]
    y = op(x, *params)
    grads = torch.autograd.grad((c * y).sum(), [x] + params)
    e = (c * F.softplus(op(x, *params))).sum()
    (gx,) = torch.autograd.grad(e, [x], create_graph=True)
    (hvp,) = torch.autograd.grad((gx * v).sum(), [x])
    return [y.detach()] + [g.detach() for g in grads] + [hvp.detach()]


def jax_case(op, x, params, c, v):
    args = [jnp.asarray(t.numpy()) for t in [x] + params]
    cj, vj = jnp.asarray(c.numpy()), jnp.asarray(v.numpy())
    y = op(*args)
    grads = jax.grad(lambda *a: jnp.sum(cj * op(*a)), argnums=tuple(range(len(args))))(*args)
    energy = lambda xx: jnp.sum(cj * jax.nn.softplus(op(xx, *args[1:])))  # noqa: E731
    hvp = jax.jvp(jax.grad(energy), (args[0],), (vj,))[1]
    return [y] + list(grads) + [hvp]


def main():
    gen = torch.Generator().manual_seed(20240614)
    out, worst = {}, 0.0

    def record(name, spec, x, params, pnames, top, jop):
        nonlocal worst
        y0 = top(x, *params)
        c, v = rand(gen, y0.shape), rand(gen, x.shape)
        t = torch_case(top, x, params, c, v)
        j = jax_case(jop, x, params, c, v)
        keys = ["y", "gx"] + ["g" + p for p in pnames] + ["hvp"]
        for key, a, b in zip(keys, t, j):
            b = np.asarray(b)
            err = np.abs(a.numpy() - b).max() / max(1.0, np.abs(b).max())
            worst = max(worst, err)
            if err > 1e-12:
                sys.exit(f"{name}.{key}: torch and JAX differ by {err:.3e}")
            out[f"{name}.{key}"] = a
        out[f"{name}.x"], out[f"{name}.c"], out[f"{name}.v"] = x, c, v
        for p, val in zip(pnames, params):
            out[f"{name}.{p}"] = val
        out[f"{name}.spec"] = torch.tensor([float(s) for s in spec], dtype=torch.float64)

    for name, (kind, xs, ws, bias, s, p, d, g, op) in CASES.items():
        x, w = rand(gen, xs), rand(gen, ws)
        cout = ws[0] if kind == "conv" else ws[1] * g
        params = [w] + ([rand(gen, [cout])] if bias else [])
        pnames = ["w"] + (["b"] if bias else [])
        spec = [*s, *p, *d, g, *op]
        if kind == "conv":
            top = lambda x, w, b=None, s=s, p=p, d=d, g=g: F.conv2d(x, w, b, s, p, d, g)  # noqa

            def jop(x, w, b=None, s=s, p=p, d=d, g=g):
                y = jconv(x, w, s, p, d, g)
                return y if b is None else y + b[None, :, None, None]
        else:
            top = lambda u, w, b=None, s=s, p=p, d=d, g=g, op=op: F.conv_transpose2d(  # noqa
                u, w, b, s, p, op, g, d)

            def jop(u, w, b=None, s=s, p=p, d=d, g=g, op=op, xs=xs, ws=ws):
                # the transposed conv as the vjp of the forward conv whose output u is; the
                # forward weight [O, C/g, kh, kw] is the transposed conv's [Cin, Cout/g, kh, kw]
                hw = [(xs[2 + a] - 1) * s[a] - 2 * p[a] + d[a] * (ws[2 + a] - 1) + op[a] + 1
                      for a in range(2)]
                x0 = jnp.zeros((xs[0], ws[1] * g, *hw))
                _, vjp = jax.vjp(lambda xx: jconv(xx, w, s, p, d, g), x0)
                y = vjp(u)[0]
                return y if b is None else y + b[None, :, None, None]
        record(name, spec, x, params, pnames, top, jop)

    _, xs, k, s, p = POOL
    record("avg_pool", [*k, *s, *p, 0, 0, 0], rand(gen, xs), [], [],
           lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=True),
           lambda x: lax.reduce_window(x, 0.0, lax.add, (1, 1, *k), (1, 1, *s),
                                       [(0, 0), (0, 0)] + [(q, q) for q in p]) / (k[0] * k[1]))
    _, xs, f = UPSAMPLE
    record("upsample", [*f, 0, 0, 0, 0, 0, 0, 0], rand(gen, xs), [], [],
           lambda x: F.interpolate(x, scale_factor=f, mode="nearest"),
           lambda x: jnp.repeat(jnp.repeat(x, f[0], axis=2), f[1], axis=3))
    _, xs, groups, eps = GROUP_NORM

    def jgn(x, w, b):
        return jgroup_norm(x, w, b, groups, eps)
    record("group_norm", [groups, eps * 1e8, 0, 0, 0, 0, 0, 0, 0], rand(gen, xs),
           [rand(gen, [xs[1]]), rand(gen, [xs[1]])], ["w", "b"],
           lambda x, w, b: F.group_norm(x, groups, w, b, eps), jgn)

    write_safetensors(OUT, out)
    print(f"wrote {len(out)} tensors to {os.path.normpath(OUT)}; "
          f"largest torch/JAX difference {worst:.2e} (relative to max(1, max|value|))")


def write_safetensors(path, tensors):
    """The safetensors format by hand (8-byte header length, JSON header, raw little-endian data)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].numpy() if hasattr(tensors[name], "numpy")
                                 else tensors[name], dtype="<f8")
        header[name] = {"dtype": "F64", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
