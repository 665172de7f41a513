"""all_finite: the same answer as isfinite(...).all() per item, whatever the mix of inf, -inf and NaN."""

import pytest
import torch

from bopnp.pnp.finite import all_finite


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_finite_equals_isfinite_all_per_item(dtype):
    gen = torch.Generator().manual_seed(0)
    B = 400
    a, b, c = (
        torch.randn(B, dtype=dtype, generator=gen),
        torch.randn(B, 6, dtype=dtype, generator=gen),
        torch.randn(B, 6, 6, dtype=dtype, generator=gen),
    )
    for t in (a, b.view(-1), c.view(-1)):  # sprinkle every kind of non-finite value, some items get several
        idx = torch.randint(0, t.numel(), (60,), generator=gen)
        t[idx] = torch.tensor([float("inf"), float("-inf"), float("nan")], dtype=dtype).repeat(20)
    c[7, 0, 0], c[7, 5, 5] = float("inf"), float("-inf")  # opposite infinities in one item
    ref = torch.isfinite(a) & torch.isfinite(b).all(-1) & torch.isfinite(c).flatten(1).all(-1)
    got = all_finite(a, b, c)
    assert ref.any() and (~ref).any()
    assert torch.equal(got, ref)
    assert torch.equal(all_finite(c), torch.isfinite(c).flatten(1).all(-1))
