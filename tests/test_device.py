"""bopnp.device: the one place a --device choice becomes a torch.device."""

import pytest
import torch

from bopnp.device import resolve_device
from bopnp.errors import ConfigError


def test_choices_map_to_devices_and_bad_ones_are_refused():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="auto, cpu or cuda"):
        resolve_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_to_use_the_cpu():
    with pytest.raises(ConfigError, match="--device cpu"):
        resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_counting_cuda_syncs_without_a_gpu_says_so():
    from bopnp.device import count_cuda_syncs

    with pytest.raises(ConfigError, match="needs a CUDA device"):
        count_cuda_syncs(lambda: None)


@pytest.mark.gpu
def test_count_cuda_syncs_counts_host_reads_and_nothing_else():
    from bopnp.device import count_cuda_syncs

    x = torch.arange(10.0, device="cuda")
    n, out = count_cuda_syncs(lambda: (x * 2).sum())
    assert n == 0 and out.device.type == "cuda"  # queued work alone: no wait
    n, out = count_cuda_syncs(lambda: [float(x.sum()), bool((x > 3).any()), x.nonzero()])
    assert n >= 3 and out[0] == 45.0  # one wait per read at least
    assert torch.cuda.get_sync_debug_mode() == 0  # the mode is put back
