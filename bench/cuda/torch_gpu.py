#!/usr/bin/env python3
"""PyTorch (eager, optionally torch.compile) on the same GPU workloads as ebm's CUDA benchmarks
(package ebm-cuda-bench in this folder: `langevin`, `matmul`, `train`), printing the same JSON lines so the ratios
can be read side by side (see run.sh in this folder).

  python bench/cuda/torch_gpu.py langevin [--chains 10000,100000,1000000] [--steps 10] [--compile]
  python bench/cuda/torch_gpu.py matmul
  python bench/cuda/torch_gpu.py train [--batch 1024,65536] [--steps 50] [--compile]

Workloads (as in the Rust binaries):
  langevin: 2-128-128-1 SiLU MLP energy, x <- x - (eps^2/2) grad E(x) + eps z, eps = 0.01,
            score by autograd each step (eager: one kernel per op), chain-steps per second.
  matmul:   GFLOP/s of torch.matmul on the same shapes (TF32 off, as PyTorch's default).
  train:    DSM (sigma = 0.1) on 8 Gaussians, create_graph for the input gradient, Adam lr 1e-3,
            steps per second at each batch size.
"""
import argparse
import json
import math
import sys
import time

import torch


def device_json():
    p = torch.cuda.get_device_properties(0)
    return {"name": p.name, "arch": f"sm_{p.major}{p.minor}", "sms": p.multi_processor_count,
            "torch": torch.__version__}


def time_per_call(fn, min_secs=1.0, min_reps=3):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    reps = 0
    while reps < min_reps or time.perf_counter() - t0 < min_secs:
        fn()
        reps += 1
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def mlp(widths, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            layers.append(torch.nn.SiLU())
    return torch.nn.Sequential(*layers).cuda()


def langevin(args):
    net = mlp([2, 128, 128, 1])
    for p in net.parameters():
        p.requires_grad_(False)
    eps = 0.01
    eta, sigma = 0.5 * eps * eps, eps

    def step(x):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(net(x).sum(), x)
        return (x - eta * g + sigma * torch.randn_like(x)).detach()

    if args.compile:
        step = torch.compile(step)
    for n in args.chains:
        x = torch.randn(n, 2, device="cuda")
        state = {"x": x}

        def run():
            for _ in range(args.steps):
                state["x"] = step(state["x"])

        secs = time_per_call(run)
        print(json.dumps({
            "bench": "langevin", "path": "torch_compile" if args.compile else "torch_eager",
            "model": "mlp-2-128-128-1", "chains": n, "steps_per_call": args.steps,
            "seconds_per_call": secs, "chain_steps_per_s": n * args.steps / secs,
            "device": device_json()}), flush=True)


def matmul(args):
    cases = [("square", 1, 256, 256, 256, False), ("square", 1, 1024, 1024, 1024, False),
             ("square", 1, 4096, 4096, 4096, False), ("mlp_hidden_b65536", 1, 65536, 128, 128, True),
             ("mlp_input_b65536", 1, 65536, 2, 128, True), ("mlp_grad_w_b65536", 1, 128, 65536, 128, False),
             ("per_chain_8", 100_000, 8, 8, 8, False), ("per_chain_32", 10_000, 32, 32, 32, False),
             ("per_chain_64", 1_000, 64, 64, 64, False)]
    for name, batch, m, k, n, tb in cases:
        for dtype in (torch.float32, torch.float64):
            a = torch.full((batch, m, k) if batch > 1 else (m, k), 0.5, dtype=dtype, device="cuda")
            bshape = (n, k) if tb else (k, n)
            b = torch.full((batch, *bshape) if batch > 1 else bshape, 0.25, dtype=dtype, device="cuda")
            f = (lambda: torch.matmul(a, b.transpose(-1, -2))) if tb else (lambda: torch.matmul(a, b))
            secs = time_per_call(f, 0.5, 5)
            print(json.dumps({
                "bench": "matmul", "case": name, "engine": "torch",
                "dtype": "f32" if dtype == torch.float32 else "f64", "batch": batch, "m": m, "k": k,
                "n": n, "transpose_b": tb, "ms": secs * 1e3,
                "gflops": 2.0 * batch * m * n * k / secs * 1e-9,
                "allow_tf32": torch.backends.cuda.matmul.allow_tf32, "device": device_json()}), flush=True)


def train(args):
    g = torch.Generator(device="cpu").manual_seed(0)
    n_data = 1 << 18
    k = torch.randint(0, 8, (n_data,), generator=g)
    ang = k.double() * (2 * math.pi / 8)
    data = (torch.stack([2 * ang.cos(), 2 * ang.sin()], 1) + 0.1 * torch.randn(n_data, 2, generator=g, dtype=torch.float64)).float().cuda()
    sigma = 0.1
    for b in args.batch:
        net = mlp([2, 128, 128, 1], seed=1)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def loss_fn(x, z):
            xt = (x + sigma * z).requires_grad_(True)
            (gx,) = torch.autograd.grad(net(xt).sum(), xt, create_graph=True)
            return 0.5 * ((-gx + z / sigma) ** 2).sum(1).mean()

        if args.compile:
            loss_fn = torch.compile(loss_fn)
        last = {}

        def step():
            idx = torch.randint(0, n_data, (b,), device="cuda")
            x = data[idx]
            z = torch.randn_like(x)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(x, z)
            loss.backward()
            opt.step()
            last["loss"] = loss

        secs = time_per_call(step, 1.0, args.steps)
        print(json.dumps({
            "bench": "train", "objective": "dsm", "sigma": sigma, "model": "mlp-2-128-128-1",
            "optimizer": "torch.optim.Adam", "batch": b,
            "path": "torch_compile" if args.compile else "torch_eager",
            "seconds_per_step": secs, "steps_per_s": 1.0 / secs,
            "final_loss": float(last["loss"]), "device": device_json()}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=["langevin", "matmul", "train"])
    ints = lambda s: [int(v) for v in s.split(",")]
    ap.add_argument("--chains", type=ints, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--batch", type=ints, default=[1024, 65_536])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(f"torch_gpu.py {args.workload}: no CUDA GPU visible to PyTorch; nothing measured", file=sys.stderr)
        sys.exit(2)
    if args.steps is None:
        args.steps = 10 if args.workload == "langevin" else 50
    {"langevin": langevin, "matmul": matmul, "train": train}[args.workload](args)


if __name__ == "__main__":
    main()
