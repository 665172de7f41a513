"""Training: one engine (:mod:`bopnp.train.engine`) for every stage, atomic checkpoints that resume exactly,
and distributed data parallel through torchrun."""
