"""Synthetic BOP datasets: procedural meshes with declared symmetries, random scene layouts and backgrounds,
rendered with :mod:`bopnp.render` and written as a complete BOP dataset (``bopnp synth``).

>>> from bopnp.synth import SynthConfig, synthesize          # doctest: +SKIP
>>> summary = synthesize(SynthConfig(name="demo", bop_path=Path("datasets")))  # doctest: +SKIP
"""

from __future__ import annotations

from bopnp.synth.generator import SynthConfig, synthesize

__all__ = ["SynthConfig", "synthesize"]
