"""Headless rendering of BOP scenes (OpenGL over EGL): depth, masks, coordinate maps, colour; and
scene_gt_info computed from renders.

>>> from bopnp.render import get_renderer          # doctest: +SKIP
>>> r = get_renderer(640, 480); r.add_model(1, mesh)  # doctest: +SKIP
>>> out = r.render(K, [(1, R_m2c, t_m2c)])          # doctest: +SKIP
"""

from __future__ import annotations

from bopnp.render.egl import configure_environment

configure_environment()  # before anything imports PyOpenGL

from bopnp.render.gt_info import compute_gt_info, compute_gt_info_and_masks, compute_masks  # noqa: E402
from bopnp.render.lighting import Lighting  # noqa: E402
from bopnp.render.renderer import Renderer, RenderOutput, get_renderer, projection_matrix  # noqa: E402

__all__ = [
    "Renderer",
    "RenderOutput",
    "get_renderer",
    "Lighting",
    "projection_matrix",
    "compute_gt_info",
    "compute_gt_info_and_masks",
    "compute_masks",
]
