"""Do the conv cells time the same computation? For each conv model (C8, R28) ebm-bench writes
its network's parameters as built for the benchmark, a batch x, noise z and its own f64 values
(`--write-check`, bench/src/conv.rs); this script loads the parameters by name into the PyTorch
module and the JAX function of conv_models.py and compares, in float64:

  energy    E(x)
  score_xt  -grad_x E(xt), xt = x + 0.1 z
  dsm_loss  0.5 mean_b || s(xt) + (xt - x) / 0.1^2 ||^2   (the dsm workload's formula, as
            ebm's DenoisingScoreMatching computes it)
  grad.*    its gradient with respect to every parameter

to 1e-10 relative (to max(1, max|value|)). Prints one JSON line per framework and model; exit
status 1 if any comparison fails.

    bench/.venv/bin/python bench/python/conv_check.py [--models C8 R28] [--ebm-bench PATH]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
import conv_models as CM  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

SIGMA = C.DSM_SIGMA


def ebm_reference(model: str, exe: str | None, out: Path) -> dict:
    cmd = ([exe] if exe else ["cargo", "run", "--release", "-q", "-p", "ebm-bench", "--"])
    subprocess.run(cmd + ["--model", model, "--write-check", str(out)], check=True, cwd=C.REPO_ROOT)
    return {k: np.asarray(v, np.float64) for k, v in load_file(str(out)).items()}


def check_torch(model: str, ref: dict) -> bool:
    cfg = C.model_cfg(model)["conv"]
    net = CM.torch_module(cfg).double()
    params = {k[len("param."):]: torch.from_numpy(v) for k, v in ref.items() if k.startswith("param.")}
    net.load_state_dict(params, strict=True)  # every name must match, both ways
    x, z = torch.from_numpy(ref["x"]), torch.from_numpy(ref["z"])
    xt = (x + SIGMA * z).requires_grad_(True)
    s = -torch.autograd.grad(net(xt).sum(), xt, create_graph=True)[0]
    loss = 0.5 * ((s + (xt.detach() - x) / SIGMA**2) ** 2).sum(1).mean()
    names, tensors = zip(*net.named_parameters())
    grads = torch.autograd.grad(loss, tensors, materialize_grads=True)  # head.bias: zero
    ck = C.FixtureCheck(f"torch:{model}")
    ck.compare("energy", net(x).detach(), ref["energy"])
    ck.compare("score_xt", s.detach(), ref["score_xt"])
    ck.compare("dsm.loss", loss.detach(), ref["dsm_loss"])
    for n, g in zip(names, grads):
        ck.compare(f"dsm.grad.{n}", g, ref[f"grad.{n}"])
    return ck.report()


def check_jax(model: str, ref: dict) -> bool:
    cfg = C.model_cfg(model)["conv"]
    p = {k[len("param."):]: jnp.asarray(v) for k, v in ref.items() if k.startswith("param.")}
    want = set(CM.jax_init(jax.random.PRNGKey(0), cfg))
    if set(p) != want:
        sys.exit(f"{model}: parameter names differ: ebm only {sorted(set(p) - want)}, "
                 f"JAX only {sorted(want - set(p))}")
    x, z = jnp.asarray(ref["x"]), jnp.asarray(ref["z"])
    xt = x + SIGMA * z

    def score(p, y):
        return -jax.grad(lambda y: CM.jax_energy(p, y, cfg).sum())(y)

    def dsm(p):
        return 0.5 * jnp.mean(jnp.sum((score(p, xt) + (xt - x) / SIGMA**2) ** 2, axis=1))
    loss, grads = jax.value_and_grad(dsm)(p)
    ck = C.FixtureCheck(f"jax:{model}")
    ck.compare("energy", CM.jax_energy(p, x, cfg), ref["energy"])
    ck.compare("score_xt", score(p, xt), ref["score_xt"])
    ck.compare("dsm.loss", loss, ref["dsm_loss"])
    for n, g in grads.items():
        ck.compare(f"dsm.grad.{n}", g, ref[f"grad.{n}"])
    return ck.report()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(C.CONV_MODELS))
    ap.add_argument("--ebm-bench", help="the ebm-bench binary (default: cargo run --release)")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            ref = ebm_reference(model, args.ebm_bench, Path(tmp) / f"{model}.safetensors")
            ok &= check_torch(model, ref)
            ok &= check_jax(model, ref)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
