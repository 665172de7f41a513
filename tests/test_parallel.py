"""The worker pool: bounded worker counts, workers that end with their parent, no fork after CUDA, clear errors."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bopnp import parallel
from bopnp.errors import ConfigError, DatasetError, WorkerError
from bopnp.parallel import bounded_workers, run_jobs

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------ module-level, so that spawned workers can import them
def _record_pid(folder: str) -> None:
    Path(folder, str(os.getpid())).touch()


def _slow_square(x: int) -> int:
    time.sleep(0.2)  # long enough that idle workers would be started for the other jobs
    return x * x


def _fail_on_two(x: int) -> int:
    if x == 2:
        raise ValueError(f"cannot handle {x}")
    return x


def _dataset_error(x: int) -> int:
    raise DatasetError(f"scene {x}: scene_gt.json is missing; run `bopnp check` and restore the file")


def _bad_init() -> None:
    raise DatasetError("models_info.json is missing: restore the dataset's models folder")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by its new parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


# --------------------------------------------------------------------------------------------- the cap
@pytest.fixture
def big_machine(monkeypatch):
    """64 usable cores and 1 TB free, so that only the jobs (or a stated limit) cap the count."""
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 64)
    monkeypatch.setattr(parallel, "available_memory_mb", lambda: 1e6)


@pytest.mark.parametrize("method", ["spawn", "fork"])  # a fork pool starts all its workers at once
def test_a_huge_request_on_three_jobs_starts_at_most_three_workers(big_machine, tmp_path, method):
    started = tmp_path / "started"
    started.mkdir()
    out = dict(
        run_jobs(_slow_square, [1, 2, 3], 100000, initializer=_record_pid, initargs=(str(started),), method=method)
    )
    assert out == {1: 1, 2: 4, 3: 9}
    pids = [int(p.name) for p in started.iterdir()]  # every started worker ran the initializer once
    assert 1 <= len(pids) <= 3
    assert os.getpid() not in pids


@pytest.mark.parametrize(
    "cpus, mem_mb, worker_mb, expected",
    [(64, 1e6, None, 3), (2, 1e6, None, 2), (64, 1000.0, 350, 2), (64, 100.0, 350, 1), (64, None, 350, 3)],
)
def test_the_count_is_the_least_of_request_jobs_cores_and_memory(monkeypatch, cpus, mem_mb, worker_mb, expected):
    monkeypatch.setattr(parallel, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(parallel, "available_memory_mb", lambda: mem_mb)
    assert bounded_workers(100000, jobs=3, worker_mb=worker_mb) == expected
    assert bounded_workers(1, jobs=3, worker_mb=worker_mb) == 1


def test_a_container_memory_limit_counts_without_its_file_cache(tmp_path):
    mb = 2**20
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text(f"{4000 * mb}\n")
    (v2 / "memory.current").write_text(f"{3500 * mb}\n")
    (v2 / "memory.stat").write_text(f"anon {3000 * mb}\nfile {500 * mb}\ninactive_file {300 * mb}\n")
    assert parallel._cgroup_free_mb(str(v2)) == pytest.approx(4000 - 3500 + 300, abs=1e-9)
    (v2 / "memory.max").write_text("max\n")
    assert parallel._cgroup_free_mb(str(v2)) is None  # no limit: the machine's free memory counts
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(f"{1000 * mb}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{900 * mb}\n")
    (v1 / "memory.stat").write_text(f"cache {200 * mb}\ntotal_inactive_file {50 * mb}\n")
    assert parallel._cgroup_free_mb(str(tmp_path / "v1")) == pytest.approx(1000 - 900 + 50, abs=1e-9)
    assert parallel._cgroup_free_mb(str(tmp_path / "none")) is None


def test_capping_a_request_says_so_once(big_machine, caplog):
    with caplog.at_level(logging.WARNING, logger="bopnp.parallel"):
        assert bounded_workers(100000, jobs=3, what="--workers") == 3
        assert bounded_workers(3, jobs=3) == 3  # not capped: no message
        assert bounded_workers(None, jobs=2) == 2  # the default is not a request: no message
    assert len(caplog.records) == 1
    assert "--workers 100000 capped to 3" in caplog.records[0].getMessage()
    assert "jobs" in caplog.records[0].getMessage()


def test_default_is_one_per_core_up_to_the_cap(big_machine):
    assert bounded_workers(None, jobs=100, default_cap=8) == 8
    assert bounded_workers(None, jobs=100, default_cap=4) == 4


@pytest.mark.parametrize("bad", [0, -1, -100000, 2.5, "4", True])
def test_zero_negative_or_non_integer_workers_are_a_config_error(bad):
    with pytest.raises(ConfigError, match=r"--workers = .*whole number of processes >= 1"):
        bounded_workers(bad, jobs=3)
    with pytest.raises(ConfigError):
        list(run_jobs(_slow_square, [1, 2, 3], bad))


@pytest.mark.parametrize("command", [["synth", "x", "--test-images", "1"], ["prepare", "x"], ["eval", "x.csv"]])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_cli_rejects_zero_or_negative_workers(command, value, tmp_path):
    from click.testing import CliRunner

    from bopnp.cli.main import cli

    result = CliRunner().invoke(cli, [command[0], "--workers", value, *command[1:], "--bop-path", str(tmp_path)])
    assert result.exit_code == 2
    assert "--workers" in result.output and "x>=1" in result.output


# ------------------------------------------------------------------------------------ parent death
PARENT = """
import sys, time
from bopnp.parallel import run_jobs

if __name__ == "__main__":
    pool = run_jobs(time.sleep, [600.0, 600.0], 2, method=sys.argv[1])
    next(pool, None)  # blocks: the jobs sleep for 10 minutes
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_workers_and_resource_tracker_end_after_the_parent_is_sigkilled(tmp_path, method):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, str(script), method], env=env, cwd=tmp_path)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # two workers (plus the resource tracker with spawn)
            children = _children(parent.pid)
            if len(children) >= (3 if method == "spawn" else 2):
                break
            time.sleep(0.1)
        assert len(children) >= 2, f"the parent started {children}"
        time.sleep(1.0)  # let the workers reach their initializer
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while any(_pid_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = [p for p in children if _pid_alive(p)]
        assert not alive, f"processes {alive} outlived their SIGKILLed parent"
    finally:  # never leave sleeping processes behind, whatever failed
        parent.kill()
        for p in children:
            if _pid_alive(p):
                os.kill(p, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_the_watchdog_fallback_notices_an_orphaned_worker():
    """Where PR_SET_PDEATHSIG is unavailable, a thread polls the parent's pid."""
    import threading

    orphaned = threading.Event()
    not_my_parent = os.getppid() + 1
    t = threading.Thread(target=parallel._watch_parent, args=(not_my_parent, 0.01, orphaned.set), daemon=True)
    t.start()
    assert orphaned.wait(5)
    stays = threading.Event()
    threading.Thread(target=parallel._watch_parent, args=(os.getppid(), 0.01, stays.set), daemon=True).start()
    assert not stays.wait(0.2)


# --------------------------------------------------------------------------------------- CUDA and fork
def test_fork_is_refused_after_cuda_was_initialised(monkeypatch):
    monkeypatch.setattr(parallel, "cuda_initialized", lambda: True)
    with pytest.raises(WorkerError, match="refusing to fork.*initialised CUDA.*spawn"):
        list(run_jobs(_slow_square, [1, 2], 2, method="fork"))


def test_cuda_check_does_not_import_torch():
    code = (
        "import sys; from bopnp.parallel import cuda_initialized; assert not cuda_initialized(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------------------------- errors
def test_an_exception_in_a_worker_names_the_job_and_the_error():
    with pytest.raises(WorkerError, match=r"a worker failed on job 2: ValueError: cannot handle 2") as info:
        list(run_jobs(_fail_on_two, [1, 2, 3], 2))
    assert "cannot handle 2" in str(info.value.__cause__)  # the worker's traceback is kept as the cause


def test_a_typed_error_in_a_worker_reaches_the_caller_unchanged():
    with pytest.raises(DatasetError, match="scene 1: scene_gt.json is missing"):
        list(run_jobs(_dataset_error, [1], 2))


def test_an_initializer_error_reaches_the_caller_instead_of_a_dead_pool():
    with pytest.raises(DatasetError, match="models_info.json is missing"):
        list(run_jobs(_slow_square, [1, 2], 2, initializer=_bad_init))


def test_a_worker_that_dies_is_reported_with_the_hint():
    with pytest.raises(WorkerError, match=r"a worker process died.*run again with --resume"):
        list(run_jobs(os._exit, [3, 3], 2, broken_hint="run again with --resume"))


def test_results_come_as_they_complete_and_poll_runs_while_waiting(big_machine):
    polls = []
    out = list(run_jobs(_slow_square, [4, 1, 2], 3, poll=lambda: polls.append(1), poll_s=0.05))
    assert sorted(out) == [(1, 1), (2, 4), (4, 16)]
    assert len(polls) >= 2
