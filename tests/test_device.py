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
