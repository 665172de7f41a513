"""Training data: Pix2Pose crops and coordinate targets (:mod:`bopnp.data.crop`), the crop cache format
(:mod:`bopnp.data.cache`), the dataset preparation job (:mod:`bopnp.data.prepare`), a torch ``Dataset``
reading the cache (:mod:`bopnp.data.crops`) and augmentations (:mod:`bopnp.data.augment`).

Submodules are imported on use; this package imports nothing heavy."""
