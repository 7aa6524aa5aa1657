"""PyTorch reference implementation of the ebm benchmark workloads (issue 8), in two flavours:

* `torch` (eager): the code a researcher writes -- nn.Module, torch.autograd.grad(create_graph=True)
  for the input derivatives (the exact Hessian diagonal of `esm` is d double-backward passes, one
  per input dimension), torch.optim.Adam. Gradients are taken with backward(inputs=params) so no
  time is spent on gradients nobody reads (e.g. w.r.t. the noisy input of dsm).
* `torch_compile`: the same losses written with torch.func (functional_call, grad, jvp), because
  torch.compile cannot trace autograd.grad(create_graph=True) (double backward); the loss-and-grad
  function, the Langevin step and the optimizer step are each wrapped in torch.compile (inductor,
  C++ codegen on CPU). A failure is reported as a JSON line with "error" and the run goes on.

    python bench_torch.py --workload dsm --model M2 --threads 1 --steps 50 --warmup 3
    python bench_torch.py --check-fixtures     # f64 losses/gradients/Adam vs autodiff/tests/data
    python bench_torch.py --info               # versions, BLAS, threads

Prints one JSON line per (framework, workload, model) on stdout; logs go to stderr.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

# the driver's forced-AVX2 run (EBM_GEMM=avx2): PyTorch's kernels (ATen's dispatch and oneDNN)
# held to AVX2 too, before torch is imported
if os.environ.get("EBM_GEMM", "").strip() == "avx2":
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
    os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.func import functional_call, grad as fgrad, grad_and_value, jvp, vmap  # noqa: E402

import conv_models as CM  # noqa: E402
import data as D  # noqa: E402


# ----------------------------------------------------------------------------------------------
# Model: E(x) = l2(silu(l1(silu(l0(x))))); nn.Linear layers (default init
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases), names as in the fixtures.
# ----------------------------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.l0 = nn.Linear(dims[0], dims[1])
        self.l1 = nn.Linear(dims[1], dims[2])
        self.l2 = nn.Linear(dims[2], dims[3])

    def forward(self, x):
        """E(x), one scalar per row: [B, d] -> [B]."""
        return self.l2(F.silu(self.l1(F.silu(self.l0(x))))).squeeze(-1)


class DoubleWell(nn.Module):
    """The analytic double well E(x) = h sum_i (x_i^2 - 1)^2, as torchebm's benchmark samples it
    (gradients by autograd, as a researcher's energy gets them)."""

    def __init__(self, barrier):
        super().__init__()
        self.barrier = barrier

    def forward(self, x):
        return self.barrier * ((x * x - 1.0) ** 2).sum(-1)


def build_model(cfg):
    """A cell's network: the conv energy of a conv model (conv_models.py), the double well, else
    the MLP."""
    if "double_well" in cfg:
        return DoubleWell(cfg["double_well"])
    return CM.torch_module(cfg["conv"]) if "conv" in cfg else MLP(cfg["dims"])


def log_pn(y, noise_var):
    """Log density of N(0, var I): -||y||^2/(2 var) - (d/2) log(2 pi var)."""
    d = y.shape[1]
    return -(y**2).sum(1) / (2 * noise_var) - 0.5 * d * float(np.log(2 * np.pi * noise_var))


# ----------------------------------------------------------------------------------------------
# Eager losses (autograd). Means over rows; ||.||^2 sums over features; s(x) = -grad_x E(x).
# ----------------------------------------------------------------------------------------------
def grad_x(model, x, create_graph):
    """grad_x E(x) per row (= -score); `x` must require grad."""
    return torch.autograd.grad(model(x).sum(), x, create_graph=create_graph)[0]


def dsm_loss(model, x, z, sigma=C.DSM_SIGMA):
    """Denoising score matching (Vincent 2011, "A connection between score matching and denoising
    autoencoders"): xt = x + sigma z; loss = 0.5 mean_b || s(xt) + (xt - x)/sigma^2 ||^2."""
    xt = (x + sigma * z).requires_grad_(True)
    s = -grad_x(model, xt, create_graph=True)
    return 0.5 * ((s + (xt.detach() - x) / sigma**2) ** 2).sum(1).mean()


def esm_loss(model, x):
    """Exact score matching (Hyvarinen 2005, "Estimation of non-normalized statistical models by
    score matching"): loss = mean_b [ 0.5 ||grad_x E(x)||^2 - trace(H(x)) ]; the exact trace takes
    one double-backward pass per input dimension (d = 2 for M2, 64 for M64)."""
    x = x.detach().requires_grad_(True)
    g = grad_x(model, x, create_graph=True)
    trace = 0
    for i in range(x.shape[1]):
        trace = trace + torch.autograd.grad(g[:, i].sum(), x, create_graph=True)[0][:, i]
    return (0.5 * (g**2).sum(1) - trace).mean()


def ssm_loss(model, x, v):
    """Sliced score matching (Song et al. 2019, "Sliced score matching: a scalable approach to
    density and score estimation"): loss = mean_b [ v^T grad_x(v^T s(x)) + 0.5 (v^T s(x))^2 ];
    with s = -grad E the first term is -v^T H v (one reverse-over-reverse HVP)."""
    x = x.detach().requires_grad_(True)
    g = grad_x(model, x, create_graph=True)
    hv = torch.autograd.grad((g * v).sum(), x, create_graph=True)[0]
    return (-(v * hv).sum(1) + 0.5 * (v * g).sum(1) ** 2).mean()


def nce_loss(model, log_z, x, x_noise, noise_var):
    """Noise-contrastive estimation (Gutmann & Hyvarinen 2010, "Noise-contrastive estimation: a new
    estimation principle for unnormalized statistical models"), nu = 1, learnable log Z:
    G(x) = -E(x) - logZ - log p_n(x); loss = -mean log sigmoid(G(x)) - mean log sigmoid(-G(x_noise))."""
    def G(y):
        return -model(y) - log_z - log_pn(y, noise_var)
    return -F.logsigmoid(G(x)).mean() - F.logsigmoid(-G(x_noise)).mean()


def pcd_loss(model, x, x_chain, reg=C.PCD_REG):
    """Persistent contrastive divergence (Tieleman 2008, "Training restricted Boltzmann machines
    using approximations to the likelihood gradient"; energy regulariser as in Du & Mordatch 2019):
    loss = mean E(x) - mean E(x_chain) + 0.1 mean(E(x)^2 + E(x_chain)^2), no gradient through x_chain."""
    ex, ec = model(x), model(x_chain.detach())
    return ex.mean() - ec.mean() + reg * (ex**2 + ec**2).mean()


def langevin_step(model, x, z, eps=C.LANGEVIN_EPS):
    """Unadjusted Langevin: x' = x - 0.5 eps^2 grad_x E(x) + eps z (no graph kept)."""
    x = x.detach().requires_grad_(True)
    return (x - 0.5 * eps**2 * grad_x(model, x, create_graph=False) + eps * z).detach()


# ----------------------------------------------------------------------------------------------
# Functional losses (torch.func), for torch.compile. Same formulas as above.
# ----------------------------------------------------------------------------------------------
def make_functional(model, esm_vmap_min_d=5):
    def energy(params, x):
        return functional_call(model, params, (x,))

    def grad_x_f(params, x):
        return fgrad(lambda y: energy(params, y).sum())(x)

    def dsm(params, x, z, sigma=C.DSM_SIGMA):
        xt = x + sigma * z
        s = -grad_x_f(params, xt)
        return 0.5 * ((s + (xt - x) / sigma**2) ** 2).sum(1).mean()

    def esm(params, x):
        # forward-over-reverse: d Hessian-vector products with the basis vectors e_i. Compiled, an
        # unrolled loop of jvps is fastest for small d (M2: 22 ms vs 31 ms with vmap) but takes
        # minutes to compile and runs slowly for d = 64 (M64: 514 ms, 226 s to compile), where
        # vmap over the basis wins (220 ms, 17 s to compile). Measured on this machine, 1 thread.
        g = grad_x_f(params, x)
        d = x.shape[1]
        if d < esm_vmap_min_d:
            trace = 0
            for i in range(d):
                e = torch.zeros_like(x)
                e[:, i] = 1.0
                trace = trace + jvp(lambda y: grad_x_f(params, y), (x,), (e,))[1][:, i]
        else:
            basis = torch.eye(d, dtype=x.dtype, device=x.device)[:, None, :].expand(d, *x.shape)
            cols = vmap(lambda e: jvp(lambda y: grad_x_f(params, y), (x,), (e,))[1])(basis)
            trace = torch.diagonal(cols, dim1=0, dim2=2).sum(1)  # cols[i, b, i] = H_b[i, i]
        return (0.5 * (g**2).sum(1) - trace).mean()

    def ssm(params, x, v):
        g, hv = jvp(lambda y: grad_x_f(params, y), (x,), (v,))
        return (-(v * hv).sum(1) + 0.5 * (v * g).sum(1) ** 2).mean()

    def nce(params, x, x_noise, noise_var):
        def G(y):
            return -energy(params, y) - params["logZ"] - log_pn(y, noise_var)
        return -F.logsigmoid(G(x)).mean() - F.logsigmoid(-G(x_noise)).mean()

    def pcd(params, x, x_chain, reg=C.PCD_REG):
        ex, ec = energy(params, x), energy(params, x_chain.detach())
        return ex.mean() - ec.mean() + reg * (ex**2 + ec**2).mean()

    def langevin(params, x, z, eps=C.LANGEVIN_EPS):
        return x - 0.5 * eps**2 * grad_x_f(params, x) + eps * z

    return dict(energy=energy, grad_x=grad_x_f, dsm=dsm, esm=esm, ssm=ssm, nce=nce, pcd=pcd,
                langevin=langevin)


# ----------------------------------------------------------------------------------------------
# Benchmark steps
# ----------------------------------------------------------------------------------------------
class Sampler:
    """Draws a batch inside the step with torch's RNG: 8-Gaussians (M2), digits/16 (M64, C8),
    N(0, I) or U[0, 1] rows (R28)."""

    def __init__(self, model_name, batch):
        self.batch = batch
        self.kind = C.model_cfg(model_name)["data"]
        self.d = C.model_cfg(model_name)["dims"][0]
        if self.kind in ("normal", "uniform"):
            pass
        elif self.kind == "8gaussians":
            self.centres = torch.tensor(D.CENTRES, dtype=torch.float32)
        else:
            self.digits = torch.from_numpy(D.load_digits()[0])

    def __call__(self):
        if self.kind == "normal":
            return torch.randn(self.batch, self.d)
        if self.kind == "uniform":
            return torch.rand(self.batch, self.d)
        if self.kind == "8gaussians":
            k = torch.randint(0, 8, (self.batch,))
            return self.centres[k] + D.STD * torch.randn(self.batch, 2)
        return self.digits[torch.randint(0, self.digits.shape[0], (self.batch,))]


def make_optimizer(params):
    # Default torch.optim.Adam. On CPU the default implementation is the per-tensor for-loop;
    # foreach=True and fused=True were measured as no faster for these 6-7 small tensors.
    return torch.optim.Adam(params, lr=C.LR, betas=(C.BETA1, C.BETA2), eps=C.ADAM_EPS)


def make_eager_step(workload, model_name):
    cfg = C.model_cfg(model_name)
    dims, batch, nce_var = cfg["dims"], cfg["batch"], cfg["nce_var"]
    model = build_model(cfg)
    if workload == "langevin":
        model.requires_grad_(False)  # sampling only: no parameter gradients
        state = {"x": torch.randn(cfg["chains"], dims[0])}

        def run():
            x = state["x"]
            for _ in range(cfg["langevin_steps"]):
                x = langevin_step(model, x, torch.randn_like(x))
            state["x"] = x
            return x.mean()
        return run

    params = list(model.parameters())
    log_z = None
    if workload == "nce":
        log_z = nn.Parameter(torch.zeros(()))
        params.append(log_z)
    opt = make_optimizer(params)
    sample = Sampler(model_name, batch)
    state = {"chains": torch.randn(batch, dims[0])} if workload == "pcd" else {}

    def step():
        x = sample()
        if workload == "dsm":
            loss = dsm_loss(model, x, torch.randn_like(x))
        elif workload == "esm":
            loss = esm_loss(model, x)
        elif workload == "ssm":
            proj = cfg["projections"]  # P projections: the mean of the one-projection losses
            loss = sum(ssm_loss(model, x, torch.randn_like(x)) for _ in range(proj)) / proj
        elif workload == "nce":
            loss = nce_loss(model, log_z, x, np.sqrt(nce_var) * torch.randn_like(x), nce_var)
        elif workload == "pcd":
            xc = state["chains"]
            for _ in range(cfg["pcd_steps"]):
                xc = langevin_step(model, xc, torch.randn_like(xc))
            state["chains"] = xc
            loss = pcd_loss(model, x, xc)
        else:
            raise ValueError(workload)
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss, inputs=params)
        opt.step()
        return loss
    return step


def make_compiled_step(workload, model_name):
    cfg = C.model_cfg(model_name)
    dims, batch, nce_var = cfg["dims"], cfg["batch"], cfg["nce_var"]
    model = build_model(cfg)
    fn = make_functional(model)
    named = dict(model.named_parameters())
    if workload == "nce":
        named["logZ"] = nn.Parameter(torch.zeros(()))
    # Detached views share storage with the parameters, so optimizer updates are seen.
    pview = {k: p.detach() for k, p in named.items()}
    lang = torch.compile(fn["langevin"])

    if workload == "langevin":
        state = {"x": torch.randn(cfg["chains"], dims[0])}

        def run():
            x = state["x"]
            for _ in range(cfg["langevin_steps"]):
                x = lang(pview, x, torch.randn_like(x))
            state["x"] = x
            return x.mean()
        return run

    params = list(named.values())
    opt = make_optimizer(params)
    sample = Sampler(model_name, batch)
    state = {"chains": torch.randn(batch, dims[0])} if workload == "pcd" else {}
    loss_fn = fn[workload]

    @torch.compile
    def loss_and_grads(pv, x, *rest):
        if workload in ("dsm", "ssm"):
            rest = (torch.randn_like(x),)  # noise drawn inside the compiled region
        elif workload == "nce":
            rest = (float(np.sqrt(nce_var)) * torch.randn_like(x), nce_var)
        return grad_and_value(loss_fn)(pv, x, *rest)

    @torch.compile(fullgraph=False)
    def opt_step():
        opt.step()

    def step():
        x = sample()
        if workload == "pcd":
            xc = state["chains"]
            for _ in range(cfg["pcd_steps"]):
                xc = lang(pview, xc, torch.randn_like(xc))
            state["chains"] = xc
            grads, loss = loss_and_grads(pview, x, xc)
        else:
            grads, loss = loss_and_grads(pview, x)
        for k, p in named.items():
            p.grad = grads[k]
        opt_step()
        return loss
    return step


def bench(framework, workload, model_name, args):
    torch._dynamo.reset()  # fresh compile caches per cell (the step functions are closures)
    torch.manual_seed(args.seed)
    make = make_eager_step if framework == "torch" else make_compiled_step
    step = make(workload, model_name)
    box = {}

    def one():
        box["loss"] = step()
        return box["loss"]
    # CPU ops are synchronous; reading nothing back keeps the timing to the step itself.
    first, times = C.time_steps(one, lambda out: None, args.warmup, args.steps)
    return C.result_line(framework, workload, model_name, args.threads, times, first,
                         final_loss=float(box["loss"]))


# ----------------------------------------------------------------------------------------------
# Fixture check (f64)
# ----------------------------------------------------------------------------------------------
def check_fixtures(fixture_dir) -> bool:
    torch.set_default_dtype(torch.float64)
    W, I, X = C.load_fixtures(fixture_dir)
    model = MLP((2, 128, 128, 1)).double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in W.items()})
    t = {k: torch.from_numpy(v) for k, v in I.items()}
    x, z, v = t["x"], t["z_dsm"], t["v"]
    params = dict(model.named_parameters())
    ck = C.FixtureCheck("torch")

    xr = x.clone().requires_grad_(True)
    ck.compare("energy", model(x).detach(), X["energy"])
    ck.compare("score", -grad_x(model, xr, False), X["score"])
    ck.compare("ula_step", langevin_step(model, x, t["z_ula"]), X["ula_step"])

    def eager_grads(loss, extra=()):
        names = list(params) + [n for n, _ in extra]
        tensors = list(params.values()) + [p for _, p in extra]
        return dict(zip(names, torch.autograd.grad(loss, tensors, materialize_grads=True)))

    log_z = nn.Parameter(torch.zeros((), dtype=torch.float64))
    eager = {
        "dsm": lambda: (dsm_loss(model, x, z), ()),
        "esm": lambda: (esm_loss(model, x), ()),
        "ssm": lambda: (ssm_loss(model, x, v), ()),
        "nce": lambda: (nce_loss(model, log_z, x, t["x_noise"], 4.0), (("logZ", log_z),)),
        "pcd": lambda: (pcd_loss(model, x, t["x_chain"]), ()),
    }
    for name, f in eager.items():
        loss, extra = f()
        grads = eager_grads(loss, extra)
        ck.compare(f"{name}.loss", loss.detach(), X[f"{name}.loss"])
        for k, g in grads.items():
            ck.compare(f"{name}.grad.{k}", g, X[f"{name}.grad.{k}"])
        if name == "dsm":  # one step of the benchmark's optimizer from zero state
            m2 = MLP((2, 128, 128, 1)).double()
            m2.load_state_dict(model.state_dict())
            opt = make_optimizer(m2.parameters())
            for k, p in m2.named_parameters():
                p.grad = grads[k].clone()
            opt.step()
            for k, p in m2.named_parameters():
                ck.compare(f"dsm.adam1.{k}", p.detach(), X[f"dsm.adam1.{k}"])

    # the torch.func formulation used by torch_compile (checked uncompiled)
    fn = make_functional(model)
    pv = {k: p.detach() for k, p in params.items()}
    ck.compare("func.score", -fn["grad_x"](pv, x), X["score"])
    functional = {
        "dsm": (pv, (x, z)), "esm": (pv, (x,)), "ssm": (pv, (x, v)),
        "nce": (dict(pv, logZ=torch.zeros((), dtype=torch.float64)), (x, t["x_noise"], 4.0)),
        "pcd": (pv, (x, t["x_chain"])),
    }
    # the vmap form of esm (used for M64) on the M2 fixture
    functional["esm_vmap"] = (pv, (x,))
    fn["esm_vmap"] = make_functional(model, esm_vmap_min_d=0)["esm"]
    for name, (pp, rest) in functional.items():
        grads, loss = grad_and_value(fn[name])(pp, *rest)
        want = name.split("_")[0]
        ck.compare(f"func.{name}.loss", loss, X[f"{want}.loss"])
        for k, g in grads.items():
            ck.compare(f"func.{name}.grad.{k}", g, X[f"{want}.grad.{k}"])
    return ck.report()


def info(args):
    from threadpoolctl import threadpool_info
    C.log(f"torch {torch.__version__}, numpy {np.__version__}; CPUs allowed: {sorted(os.sched_getaffinity(0))}")
    C.log("  " + torch.__config__.parallel_info().replace("\n", "\n  ").rstrip())
    blas = [ln.strip() for ln in torch.__config__.show().splitlines()
            if any(s in ln for s in ("Math Kernel", "MKL-DNN", "CPU capability", "OpenMP"))]
    C.log("  torch build: " + "; ".join(blas))
    for lib in threadpool_info():
        C.log(f"  threadpoolctl: {lib.get('user_api')}/{lib.get('internal_api')} {lib.get('version')} "
              f"{lib.get('architecture') or ''} threads={lib.get('num_threads')} ({Path(lib['filepath']).name})")


def main():
    args = C.parse_args(__doc__.splitlines()[0], torch_modes=True)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    if args.info:
        info(args)
        return 0
    if args.check_fixtures:
        return 0 if check_fixtures(args.fixtures) else 1
    frameworks = {"eager": ["torch"], "compile": ["torch_compile"],
                  "both": ["torch", "torch_compile"]}[args.torch_mode]
    for workload, model_name in C.cells(args):
        for fw in frameworks:
            try:
                C.emit(bench(fw, workload, model_name, args))
            except Exception as e:  # torch.compile failures are reported, not fatal
                C.emit(C.error_line(fw, workload, model_name, args.threads, e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
