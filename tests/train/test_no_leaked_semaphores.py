"""No run leaves semaphores behind: multiprocessing's resource tracker warns at exit ("resource_tracker: There appear
to be N leaked semaphore objects to clean up at shutdown") for every named semaphore a process registered and never
released. The warning comes from the tracker process, once every process that holds its pipe has ended, so each path
runs in a fresh interpreter whose whole stderr is read after it exits: pose training with loader workers (to the
end, interrupted by Ctrl-C and resumed, through several loader epochs), and the worker pools of
:mod:`bopnp.parallel` (spawned and forked)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib.util
import math
import sys
from pathlib import Path


def main(tmp, fixture):
    from bopnp.cli.main import cli
    from bopnp.parallel import run_jobs
    import bopnp.train.runner as runner

    spec = importlib.util.spec_from_file_location("tiny_cache", fixture)
    tiny_cache = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_cache)
    tiny_cache.make_tiny_dataset(tmp / "bop", "tiny")

    def train(*more):
        args = ["train", "tiny", "--bop-path", str(tmp / "bop"), "--batch-size", "2", "--width", "4",
                "--workers", "2", "--val-every", "0", "--out", str(tmp / "run"), "--no-progress", *more]
        try:
            cli.main(args, prog_name="bopnp", standalone_mode=False)
        except SystemExit as exc:
            return exc.code
        return 0

    assert train("--steps", "2") == 0
    plain = runner.train_one_epoch

    def interrupted(*args, on_step, **kw):  # Ctrl-C at step 8, within the second loader epoch (6 batches)
        def step(record):
            on_step(record)
            if record.step == 8:
                raise KeyboardInterrupt

        return plain(*args, on_step=step, **kw)

    runner.train_one_epoch = interrupted
    assert train("--steps", "14", "--resume") == 130
    runner.train_one_epoch = plain
    assert train("--steps", "14", "--resume") == 0  # on into the third epoch

    for method in ("spawn", "fork"):
        assert sorted(r for _, r in run_jobs(math.sqrt, [1.0, 4.0, 9.0], 2, method=method)) == [1.0, 2.0, 3.0]
        jobs = run_jobs(math.sqrt, [1.0] * 16, 2, method=method, in_flight=1)
        next(jobs)
        jobs.close()  # abandoned after the first result
    print("ran")


if __name__ == "__main__":  # spawned workers import this file without running it
    main(Path(sys.argv[1]), sys.argv[2])
"""


LEAK = """
import multiprocessing as mp
import os

lock = mp.get_context("spawn").Lock()  # a named semaphore the resource tracker watches
os._exit(0)  # no normal exit: it is never released
"""


def _leak_warnings(stderr: str) -> bool:
    return "leaked" in stderr or "resource_tracker" in stderr


def test_the_check_sees_a_deliberate_leak(tmp_path):
    """The check below can fail: a process that dies holding a spawn-context semaphore makes the tracker warn."""
    script = tmp_path / "leak.py"
    script.write_text(LEAK)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert _leak_warnings(proc.stderr), proc.stderr


def test_training_and_worker_pools_leak_no_semaphore(tmp_path):
    script = tmp_path / "paths.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(ROOT / "tests" / "fixtures" / "data" / "tiny_cache.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "ran" in proc.stdout, proc.stderr[-3000:]
    assert not _leak_warnings(proc.stderr), proc.stderr[-3000:]
