"""XLA's f32 dot (jax.jit) on the shapes of core/examples/gemm_rate.rs: one JSON line per shape.

    taskset -c 0 python bench/python/gemm_xla.py [M,K,N,ta,tb ...]

Same shapes, same timing rule (median rate of ~0.2 s of repetitions, the output allocated each
time) as the Rust example, so bench/gemm.sh sets the two side by side. One thread unless
--threads 2 (then pin to two CPUs).
"""
from __future__ import annotations

import json
import os
import sys
import time

THREADS = 2 if "--threads" in sys.argv and sys.argv[sys.argv.index("--threads") + 1] == "2" else 1
if THREADS == 1 and "XLA_FLAGS" not in os.environ:
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

SHAPES = [
    (1024, 128, 128, 0, 0), (1024, 128, 128, 0, 1), (128, 1024, 128, 1, 0),
    (256, 256, 256, 0, 0), (256, 256, 256, 0, 1), (256, 256, 256, 1, 0),
    (1024, 512, 512, 0, 0), (1024, 1024, 1024, 0, 0), (512, 512, 512, 0, 0),
]


def main() -> None:
    args = [a for a in sys.argv[1:] if "," in a]
    shapes = [tuple(int(x) for x in a.split(",")) for a in args] or SHAPES
    rng = np.random.default_rng(0)
    for m, k, n, ta, tb in shapes:
        a = jnp.asarray(rng.standard_normal((k, m) if ta else (m, k)), jnp.float32)
        b = jnp.asarray(rng.standard_normal((n, k) if tb else (k, n)), jnp.float32)
        f = jax.jit(lambda x, y, ta=ta, tb=tb: (x.T if ta else x) @ (y.T if tb else y))
        f(a, b).block_until_ready()
        flops = 2.0 * m * k * n
        reps = int(min(2000, max(5, 0.2e9 / flops)))
        rates = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f(a, b).block_until_ready()
            rates.append(flops / (time.perf_counter() - t0) * 1e-9)
        rates.sort()
        t = lambda v: "T" if v else ""  # noqa: E731
        print(json.dumps({"shape": f"{m}x{k}{t(ta)}·{k}x{n}{t(tb)}", "m": m, "k": k, "n": n,
                          "ta": bool(ta), "tb": bool(tb), "gflops": round(rates[reps // 2], 2),
                          "path": "xla", "threads": THREADS}), flush=True)


if __name__ == "__main__":
    main()
