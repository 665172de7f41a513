"""An error raised in a DataLoader worker reaches the main process with its own message, not torch's traceback text
(torch re-raises it as ``type(error)("Caught <type> in DataLoader worker process N.\\nOriginal Traceback ...")``)."""

import pytest
from torch._utils import ExceptionWrapper

from bopnp.errors import BopnpError, CheckpointError, ConfigError, DatasetError, unwrap_worker_message


def _through_a_worker(exc: BaseException, where: str = "in DataLoader worker process 0") -> BaseException:
    """``exc`` raised, wrapped as a DataLoader worker wraps it, and re-raised as the main process re-raises it."""
    try:
        try:
            raise ValueError("an error handled before")  # a chained cause: its traceback comes first
        except ValueError:
            raise exc  # noqa: B904
    except BaseException:
        wrapper = ExceptionWrapper(where=where)
    with pytest.raises(type(exc)) as caught:
        wrapper.reraise()
    return caught.value


@pytest.mark.parametrize("cls", [BopnpError, ConfigError, CheckpointError])
@pytest.mark.parametrize("where", ["in DataLoader worker process 3", "in pin memory thread for device 0"])
def test_a_workers_error_keeps_its_message(cls, where):
    message = "a.npy: two lines\nthe second: rebuild it"
    got = _through_a_worker(cls(message), where)
    assert type(got) is cls and str(got) == message
    assert got.worker_traceback.startswith(f"Caught {cls.__name__} {where}.\nOriginal Traceback")
    assert "an error handled before" in got.worker_traceback


def test_a_workers_dataset_error_keeps_its_problems():
    got = _through_a_worker(DatasetError("2 problems in scene_gt.json", ["row 1: bad", "row 7: worse"]))
    assert got.problems == ["row 1: bad", "row 7: worse"]
    assert str(got) == str(DatasetError("2 problems in scene_gt.json", ["row 1: bad", "row 7: worse"]))


def test_an_empty_message_and_other_text_are_left_alone():
    assert str(_through_a_worker(ConfigError())) == ""
    text = "Caught ConfigError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
    assert unwrap_worker_message(DatasetError, text) == (text, None)  # another type's header
    assert unwrap_worker_message(ConfigError, "Caught ConfigError: nothing like torch's") == (
        "Caught ConfigError: nothing like torch's",
        None,
    )
    assert str(ConfigError("plain")) == "plain" and ConfigError("plain").worker_traceback is None
