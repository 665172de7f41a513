"""Batched, backpropagatable PnP with exact implicit-function-theorem gradients.

>>> from bopnp.pnp import solve_pnp, PnPResult, RansacConfig, projection_loss
"""

from bopnp.pnp.loss import projection_loss
from bopnp.pnp.ransac import RansacConfig
from bopnp.pnp.result import PnPResult
from bopnp.pnp.solver import solve_pnp

__all__ = ["solve_pnp", "PnPResult", "RansacConfig", "projection_loss"]
