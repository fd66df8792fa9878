"""The quarantine view folds a reason's values away, so rows with the same problem count as one
kind of reason."""

import pytest

from fournil.cli.views import reason_kind


def test_reasons_differing_only_in_their_values_are_one_kind() -> None:
    same = [
        "units_sold: 'abc' is not a whole number",
        "units_sold: 'x1' is not a whole number",
        "units_sold: '' is not a whole number",
    ]
    assert {reason_kind(r) for r in same} == {"units_sold: '...' is not a whole number"}
    assert reason_kind("price: -2.5 must be positive") == reason_kind("price: 0 must be positive")
    assert reason_kind("store_id: 77 is not a known store") != reason_kind(
        "product_id: 77 is not a known product"
    )
    assert reason_kind("store_id2: 7 x") == "store_id2: N x"  # names keep their digits
    assert reason_kind("promo: 'maybe' is not one of 0/1/true/false") == (
        "promo: '...' is not one of 0/1/true/false"  # the rule's own numbers stay
    )
    assert reason_kind("date: 2027-01-01 is in the future (today is 2026-11-23)") == (
        "date: DATE is in the future (today is DATE)"
    )
    assert reason_kind("duplicate date/store_id/product_id: line 12 has the same key") == (
        "duplicate date/store_id/product_id: line N has the same key"
    )


def test_printed_commands_run_as_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the virtualenv (its bin/ not on PATH) a printed command names this
    environment's executable by its full path; on PATH, the short name."""
    import os
    import sys
    from pathlib import Path

    from fournil.cli.common import runnable

    bin_dir = Path(sys.executable).parent
    monkeypatch.setenv("PATH", "/nonexistent")
    full = runnable("fournil status --json")
    assert full == f"{bin_dir / 'fournil'} status --json"
    assert os.access(full.split()[0], os.X_OK)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert runnable("fournil status --json") == "fournil status --json"
    assert runnable("no-such-tool x") == "no-such-tool x"
