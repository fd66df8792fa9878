"""The quarantine view folds a reason's values away, so rows with the same problem count as one
kind of reason."""

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
