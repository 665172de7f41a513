"""Lighting of the colour (``rgb=True``) renders: ambient + one directional + one point light, all in the
camera frame, Lambertian with an optional Blinn-Phong highlight. Colour = albedo * (ambient + diffuse) +
specular, clamped to [0, 1]; albedo is the vertex colour or texture, grey (0.7) for meshes without either."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bopnp.errors import ConfigError


@dataclass(frozen=True)
class Lighting:
    """Light set-up of a colour render.

    Attributes:
        ambient: ambient term added to every lit surface (>= 0).
        directional: intensity of the directional light (>= 0).
        direction_c: (3,) direction in which the directional light travels, camera frame (x right, y down,
            z forward); (0, 0, 1) lights the scene head-on from the camera. Normalised on use.
        point: intensity of the point light (>= 0), no fall-off with distance.
        point_position_mm: (3,) position of the point light in the camera frame, mm.
        specular: strength of the Blinn-Phong highlight (0 disables it).
        shininess: Blinn-Phong exponent (> 0).
    """

    ambient: float = 0.45
    directional: float = 0.55
    direction_c: tuple[float, float, float] = (0.0, 0.0, 1.0)
    point: float = 0.0
    point_position_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    specular: float = 0.0
    shininess: float = 32.0

    def validate(self) -> Lighting:
        """Return self, or raise ConfigError naming the bad field."""
        for name in ("ambient", "directional", "point", "specular"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"Lighting.{name} must be a finite number >= 0, got {value!r}")
        if not self.shininess > 0:
            raise ConfigError(f"Lighting.shininess must be > 0, got {self.shininess!r}")
        d = np.asarray(self.direction_c, dtype=np.float64)
        if d.shape != (3,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
            raise ConfigError(f"Lighting.direction_c must be 3 finite numbers, not all zero; got {self.direction_c!r}")
        p = np.asarray(self.point_position_mm, dtype=np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ConfigError(f"Lighting.point_position_mm must be 3 finite numbers, got {self.point_position_mm!r}")
        return self

    @classmethod
    def random(
        cls,
        rng: np.random.Generator | int | None = None,
        *,
        ambient: tuple[float, float] = (0.2, 0.6),
        directional: tuple[float, float] = (0.2, 0.8),
        point: tuple[float, float] = (0.0, 0.5),
        specular: tuple[float, float] = (0.0, 0.4),
        max_angle_deg: float = 60.0,
        point_offset_mm: tuple[float, float, float] = (500.0, 500.0, 300.0),
    ) -> Lighting:
        """Random lighting for synthetic training images (reproducible with a seed).

        Args:
            rng: a numpy Generator, a seed, or None (fresh entropy).
            ambient, directional, point, specular: uniform ranges of the intensities.
            max_angle_deg: the directional light comes from within this angle of the optical axis.
            point_offset_mm: the point light sits uniformly in the box +-(x, y, z) mm around the camera
                centre (near the camera, as a flash or a lamp beside it would).
        """
        rng = np.random.default_rng(rng)  # a Generator is returned as it is

        def cone_direction() -> np.ndarray:
            cos_max = np.cos(np.deg2rad(max_angle_deg))
            z = rng.uniform(cos_max, 1.0)
            phi = rng.uniform(0.0, 2 * np.pi)
            s = np.sqrt(max(0.0, 1 - z * z))
            return np.array([s * np.cos(phi), s * np.sin(phi), z])

        half = np.asarray(point_offset_mm, dtype=np.float64)
        point_pos = rng.uniform(-half, half)
        return cls(
            ambient=float(rng.uniform(*ambient)),
            directional=float(rng.uniform(*directional)),
            direction_c=tuple(float(v) for v in cone_direction()),
            point=float(rng.uniform(*point)),
            point_position_mm=tuple(float(v) for v in point_pos),
            specular=float(rng.uniform(*specular)),
            shininess=float(rng.uniform(8.0, 64.0)),
        ).validate()
