"""docs/metrics.md cannot drift from the evaluator: its generated part must be what docs/metrics_examples.py writes
now (the settings read from the evaluator's constants, the fixture's scores and errors from `evaluate`, the
symmetry and width examples from the error functions). Decimals may differ by one unit of their last printed digit
(VSD renders of another GL driver); any other difference fails."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"-?\d+\.\d+|-?\d+")


def _script():
    spec = importlib.util.spec_from_file_location("docs_metrics_examples", REPO / "docs" / "metrics_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same_up_to_last_digit(a: str, b: str) -> bool:
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return False
    for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)):
        if "." not in x:  # counts and settings: exactly
            if x != y:
                return False
        elif abs(float(x) - float(y)) > 1.01 * 10.0 ** -len(x.split(".")[1]):
            return False
    return True


def test_the_document_holds_the_evaluators_numbers():
    m = _script()
    doc = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    written = m.generated_part(doc)
    assert written, "docs/metrics.md lost its generated part (the markers of docs/metrics_examples.py)"
    now = m.generate()
    assert written == now or _same_up_to_last_digit(written, now), (
        "docs/metrics.md differs from the evaluator: run python docs/metrics_examples.py --write"
    )


def test_the_comparison_catches_a_changed_number_or_word():
    assert _same_up_to_last_digit("AR 0.6736 of 13", "AR 0.6737 of 13")
    assert not _same_up_to_last_digit("AR 0.6736 of 13", "AR 0.6746 of 13")
    assert not _same_up_to_last_digit("AR 0.6736 of 13", "AR 0.6736 of 14")
    assert not _same_up_to_last_digit("AR_MSSD 0.7000", "AR_MSPD 0.7000")


@pytest.mark.parametrize("name", ["VSD", "MSSD", "MSPD", "ADD(-S)", "AUC", "errors.csv", "640 / image width", "tau"])
def test_every_reported_score_has_a_section(name):
    assert name in (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
