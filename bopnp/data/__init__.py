"""Training data: crop geometry (:mod:`bopnp.data.crop_geometry`), coordinate targets (:mod:`bopnp.data.targets`),
the crop cache format (:mod:`bopnp.data.cache`), the preparation job behind ``bopnp prepare``
(:mod:`bopnp.data.prepare`), a torch ``Dataset`` reading the cache (:mod:`bopnp.data.crop_dataset`) and
augmentations (:mod:`bopnp.data.augment`).

Submodules are imported on use; this package imports nothing heavy."""
