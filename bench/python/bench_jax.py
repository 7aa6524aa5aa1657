"""JAX reference implementation of the ebm benchmark workloads (issue 8).

The whole training step -- data and noise sampling (RNG included), loss, gradient and the Adam
update -- is one `jax.jit`-compiled function with the state donated, which is what a researcher
who cares about speed writes in JAX. Adam is written out (PyTorch's update formula) so that its
semantics match the PyTorch reference and the fixtures exactly.

    python bench_jax.py --workload dsm --model M2 --threads 1 --steps 50 --warmup 3
    python bench_jax.py --check-fixtures       # f64 losses/gradients vs autodiff/tests/data
    python bench_jax.py --info                 # versions, devices, XLA flags, numpy BLAS

Prints one JSON line per (workload, model) on stdout; logs go to stderr. Thread control: XLA's CPU
client sizes its pools from the CPUs the process may run on, so the driver pins with `taskset`;
for 1 thread we also set XLA_FLAGS (below) before importing jax.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402  (no framework import in common)

ARGS = C.parse_args(__doc__.splitlines()[0]) if __name__ == "__main__" else None
if ARGS is not None and "XLA_FLAGS" not in os.environ:
    flags = []
    if ARGS.threads == 1:
        flags += ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
    # the driver's forced-AVX2 run (EBM_GEMM=avx2) compares with XLA held to AVX2 as well: an
    # AVX2-only machine is what both sides are emulating
    if os.environ.get("EBM_GEMM", "").strip() == "avx2":
        flags.append("--xla_cpu_max_isa=AVX2")
    if flags:
        os.environ["XLA_FLAGS"] = " ".join(flags)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

if ARGS is not None and ARGS.check_fixtures:
    jax.config.update("jax_enable_x64", True)

import conv_models as CM  # noqa: E402
import data as D  # noqa: E402

FRAMEWORK = "jax"


# ----------------------------------------------------------------------------------------------
# Model: E(x) = l2(silu(l1(silu(l0(x))))), weights in nn.Linear layout [out, in].
# ----------------------------------------------------------------------------------------------
def init_mlp(key, dims, dtype=jnp.float32):
    """PyTorch nn.Linear initialisation: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / np.sqrt(fan_in)
        params[f"l{i}.weight"] = jax.random.uniform(kw, (fan_out, fan_in), dtype, -bound, bound)
        params[f"l{i}.bias"] = jax.random.uniform(kb, (fan_out,), dtype, -bound, bound)
    return params


# The conv energy of the cell being built (common.CONV_MODELS; None: the MLP): set by make_step
# before its step is traced, read by `energy` at trace time.
_CONV = {"cfg": None}


def init_params(key, cfg):
    """A cell's network: the conv energy of a conv model (conv_models.py), none for the double
    well (its barrier height is the one entry), else the MLP."""
    if "double_well" in cfg:
        return {"barrier": jnp.float32(cfg["double_well"])}
    return CM.jax_init(key, cfg["conv"]) if "conv" in cfg else init_mlp(key, cfg["dims"])


def energy(p, x):
    """E(x), one scalar per row: [B, d] -> [B] (the MLP, or the conv energy of _CONV)."""
    if _CONV["cfg"] is not None:
        return CM.jax_energy(p, x, _CONV["cfg"])
    if "barrier" in p:  # the analytic double well h sum_i (x_i^2 - 1)^2
        return p["barrier"] * jnp.sum((x * x - 1.0) ** 2, axis=-1)
    h = jax.nn.silu(x @ p["l0.weight"].T + p["l0.bias"])
    h = jax.nn.silu(h @ p["l1.weight"].T + p["l1.bias"])
    return (h @ p["l2.weight"].T + p["l2.bias"])[:, 0]


def grad_x_energy(p, x):
    """grad_x E(x) per row (= -score). Rows are independent, so the gradient of the sum is exact."""
    return jax.grad(lambda x: energy(p, x).sum())(x)


def langevin_step(p, x, z, eps=C.LANGEVIN_EPS):
    """Unadjusted Langevin: x' = x - 0.5 eps^2 grad_x E(x) + eps z."""
    return x - 0.5 * eps**2 * grad_x_energy(p, x) + eps * z


# ----------------------------------------------------------------------------------------------
# Losses. Means over rows; ||.||^2 sums over features. s(x) = -grad_x E(x).
# ----------------------------------------------------------------------------------------------
def dsm_loss(p, x, z, sigma=C.DSM_SIGMA):
    """Denoising score matching (Vincent 2011, "A connection between score matching and denoising
    autoencoders"): xt = x + sigma z; loss = 0.5 mean_b || s(xt) + (xt - x)/sigma^2 ||^2."""
    xt = x + sigma * z
    s = -grad_x_energy(p, xt)
    return 0.5 * jnp.mean(jnp.sum((s + (xt - x) / sigma**2) ** 2, axis=1))


def hessian_diag_and_grad(p, x):
    """(grad_x E, diag of the per-row Hessian), forward-over-reverse: linearize the gradient once
    (primal computed once) and push the d basis vectors e_i through the linear map, one
    Hessian-vector product each, keeping column i. The loop is unrolled in Python on purpose:
    `jax.vmap` over the basis vectors is the textbook form, but XLA:CPU runs it 3-6x slower here
    (measured: M2 30 ms vs 5.4 ms, M64 640 ms vs 290 ms per step) and lax.fori_loop is ~1.3-1.5x
    slower; the unrolled loop is the fastest formulation we found, so it is the reference."""
    g, hvp = jax.linearize(lambda y: grad_x_energy(p, y), x)
    d = x.shape[1]
    cols = [hvp(jnp.zeros_like(x).at[:, i].set(1.0))[:, i] for i in range(d)]
    return g, jnp.stack(cols, axis=1)


def esm_loss(p, x):
    """Exact score matching (Hyvarinen 2005, "Estimation of non-normalized statistical models by
    score matching"): loss = mean_b [ 0.5 ||grad_x E(x)||^2 - trace(H(x)) ], exact trace."""
    g, hdiag = hessian_diag_and_grad(p, x)
    return jnp.mean(0.5 * jnp.sum(g**2, axis=1) - jnp.sum(hdiag, axis=1))


def ssm_loss(p, x, v):
    """Sliced score matching (Song et al. 2019, "Sliced score matching: a scalable approach to
    density and score estimation"): loss = mean_b [ v^T grad_x(v^T s(x)) + 0.5 (v^T s(x))^2 ].
    With s = -grad E: v^T grad_x(v^T s) = -v^T H v, one forward-over-reverse HVP."""
    g, hv = jax.jvp(lambda x: grad_x_energy(p, x), (x,), (v,))
    vs = -jnp.sum(v * g, axis=1)
    return jnp.mean(-jnp.sum(v * hv, axis=1) + 0.5 * vs**2)


def nce_loss(p, x, x_noise, noise_var):
    """Noise-contrastive estimation (Gutmann & Hyvarinen 2010, "Noise-contrastive estimation: a new
    estimation principle for unnormalized statistical models"), nu = 1, learnable log Z (p["logZ"]):
    log p_n(x) = -||x||^2/(2 var) - (d/2) log(2 pi var); G(x) = -E(x) - logZ - log p_n(x);
    loss = -mean log sigmoid(G(x)) - mean log sigmoid(-G(x_noise))."""
    d = x.shape[1]

    def G(y):
        log_pn = -jnp.sum(y**2, axis=1) / (2 * noise_var) - 0.5 * d * jnp.log(2 * jnp.pi * noise_var)
        return -energy(p, y) - p["logZ"] - log_pn
    return -jnp.mean(jax.nn.log_sigmoid(G(x))) - jnp.mean(jax.nn.log_sigmoid(-G(x_noise)))


def pcd_loss(p, x, x_chain, reg=C.PCD_REG):
    """Persistent contrastive divergence (Tieleman 2008, "Training restricted Boltzmann machines
    using approximations to the likelihood gradient"; energy regulariser as in Du & Mordatch 2019):
    loss = mean E(x) - mean E(x_chain) + 0.1 mean(E(x)^2 + E(x_chain)^2), no gradient through x_chain."""
    ex = energy(p, x)
    ec = energy(p, jax.lax.stop_gradient(x_chain))
    return jnp.mean(ex) - jnp.mean(ec) + reg * jnp.mean(ex**2 + ec**2)


# ----------------------------------------------------------------------------------------------
# Adam, PyTorch's formula: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
# p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
# ----------------------------------------------------------------------------------------------
def adam_init(params):
    z = jax.tree_util.tree_map(jnp.zeros_like, params)
    return {"m": z, "v": jax.tree_util.tree_map(jnp.zeros_like, params), "t": jnp.zeros((), jnp.int32)}


def adam_update(params, grads, opt, lr=C.LR, b1=C.BETA1, b2=C.BETA2, eps=C.ADAM_EPS):
    t = opt["t"] + 1
    tf = t.astype(jnp.result_type(float))
    bc1 = 1 - b1**tf
    bc2_sqrt = jnp.sqrt(1 - b2**tf)
    m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, opt["m"], grads)
    v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, opt["v"], grads)
    new = jax.tree_util.tree_map(
        lambda p, m, v: p - ((lr / bc1) * m / (jnp.sqrt(v) / bc2_sqrt + eps)).astype(p.dtype),
        params, m, v)
    return new, {"m": m, "v": v, "t": t}


# ----------------------------------------------------------------------------------------------
# Data, sampled inside the jitted step.
# ----------------------------------------------------------------------------------------------
def sample_batch(key, model, batch, digits):
    kind = C.model_cfg(model)["data"]
    if kind == "normal":
        return jax.random.normal(key, (batch, C.model_cfg(model)["dims"][0]), jnp.float32)
    if kind == "uniform":
        return jax.random.uniform(key, (batch, C.model_cfg(model)["dims"][0]), jnp.float32)
    if kind == "8gaussians":
        kc, kn = jax.random.split(key)
        k = jax.random.randint(kc, (batch,), 0, 8)
        centres = jnp.asarray(D.CENTRES, jnp.float32)
        return centres[k] + D.STD * jax.random.normal(kn, (batch, 2), jnp.float32)
    idx = jax.random.randint(key, (batch,), 0, digits.shape[0])
    return digits[idx]


def make_step(workload, model):
    """Returns (init_state(key) -> state, step(state, digits) -> (state, loss)), step jitted."""
    cfg = C.model_cfg(model)
    dims, batch, nce_var = cfg["dims"], cfg["batch"], cfg["nce_var"]
    d = dims[0]
    _CONV["cfg"] = cfg.get("conv")

    if workload == "langevin":
        n, steps = cfg["chains"], cfg["langevin_steps"]

        def init_state(key):
            kp, kx, key = jax.random.split(key, 3)
            return {"params": init_params(kp, cfg), "x": jax.random.normal(kx, (n, d), jnp.float32),
                    "key": key}

        def run(state, digits):
            p = state["params"]

            def body(_, carry):
                x, key = carry
                key, kz = jax.random.split(key)
                return langevin_step(p, x, jax.random.normal(kz, x.shape, x.dtype)), key
            x, key = jax.lax.fori_loop(0, steps, body, (state["x"], state["key"]))
            return {"params": p, "x": x, "key": key}, jnp.mean(x)
        return init_state, jax.jit(run, donate_argnums=0)

    def init_state(key):
        kp, kc, key = jax.random.split(key, 3)
        params = init_params(kp, cfg)
        if workload == "nce":
            params["logZ"] = jnp.zeros((), jnp.float32)
        state = {"params": params, "opt": adam_init(params), "key": key}
        if workload == "pcd":  # persistent chains of the batch size, initialised from N(0, I)
            state["chains"] = jax.random.normal(kc, (batch, d), jnp.float32)
        return state

    def step(state, digits):
        key, kd, kn = jax.random.split(state["key"], 3)
        p = state["params"]
        x = sample_batch(kd, model, batch, digits)
        new_state = {"key": key}
        if workload == "dsm":
            loss, g = jax.value_and_grad(dsm_loss)(p, x, jax.random.normal(kn, x.shape, x.dtype))
        elif workload == "esm":
            loss, g = jax.value_and_grad(esm_loss)(p, x)
        elif workload == "ssm":
            if cfg["projections"] == 1:
                v = jax.random.normal(kn, x.shape, x.dtype)
                loss, g = jax.value_and_grad(ssm_loss)(p, x, v)
            else:  # P projections per row: the mean of the one-projection losses over them
                v = jax.random.normal(kn, (cfg["projections"],) + x.shape, x.dtype)
                loss, g = jax.value_and_grad(
                    lambda p: jnp.mean(jax.vmap(lambda vi: ssm_loss(p, x, vi))(v)))(p)
        elif workload == "nce":
            x_noise = np.sqrt(nce_var) * jax.random.normal(kn, x.shape, x.dtype)
            loss, g = jax.value_and_grad(nce_loss)(p, x, x_noise, nce_var)
        elif workload == "pcd":
            def body(_, carry):
                xc, k = carry
                k, kz = jax.random.split(k)
                return langevin_step(p, xc, jax.random.normal(kz, xc.shape, xc.dtype)), k
            # conv energies: the loop unrolled. XLA:CPU runs the convs inside a while loop ~17x
            # slower (C8, 20 Langevin steps of 128 chains, 1 thread: 6.4 CPU-s rolled, 0.38
            # unrolled); the MLP cells keep the rolled loop they were measured with
            xc, _ = jax.lax.fori_loop(0, cfg["pcd_steps"], body, (state["chains"], kn),
                                      unroll="conv" in cfg)
            loss, g = jax.value_and_grad(pcd_loss)(p, x, xc)
            new_state["chains"] = xc
        else:
            raise ValueError(workload)
        new_state["params"], new_state["opt"] = adam_update(p, g, state["opt"])
        return new_state, loss
    return init_state, jax.jit(step, donate_argnums=0)


def bench(workload, model, args):
    init_state, step = make_step(workload, model)
    digits = (jnp.asarray(D.load_digits()[0]) if C.model_cfg(model)["data"] == "digits"
              else jnp.zeros((1, 1), jnp.float32))
    box = {"state": init_state(jax.random.PRNGKey(args.seed)), "loss": None}

    def one():
        box["state"], box["loss"] = step(box["state"], digits)
        return box["state"]
    first, times = C.time_steps(one, jax.block_until_ready, args.warmup, args.steps)
    return C.result_line(FRAMEWORK, workload, model, args.threads, times, first,
                         final_loss=float(box["loss"]))


# ----------------------------------------------------------------------------------------------
# Fixture check (f64): the same loss functions on the fixture weights and inputs.
# ----------------------------------------------------------------------------------------------
def check_fixtures(fixture_dir) -> bool:
    W, I, X = C.load_fixtures(fixture_dir)
    p = {k: jnp.asarray(v, jnp.float64) for k, v in W.items()}
    x, z, v = (jnp.asarray(I[k]) for k in ("x", "z_dsm", "v"))
    ck = C.FixtureCheck(FRAMEWORK)
    assert p["l0.weight"].dtype == jnp.float64, "jax_enable_x64 is off"

    ck.compare("energy", energy(p, x), X["energy"])
    ck.compare("score", -grad_x_energy(p, x), X["score"])
    g, hdiag = hessian_diag_and_grad(p, x)
    ck.compare("hess_diag", hdiag, X["hess_diag"])
    ck.compare("hvp", jax.jvp(lambda y: grad_x_energy(p, y), (x,), (v,))[1], X["hvp"])
    ck.compare("ula_step", langevin_step(p, x, jnp.asarray(I["z_ula"])), X["ula_step"])

    losses = {
        "dsm": (dsm_loss, (x, z)),
        "esm": (esm_loss, (x,)),
        "ssm": (ssm_loss, (x, v)),
        "nce": (nce_loss, (x, jnp.asarray(I["x_noise"]), 4.0)),
        "pcd": (pcd_loss, (x, jnp.asarray(I["x_chain"]))),
    }
    for name, (fn, rest) in losses.items():
        pp = dict(p, logZ=jnp.zeros((), jnp.float64)) if name == "nce" else p
        loss, grads = jax.jit(jax.value_and_grad(fn))(pp, *rest)
        ck.compare(f"{name}.loss", loss, X[f"{name}.loss"])
        for k in grads:
            ck.compare(f"{name}.grad.{k}", grads[k], X[f"{name}.grad.{k}"])
        if name == "dsm":
            new, _ = adam_update(p, grads, adam_init(p))
            for k in new:
                ck.compare(f"dsm.adam1.{k}", new[k], X[f"dsm.adam1.{k}"])
    return ck.report()


def info(args):
    from threadpoolctl import threadpool_info
    C.log(f"jax {jax.__version__}, jaxlib {__import__('jaxlib').__version__}"
          f", numpy {np.__version__}, devices {jax.devices()}")
    C.log(f"  XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; CPUs allowed: {sorted(os.sched_getaffinity(0))}"
          f"; XLA does its own GEMMs (Eigen/oneDNN/XNNPACK inside jaxlib), no external BLAS")
    for lib in threadpool_info():
        C.log(f"  numpy BLAS: {lib.get('internal_api')} {lib.get('version')} "
              f"core={lib.get('architecture')} threads={lib.get('num_threads')}")


def main():
    args = ARGS
    if args.info:
        info(args)
        return 0
    if args.check_fixtures:
        return 0 if check_fixtures(args.fixtures) else 1
    for workload, model in C.cells(args):
        try:
            C.emit(bench(workload, model, args))
        except Exception as e:  # report, keep going
            C.emit(C.error_line(FRAMEWORK, workload, model, args.threads, e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
