"""Pure, batched pose errors of the BOP benchmark (MSSD, MSPD, ADD, ADI and their pre-checks), shared by
training, inference and the evaluator; no dependency on :mod:`bopnp.eval`.

- :mod:`~bopnp.metrics.pose_errors`: one error per (estimate, ground truth) pair, numpy or torch.
"""
