"""The radial surface profile and the move of predicted points out onto the surface: against analytic radii of a
sphere and a box (an independent reference), points on or outside the surface unchanged, gradcheck in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bopnp.geometry.radial_surface import (
    PROFILE_BINS,
    box_centre_mm,
    direction_bins,
    expand_coordinates,
    expand_to_surface,
    radial_profile,
)

D = PROFILE_BINS[0] * PROFILE_BINS[1]


def _unit(n: int, seed: int) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _box_radius(d: np.ndarray, half_mm: np.ndarray) -> np.ndarray:
    """Distance from the centre to an axis-aligned box's surface along unit directions d (analytic)."""
    return 1.0 / np.max(np.abs(d) / half_mm, axis=1)


def test_direction_bins_cover_the_grid_and_are_consistent():
    n_t, n_p = PROFILE_BINS
    theta = (torch.arange(n_t, dtype=torch.float64) + 0.5) * np.pi / n_t
    phi = (torch.arange(n_p, dtype=torch.float64) + 0.5) * 2 * np.pi / n_p - np.pi
    tt, pp = torch.meshgrid(theta, phi, indexing="ij")
    centres = torch.stack([tt.sin() * pp.cos(), tt.sin() * pp.sin(), tt.cos()], -1).reshape(-1, 3)
    assert torch.equal(direction_bins(centres), torch.arange(D))  # each bin's centre direction falls in it
    d = torch.from_numpy(_unit(20000, 0))
    k = direction_bins(d)
    assert int(k.min()) >= 0 and int(k.max()) < D
    assert torch.equal(direction_bins(d * 7.5), k)  # only the direction counts
    # the poles and the seam of the azimuth fall in valid bins
    edge = torch.tensor([[0.0, 0, 1], [0, 0, -1], [-1, 0, 0], [-1, -1e-12, 0]], dtype=torch.float64)
    assert ((direction_bins(edge) >= 0) & (direction_bins(edge) < D)).all()


def test_profile_of_a_sphere_is_its_radius(mesh_shapes):
    mesh = mesh_shapes.icosphere(radius_mm=50.0, subdivisions=3)
    prof = radial_profile(mesh.vertices_mm, mesh.faces)
    assert prof.shape == (D,)
    # every bin is reached; the faceted sphere's surface lies between its inscribed radius and 50 mm
    assert (prof > 0).all()
    np.testing.assert_allclose(prof, 50.0, rtol=0.01)


def test_profile_of_a_box_bounds_the_analytic_radius_in_each_bin(mesh_shapes):
    half = np.array([50.0, 32.0, 24.0])
    mesh = mesh_shapes.box(size_mm=tuple(2 * half))
    prof = radial_profile(mesh.vertices_mm, mesh.faces)
    d = _unit(50000, 1)
    r_true = _box_radius(d, half)
    r_bin = prof[direction_bins(torch.from_numpy(d)).numpy()]
    # the bin holds the largest radius of its directions: never below the radius of a direction in it (up to
    # sampling), and a bin spans 2.8 degrees, so not far above it either
    assert (r_bin >= r_true * 0.97).mean() > 0.99
    assert np.median(r_bin / r_true) < 1.08


def test_profile_takes_the_centre_it_is_given(mesh_shapes):
    mesh = mesh_shapes.icosphere(radius_mm=50.0, subdivisions=3)
    shifted = radial_profile(mesh.vertices_mm + 10.0, mesh.faces)  # default: the box centre, here (10, 10, 10)
    np.testing.assert_allclose(box_centre_mm(mesh.vertices_mm + 10.0), 10.0, atol=1e-4)
    np.testing.assert_allclose(shifted, 50.0, rtol=0.01)
    off = radial_profile(mesh.vertices_mm, mesh.faces, centre_mm=np.array([20.0, 0, 0]))
    assert off.max() > 65.0 and off.min() < 35.0  # seen from off-centre the radii spread
    assert not radial_profile(np.zeros((0, 3)), np.zeros((0, 3), int)).any()


def test_shrunk_points_return_to_the_surface_and_others_stay(mesh_shapes):
    half = np.array([50.0, 32.0, 24.0])
    mesh = mesh_shapes.box(size_mm=tuple(2 * half))
    prof = torch.from_numpy(radial_profile(mesh.vertices_mm, mesh.faces))[None]
    d = _unit(2000, 2)
    on_surface = torch.from_numpy(d * _box_radius(d, half)[:, None])[None]
    centre = torch.zeros(1, 3, dtype=torch.float64)
    shrunk = expand_to_surface(0.6 * on_surface, centre, prof)
    r_in, r_out = on_surface.norm(dim=-1), shrunk.norm(dim=-1)
    # directions kept, radii back to the surface within the bin's spread
    cos = (shrunk * on_surface).sum(-1) / (r_in * r_out)
    assert cos.min() > 1 - 1e-9
    ratio = (r_out / r_in).numpy()
    assert np.median(np.abs(ratio - 1)) < 0.05 and ratio.min() > 0.9
    # points on or outside the surface (as its profile has it) and the centre itself are never moved
    outside = 1.3 * on_surface
    assert torch.equal(expand_to_surface(outside, centre, prof), outside)
    r_bin = prof[0][direction_bins(on_surface[0])]
    at_profile = on_surface / r_in[..., None] * r_bin[None, :, None].double()
    torch.testing.assert_close(expand_to_surface(at_profile, centre, prof), at_profile)
    zero = torch.zeros(1, 1, 3, dtype=torch.float64)
    assert torch.equal(expand_to_surface(zero, centre, prof), zero)


def test_expand_to_surface_gradcheck():
    torch.manual_seed(0)
    prof = torch.full((2, D), 40.0, dtype=torch.float64) + torch.rand(2, D, dtype=torch.float64)
    centre = torch.tensor([[1.0, -2.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    d = torch.from_numpy(_unit(12, 3)).reshape(2, 6, 3)
    radius = torch.tensor([[10.0, 25.0, 38.0, 45.0, 60.0, 5.0]] * 2, dtype=torch.float64)  # inside and outside
    pts = (centre[:, None] + d * radius[..., None]).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: expand_to_surface(p, centre, prof), (pts,), eps=1e-6, atol=1e-6)


def test_expand_coordinates_moves_object_pixels_only(mesh_shapes):
    half = np.array([50.0, 32.0, 24.0])
    mesh = mesh_shapes.box(size_mm=tuple(2 * half))
    prof = torch.from_numpy(radial_profile(mesh.vertices_mm, mesh.faces))[None]
    c, h = torch.zeros(1, 3), torch.from_numpy(half).float()[None]
    xyz = torch.zeros(1, 3, 2, 2)
    xyz[0, :, 0, 0] = torch.tensor([0.5, 0.0, 0.0])  # half-way to the +x face: moved to 1
    xyz[0, :, 0, 1] = torch.tensor([0.05, 0.02, 0.0])  # background (max |xyz| <= 0.1): stays
    xyz[0, :, 1, 0] = torch.tensor([-1.0, 0.0, 0.0])  # on the -x face: at most the bin's spread (2 %) out
    xyz[0, :, 1, 1] = torch.tensor([0.0, 0.0, 1.2])  # outside: stays
    out = expand_coordinates(xyz, c, h, prof, min_coord=0.1)
    assert out[0, 0, 0, 0] == pytest.approx(1.0, abs=0.02) and out[0, 1:, 0, 0].abs().max() < 1e-6
    assert torch.equal(out[0, :, 0, 1], xyz[0, :, 0, 1]) and torch.equal(out[0, :, 1, 1], xyz[0, :, 1, 1])
    assert out[0, 0, 1, 0] == pytest.approx(-1.0, abs=0.02) and out[0, 0, 1, 0] <= -1.0
    with pytest.raises(ValueError, match="bins"):
        expand_to_surface(torch.zeros(1, 1, 3), torch.zeros(1, 3), torch.zeros(1, 10))
