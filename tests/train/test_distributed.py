"""Distributed data parallel on CPU: two gloo processes under torchrun end with identical weights."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bopnp.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    script = tmp_path / "ddp_run.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, torch
        from bopnp.train.config import PoseTrainConfig
        from bopnp.train.pose import PoseTrainer
        cfg = PoseTrainConfig(bop_path={str(bop)!r}, name={name!r}, steps=3, batch_size=2, width=4, bottleneck=0,
                              workers=0, out={str(tmp_path / "run")!r}, val_every=0, val_fraction=0.0, device="cpu")
        trainer = PoseTrainer(cfg, progress=False)
        rank = trainer.info.rank
        trainer.run()
        torch.save(trainer.net.state_dict(), {str(tmp_path)!r} + f"/rank{{rank}}.pt")
    """)
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["state"]["step"] == 3
    torch.testing.assert_close(saved["model"]["head.weight"], a["head.weight"], rtol=0, atol=0)
