"""BOP19 evaluation: pose errors (VSD, MSSD, MSPD, ADD, ADI), matching, recalls and reports, giving the
numbers of bop_toolkit's ``eval_bop19_pose.py`` on the same inputs.

Modules, in pipeline order:

- :mod:`~bopnp.eval.inputs`: read the results CSV and the dataset files (missing depth or
  scene_gt_info is recorded, not fatal).
- :mod:`~bopnp.eval.plan`: targets grouped with their top-scored estimates and GT instances.
- :mod:`~bopnp.metrics.pose_errors` (batched MSSD, MSPD, ADD, ADI; a layer below eval),
  :mod:`~bopnp.eval.vsd` (VSD on crops),
  :mod:`~bopnp.eval.render` (depth renders in bop_toolkit's pixel convention),
  :mod:`~bopnp.eval.compute` (every error of every pair).
- :mod:`~bopnp.eval.matching` (greedy matching), :mod:`~bopnp.eval.scores` (recalls, AR, AUC).
- :mod:`~bopnp.eval.report` (table, scores_bop19.json, errors.csv, plots, leaderboard).
- :mod:`~bopnp.eval.pipeline`: :func:`evaluate` ties them together; :mod:`~bopnp.eval.toolkit` runs
  bop_toolkit itself instead.

Importing this package is light; the submodules import torch and the renderer when used.
"""

from __future__ import annotations

__all__ = ["EvalConfig", "EvalResult", "evaluate"]


def __getattr__(name: str):
    if name in __all__:
        from bopnp.eval import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
