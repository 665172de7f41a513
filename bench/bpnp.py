"""Benchmark: the batched backpropagatable PnP layer (``bopnp.pnp.solve_pnp``) against a per-sample OpenCV loop.

For every (device, B, N) it times forward + backward of ``solve_pnp`` (float32, 1 px noise, loss ``pose.sum()``),
the forward alone, the peak memory of forward + backward, and a loop of ``cv2.solvePnP(SOLVEPNP_ITERATIVE)`` over
the same B problems (forward only, float64 arrays prepared beforehand, in the same run). RANSAC rows use 50% gross
outliers, 100 minimal sets (P3P, up to 4 hypotheses each), a 5 px threshold, against a loop of
``cv2.solvePnPRansac`` (100 iterations, same threshold, confidence 0.99, SOLVEPNP_ITERATIVE).

    python bench/bpnp.py                  # CPU default grid (a few minutes on 2 cores) + CUDA grid when present
    python bench/bpnp.py --full           # B in {1, 32, 256, 1024} x N in {100, 1000, 4096} everywhere
    python bench/bpnp.py --device cuda --batch 1024 --points 1000
    python bench/bpnp.py --json out.json  # also write the rows (atomically)
    python bench/bpnp.py --threads 1      # one CPU thread (steadier when other jobs share the cores)
    python bench/bpnp.py --device cuda --execution eager cuda_graph   # eager vs CUDA-graph replay, one row each

Times are medians (ms) over repeats after five warm-up calls; peak memory is CUDA's allocator peak, or on CPU the
rise of the resident-set high-water mark in a fresh process whose allocator returns every freed block (Linux). The
``x OpenCV`` column is OpenCV time / ours (forward + backward). ``ops / item reads`` counts the aten operations that
launch work and the explicit host reads of one forward + backward (:func:`count_ops`): on a GPU, where launches rather
than arithmetic bound small problems, ops x a few microseconds is a floor of the time (with ``--execution
cuda_graph`` the replayed loops count as no op: what Python launches). ``CUDA syncs`` counts every host-device
synchronisation of one forward + backward on CUDA (explicit reads and linear-algebra status checks alike).

On Linux the script re-runs itself with glibc's heap trimming and per-block mmap off (``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_MMAP_THRESHOLD_`` at 2 GiB), as PyTorch's CPU tuning guide advises through jemalloc or tcmalloc: by default
glibc hands blocks of the solver's size back to the OS after each call and page-faults them in again on the next, which
on some VMs costs more than the arithmetic (seconds for the RANSAC row). ``--default-malloc`` measures without that.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bopnp.bop.atomic import write_text_atomic  # noqa: E402
from bopnp.device import count_cuda_syncs  # noqa: E402
from bopnp.geometry import project_points, random_rotation, rotation_angle_deg, transform_points  # noqa: E402
from bopnp.pnp import RansacConfig, solve_pnp  # noqa: E402
from bopnp.pnp.opencv import opencv_pose  # noqa: E402

K_LM = [[572.4114, 0.0, 325.2611], [0.0, 573.57043, 242.04899], [0.0, 0.0, 1.0]]
DEFAULT_CPU = ([1, 32, 256], [100, 1000], [(32, 4096)])
FULL = ([1, 32, 256, 1024], [100, 1000, 4096], [])


def make_problems(B: int, N: int, *, outliers: float = 0.0, seed: int = 0):
    """Float64 problems: model points (B, N, 3) mm, pixels (B, N, 2), K (3, 3), true R (B, 3, 3)."""
    g = torch.Generator().manual_seed(seed)
    x3d = torch.randn(B, N, 3, generator=g, dtype=torch.float64) * 50
    R = random_rotation(B, generator=g, dtype=torch.float64)
    t = torch.randn(B, 3, generator=g, dtype=torch.float64) * 30
    t[:, 2] += 700
    K = torch.tensor(K_LM, dtype=torch.float64)
    x2d = project_points(transform_points(R, t, x3d), K) + torch.randn(B, N, 2, generator=g, dtype=torch.float64)
    if outliers > 0:
        bad = torch.rand(B, N, generator=g) < outliers
        junk = torch.rand(B, N, 2, generator=g, dtype=torch.float64) * torch.tensor([640.0, 480.0], dtype=torch.float64)
        x2d = torch.where(bad.unsqueeze(-1), junk, x2d)
    return x3d, x2d, K, R


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn, device: str, repeats: int, budget_s: float = 2.0, warmup: int = 5):
    """Median and minimum time of ``fn()`` (ms), and what its last call returned."""
    # Several warm-up calls: glibc's malloc adapts its mmap threshold over the first few calls, before which large
    # temporaries are mapped and unmapped each time (page faults cost up to 50x the work on some VMs).
    t_end = time.perf_counter() + budget_s
    for i in range(warmup):
        fn()
        if i >= 1 and time.perf_counter() > t_end:
            break
    _sync(device)
    times = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < budget_s and len(times) < 50):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > 4 * budget_s and len(times) >= 2:
            break
    return 1e3 * statistics.median(times), 1e3 * min(times), out


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_mib(fn, device: str) -> float | None:
    """Peak extra memory of one call, MiB (None where it cannot be measured).

    CUDA: the caching allocator's peak. CPU (Linux): the rise of the resident-set high-water mark, which tracks live
    memory only when every large block is mapped and unmapped (the subprocess of :func:`_peak_mib_cpu` sets that up).
    """
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:  # Linux: writing 5 resets the resident-set high-water mark
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    base = _rss_kib("VmRSS")
    fn()
    peak = _rss_kib("VmHWM")
    return None if base is None or peak is None else max(0, peak - base) / 1024


def _peak_mib_cpu(B: int, N: int, ransac: bool, threads: int | None) -> float | None:
    """CPU peak memory of forward + backward, measured in a fresh process where glibc maps every block >= 64 KiB
    separately (so freed memory leaves the resident set and the high-water mark is the peak of live memory)."""
    import subprocess

    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    cmd = [sys.executable, __file__, "--_memory-row", str(B), str(N), str(int(ransac)), str(threads or 0)]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True).stdout
        return float(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def _memory_row(B: int, N: int, ransac: bool, threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)
    x3d, x2d, K, _ = make_problems(B, N, outliers=0.5 if ransac else 0.0)
    x3d, x2d, K = x3d.float(), x2d.float(), K.float()
    cfg = RansacConfig(threshold_px=5.0, iterations=100) if ransac else None

    def fwd_bwd():
        u = x2d.clone().requires_grad_(True)
        solve_pnp(u, x3d, K, ransac=cfg).pose.sum().backward()

    fwd_bwd()
    peak = _peak_mib(fwd_bwd, "cpu")
    print("nan" if peak is None else f"{peak:.3f}")


def _opencv_loop(x3d: np.ndarray, x2d: np.ndarray, K: np.ndarray, ransac: RansacConfig | None) -> list[np.ndarray]:
    """Rotations (3, 3) of every item from OpenCV (``cv2.solvePnP`` / ``cv2.solvePnPRansac``, one call each)."""
    return [opencv_pose(x2d[b], x3d[b], K, ransac=ransac)[1] for b in range(x3d.shape[0])]


# aten ops that launch no kernel (views, allocations, metadata)
_NO_KERNEL = {
    "as_strided",
    "view",
    "_unsafe_view",
    "_reshape_alias",
    "alias",
    "t",
    "transpose",
    "expand",
    "unsqueeze",
    "squeeze",
    "select",
    "slice",
    "permute",
    "detach",
    "lift_fresh",
    "empty",
    "empty_strided",
    "empty_like",
    "resolve_conj",
    "resolve_neg",
    "unbind",
    "split",
    "split_with_sizes",
    "narrow",
    "diagonal",
    "_conj",
    "set_",
    "unflatten",
    "movedim",
    "flatten",
    "reshape",
    "_local_scalar_dense",
}


def count_ops(fn) -> tuple[int, int]:
    """(aten ops that launch work, explicit host reads) of one call of ``fn``, counted below autograd.

    On a GPU each op is at least one kernel launch, so ``ops`` x the per-launch cost (a few microseconds) is a
    lower bound of the time where the tensors are small. The op count does not depend on the device, so the
    CPU count tells what a GPU run will launch. The second number counts only explicit reads of a value
    (``.item()``, ``bool(tensor)``); on CUDA some linear-algebra calls (eigh, svd) also wait for the device
    to check their status, which ``tests/pnp/test_pnp_gpu.py`` counts there with
    ``torch.cuda.set_sync_debug_mode``.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = {"ops": 0, "syncs": 0}

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__.split(".")[0]
            if name == "_local_scalar_dense":
                counts["syncs"] += 1
            elif name not in _NO_KERNEL:
                counts["ops"] += 1
            return func(*args, **(kwargs or {}))

    with Counter():
        fn()
    return counts["ops"], counts["syncs"]


def bench_row(
    device: str,
    B: int,
    N: int,
    repeats: int,
    *,
    ransac: RansacConfig | None = None,
    with_opencv: bool = True,
    execution: str = "eager",
) -> dict:
    x3d, x2d, K, R_true = make_problems(B, N, outliers=0.5 if ransac else 0.0)
    x3d_t, x2d_t, K_t = (v.to(device=device, dtype=torch.float32) for v in (x3d, x2d, K))

    def fwd():
        with torch.no_grad():
            return solve_pnp(x2d_t, x3d_t, K_t, ransac=ransac, execution=execution)

    def fwd_bwd():
        u = x2d_t.clone().requires_grad_(True)
        res = solve_pnp(u, x3d_t, K_t, ransac=ransac, execution=execution)
        res.pose.sum().backward()
        return res

    row = {"device": device, "B": B, "N": N, "ransac": ransac is not None, "execution": execution}
    row["fwd_bwd_ms"], row["fwd_bwd_min_ms"], _ = _median_ms(fwd_bwd, device, repeats)
    row["fwd_ms"], _, res = _median_ms(fwd, device, repeats)
    row["peak_mib"] = (
        _peak_mib(fwd_bwd, device)
        if device == "cuda"
        else _peak_mib_cpu(B, N, ransac is not None, torch.get_num_threads())
    )
    row["ops"], row["syncs"] = count_ops(fwd_bwd)
    row["device_syncs"] = count_cuda_syncs(fwd_bwd)[0] if device == "cuda" else None
    row["valid"] = float(res.valid.float().mean())
    row["iters"] = float(res.iterations.float().mean())
    row["rot_err_deg"] = float(rotation_angle_deg(res.R.double().cpu(), R_true).median())
    if with_opencv:
        x3d_np, x2d_np, K_np = x3d.numpy(), x2d.numpy(), K.numpy()
        row["opencv_ms"], _, R_cv = _median_ms(
            lambda: _opencv_loop(x3d_np, x2d_np, K_np, ransac), "cpu", max(1, repeats // 2)
        )
        R_cv = torch.from_numpy(np.stack(R_cv))
        row["opencv_rot_err_deg"] = float(rotation_angle_deg(R_cv, R_true).median())
        row["speedup"] = row["opencv_ms"] / row["fwd_bwd_ms"]
    return row


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


HEADER = (
    "| device | B | N | RANSAC | ours fwd+bwd ms (median / min) | ours fwd ms | peak MiB | OpenCV fwd ms | x OpenCV "
    "| LM iters | rot err deg (ours / OpenCV) | ops / item reads | CUDA syncs | execution |"
)


def print_row(r: dict) -> None:
    print(
        f"| {r['device']} | {r['B']} | {r['N']} | {'yes' if r['ransac'] else 'no'} | {r['fwd_bwd_ms']:.2f} / "
        f"{r['fwd_bwd_min_ms']:.2f} | "
        f"{r['fwd_ms']:.2f} | {_fmt(r['peak_mib'], '.1f')} | {_fmt(r.get('opencv_ms'), '.1f')} | "
        f"{_fmt(r.get('speedup'), '.2f')} | {r['iters']:.1f} | {r['rot_err_deg']:.3f} / "
        f"{_fmt(r.get('opencv_rot_err_deg'), '.3f')} | {r['ops']} / {r['syncs']} | "
        f"{_fmt(r.get('device_syncs'), 'd')} | {r.get('execution', 'eager')} |",
        flush=True,
    )


def print_table(rows: list[dict]) -> None:
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    for r in rows:
        print_row(r)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_memory-row"]:  # internal: one CPU memory measurement (see _peak_mib_cpu)
        _memory_row(int(argv[1]), int(argv[2]), bool(int(argv[3])), int(argv[4]))
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all", help="all: cpu, and cuda when present")
    ap.add_argument("--batch", type=int, nargs="+", help="batch sizes (default: CPU 1 32 256, CUDA as --full)")
    ap.add_argument("--points", type=int, nargs="+", help="points per item (default: CPU 100 1000, CUDA as --full)")
    ap.add_argument(
        "--full", action="store_true", help="B in {1, 32, 256, 1024} x N in {100, 1000, 4096} on every device"
    )
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (at least)")
    ap.add_argument("--no-opencv", action="store_true", help="skip the OpenCV loop")
    ap.add_argument("--no-ransac", action="store_true", help="skip the RANSAC rows (B=32, N=4096, 100 minimal sets)")
    ap.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's choice; 1 is steadier on a busy "
        "machine, where intra-op threads wait on each other)",
    )
    ap.add_argument(
        "--execution",
        nargs="+",
        default=["eager"],
        choices=["eager", "sync_free", "cuda_graph"],
        help="solve_pnp executions to time, one row each (cuda_graph: CUDA graphs on CUDA, sync_free elsewhere)",
    )
    ap.add_argument("--json", type=Path, help="also write the rows to this file")
    ap.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's default trimming (see the module docstring) instead of re-running with it off",
    )
    args = ap.parse_args(argv)
    if sys.platform.startswith("linux") and not args.default_malloc and "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        env = dict(os.environ, MALLOC_TRIM_THRESHOLD_=str(2**31), MALLOC_MMAP_THRESHOLD_=str(2**31))
        os.execve(sys.executable, [sys.executable, __file__, *argv], env)
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            ap.error("--device cuda: no CUDA device is available")
        devices.remove("cuda")
    print(
        f"torch {torch.__version__}, OpenCV {cv2.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else "")
        + f", MALLOC_TRIM_THRESHOLD_={os.environ.get('MALLOC_TRIM_THRESHOLD_', 'default')}"
    )
    print_table([])
    rows = []
    ransac = RansacConfig(threshold_px=5.0, iterations=100)
    for device in devices:
        if args.full or device == "cuda":
            batches, points, extra = FULL
        else:
            batches, points, extra = DEFAULT_CPU
        batches, points = args.batch or batches, args.points or points
        grid = [(B, N) for N in points for B in batches]
        if not (args.batch or args.points):
            grid += [e for e in extra if e not in grid]
        for ex in args.execution:
            for B, N in grid:
                rows.append(bench_row(device, B, N, args.repeats, with_opencv=not args.no_opencv, execution=ex))
                print_row(rows[-1])
            if not args.no_ransac:
                reps = max(2, args.repeats // 2)
                cv = not args.no_opencv
                rows.append(bench_row(device, 32, 4096, reps, ransac=ransac, with_opencv=cv, execution=ex))
                print_row(rows[-1])
    print()
    print_table(rows)
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
