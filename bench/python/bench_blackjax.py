"""BlackJAX's NUTS and ChEES-HMC on the sampler benchmark targets (issue 17), one JSON line per run.

    python bench/python/bench_blackjax.py --target gauss|mlp --sampler nuts|chees --repeats R

The targets and settings mirror `cargo run --release -p ebm-bench --bin samplers` (see
bench/samplers.sh): the correlated Gaussian (d = 100, condition number 100, its mean and
covariance read from the JSON the ebm binary writes) in float64, and the M2 MLP energy
(autodiff/tests/data/M2_weights.safetensors) plus ||x||^2/8 in float32. NUTS: 4 chains, Stan's
window adaptation (diagonal metric, target acceptance 0.8), vmapped over chains. ChEES: 64 chains,
`chees_adaptation` with Adam(0.025, b1 = 0, b2 = 0.95) as in the paper, then `dynamic_hmc` with
the adapted parameters. Every run is jitted once on a throwaway key (compile time not counted),
then timed on fresh keys; time = warm-up + sampling, synchronised with block_until_ready.
ESS: blackjax.diagnostics.effective_sample_size (Geyer's initial monotone sequence on the
multi-chain autocorrelation, like ebm_samplers::diagnostics::ess), min over coordinates.
"""

import argparse
import json
import os
import sys
import time

import jax
import blackjax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def gaussian_target(path):
    with open(path) as f:
        g = json.load(f)
    d = len(g["mean"])
    mean = jnp.asarray(g["mean"], dtype=jnp.float64)
    prec = jnp.asarray(np.linalg.inv(np.asarray(g["cov"]).reshape(d, d)), dtype=jnp.float64)

    def logdensity(x):
        c = x - mean
        return -0.5 * c @ prec @ c

    return logdensity, d, jnp.float64


def mlp_target():
    w = {k: jnp.asarray(v, dtype=jnp.float32)
         for k, v in load_file(os.path.join(ROOT, "autodiff/tests/data/M2_weights.safetensors")).items()}

    def logdensity(x):
        h = jax.nn.silu(w["l0.weight"] @ x + w["l0.bias"])
        h = jax.nn.silu(w["l1.weight"] @ h + w["l1.bias"])
        e = (w["l2.weight"] @ h + w["l2.bias"])[0]
        return -(e + 0.125 * x @ x)

    return logdensity, 2, jnp.float32


def nuts_run(logdensity, d, dtype, chains, warmup, draws):
    adapt = blackjax.window_adaptation(blackjax.nuts, logdensity, target_acceptance_rate=0.8)

    def one_chain(key, x0):
        k_warm, k_sample = jax.random.split(key)
        (state, params), winfo = adapt.run(k_warm, x0, num_steps=warmup)
        kernel = blackjax.nuts(logdensity, **params).step

        def step(st, k):
            st, info = kernel(k, st)
            return st, (st.position, info.num_integration_steps)

        _, (xs, n_int) = jax.lax.scan(step, state, jax.random.split(k_sample, draws))
        grads = jnp.sum(winfo.info.num_integration_steps) + jnp.sum(n_int)
        return xs, grads, params["step_size"]

    @jax.jit
    def run(key):
        k0, k1 = jax.random.split(key)
        x0 = jax.random.normal(k0, (chains, d), dtype=dtype)
        return jax.vmap(one_chain)(jax.random.split(k1, chains), x0)

    def call(key):
        xs, grads, eps = jax.block_until_ready(run(key))
        return np.asarray(xs), int(np.sum(grads)), float(np.mean(eps)), None

    return call


def chees_run(logdensity, d, dtype, chains, warmup, draws):
    adapt = blackjax.chees_adaptation(logdensity, chains)
    optim = optax.adam(0.025, b1=0.0, b2=0.95)

    @jax.jit
    def run(key):
        k0, k_warm, k_sample = jax.random.split(key, 3)
        x0 = jax.random.normal(k0, (chains, d), dtype=dtype)
        (states, params), winfo = adapt.run(k_warm, x0, 0.1, optim, warmup)
        kernel = blackjax.dynamic_hmc(logdensity, **params).step

        def step(st, k):
            st, info = jax.vmap(kernel)(jax.random.split(k, chains), st)
            return st, (st.position, info.num_integration_steps)

        _, (xs, n_int) = jax.lax.scan(step, states, jax.random.split(k_sample, draws))
        grads = jnp.sum(winfo.info.num_integration_steps) + jnp.sum(n_int)
        length = params["step_size"] * params["integration_steps_params"][0]
        return jnp.swapaxes(xs, 0, 1), grads, params["step_size"], length

    def call(key):
        xs, grads, eps, length = jax.block_until_ready(run(key))
        return np.asarray(xs), int(grads), float(eps), float(length)

    return call


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=["gauss", "mlp"], required=True)
    ap.add_argument("--sampler", choices=["nuts", "chees"], required=True)
    ap.add_argument("--gaussian", default=os.path.join(ROOT, "bench/results/samplers_gaussian.json"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    # float64 for the Gaussian, float32 (JAX's default) for the MLP, as on the ebm side
    jax.config.update("jax_enable_x64", a.target == "gauss")
    if a.target == "gauss":
        logdensity, d, dtype = gaussian_target(a.gaussian)
    else:
        logdensity, d, dtype = mlp_target()
    if a.sampler == "nuts":
        call = nuts_run(logdensity, d, dtype, 4, 500, 500)
    else:
        call = chees_run(logdensity, d, dtype, 64, 500, 500)
    t = time.perf_counter()
    call(jax.random.key(10_000 + a.seed))
    print(f"bench_blackjax: {a.sampler} on {a.target}: compiled and ran once in "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    for r in range(a.repeats):
        t = time.perf_counter()
        xs, grads, eps, length = call(jax.random.key(a.seed * 1000 + r))
        secs = time.perf_counter() - t
        ess = np.asarray(blackjax.diagnostics.effective_sample_size(xs, chain_axis=0, sample_axis=1))
        print(json.dumps({
            "framework": "blackjax", "target": a.target, "sampler": a.sampler, "repeat": r,
            "seconds": secs, "grad_evals": grads, "min_ess": float(ess.min()),
            "median_ess": float(np.median(ess)), "step_size": eps, "trajectory_length": length,
            "ess_per_s": float(ess.min()) / secs, "ess_per_grad": float(ess.min()) / grads,
            "grads_per_s": grads / secs,
        }), flush=True)


if __name__ == "__main__":
    main()
