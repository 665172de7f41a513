"""Training data: crop geometry (:mod:`bopnp.data.crop_geometry`), coordinate targets (:mod:`bopnp.data.targets`),
the crop cache format (:mod:`bopnp.data.cache`), the preparation job behind ``bopnp prepare``
(:mod:`bopnp.data.prepare`), a torch ``Dataset`` reading the cache (:mod:`bopnp.data.crop_dataset`), the training
set (:mod:`bopnp.data.training_set`), augmentations per item (:mod:`bopnp.data.augment`) and batched on the training
device (:mod:`bopnp.data.batch_augment`), and the crops held on that device (:mod:`bopnp.data.memory_cache`).

Submodules are imported on use; this package imports nothing heavy."""
