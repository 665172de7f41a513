"""bopnp: RGB 6D object pose estimation for the BOP benchmark around a differentiable PnP layer.

``bopnp.Estimator`` (image + K in, poses out) and ``bopnp.PoseEstimate`` are loaded on first use, so
``import bopnp`` stays light (no torch).
"""

__version__ = "0.1.0"

_LAZY = {"Estimator": "bopnp.infer.estimator", "PoseEstimate": "bopnp.infer.estimator"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bopnp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["Estimator", "PoseEstimate", "__version__"]
