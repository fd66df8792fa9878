"""The data contract of the drops Fournil ingests: columns, types, rules and reasons.

A drop file is read with every field as text. Validation then happens in two steps:

1. *parsing* turns text into types (whole numbers, numbers, ISO dates, booleans); a field that
   does not parse gives a reason such as ``units_sold: 'abc' is not a whole number``;
2. a *pandera* schema checks the parsed rows: ranges, allowed values, dates not in the future,
   unknown stores or products.

Duplicate keys are the loader's to catch (`fournil.etl.load.KeyIndex`), across the chunks of a
file, with the line of the first row that had the key.

Every failing row is kept with all of its reasons, joined by ``; ``. README documents the same
contract for the people who send the files.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc

Kind = Literal["stores", "products", "sales"]
FieldType = Literal["int", "float", "date", "bool", "str"]

TRUE_VALUES = frozenset({"1", "true", "t", "yes", "y"})
FALSE_VALUES = frozenset({"0", "false", "f", "no", "n"})
DATE_FORMAT = "%Y-%m-%d"
EARLIEST_DATE = pd.Timestamp("1990-01-01")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    required: bool = True  # the column must be in the file
    nullable: bool = False  # a row may leave the field empty
    target: str | None = None  # warehouse column, if named differently
    doc: str = ""

    @property
    def column(self) -> str:
        return self.target or self.name


@dataclass(frozen=True)
class Contract:
    kind: Kind
    table: str
    fields: tuple[FieldSpec, ...]
    key: tuple[str, ...]  # file column names

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def column(self, name: str) -> str:
        """The warehouse column of the file column `name`."""
        return next(f.column for f in self.fields if f.name == name)

    @property
    def key_columns(self) -> list[str]:
        return [self.column(k) for k in self.key]


SALES = Contract(
    kind="sales",
    table="sales",
    fields=(
        FieldSpec("date", "date", target="sale_date", doc="day of the sales, YYYY-MM-DD"),
        FieldSpec("store_id", "int", doc="a store of stores.csv"),
        FieldSpec("product_id", "int", doc="a product of products.csv"),
        FieldSpec("units_sold", "int", doc="whole units sold that day, >= 0"),
        FieldSpec("price", "float", doc="unit price charged, > 0"),
        FieldSpec("promo", "bool", doc="on promotion that day: 0/1/true/false"),
        FieldSpec(
            "stock_out",
            "bool",
            required=False,
            nullable=True,
            doc="sold out that day: 0/1/true/false, empty if unknown",
        ),
    ),
    key=("date", "store_id", "product_id"),
)

STORES = Contract(
    kind="stores",
    table="stores",
    fields=(
        FieldSpec("store_id", "int", doc="positive whole number, unique"),
        FieldSpec("name", "str"),
        FieldSpec("city", "str"),
        FieldSpec("region", "str"),
        FieldSpec("opened_on", "date", doc="first trading day, YYYY-MM-DD"),
        FieldSpec("closed_on", "date", required=False, nullable=True),
        FieldSpec("size_m2", "float", required=False, nullable=True),
    ),
    key=("store_id",),
)

PRODUCTS = Contract(
    kind="products",
    table="products",
    fields=(
        FieldSpec("product_id", "int", doc="positive whole number, unique"),
        FieldSpec("name", "str"),
        FieldSpec("family", "str", doc="e.g. viennoiserie, pain, patisserie"),
        FieldSpec("base_price", "float", doc="regular unit price, > 0"),
        FieldSpec("launched_on", "date", required=False, nullable=True),
    ),
    key=("product_id",),
)

CONTRACTS: dict[Kind, Contract] = {c.kind: c for c in (STORES, PRODUCTS, SALES)}
#: Load order: masters before the sales that refer to them.
LOAD_ORDER: tuple[Kind, ...] = ("stores", "products", "sales")


@dataclass
class Context:
    """What validation needs to know beyond the file: the warehouse's masters and today."""

    today: dt.date
    known_stores: Mapping[int, dt.date] = field(default_factory=dict)  # id -> opened_on
    known_products: frozenset[int] = frozenset()
    max_units: int = 100_000
    #: each product's regular price (products.csv's base_price): a price more than
    #: `max_price_ratio` times above or below it is implausible for that product
    base_prices: Mapping[int, float] = field(default_factory=dict)
    max_price_ratio: float = 20.0
    max_price: float | None = None  # an absolute cap on top, if set

    @functools.cached_property
    def sorted_store_ids(self) -> np.ndarray:
        return np.sort(np.fromiter(self.known_stores, dtype=np.int64, count=len(self.known_stores)))

    @functools.cached_property
    def sorted_product_ids(self) -> np.ndarray:
        return np.sort(np.fromiter(self.known_products, dtype=np.int64))


@dataclass
class Validated:
    """One chunk after validation: typed good rows, and the bad rows' positions with reasons."""

    good: pa_arrow.Table  # warehouse column names, typed
    good_positions: np.ndarray  # positions in the chunk
    bad_positions: np.ndarray
    bad_reasons: list[str]
    warnings: dict[str, int]  # warning text -> number of rows


# --- step 1: parsing (Arrow compute kernels: vectorised, no Python loop per row) -------------

_PATTERNS = {
    "int": r"^[+-]?\d{1,12}(\.0*)?$",
    "float": r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$",
    "date": r"^\d{4}-\d{2}-\d{2}$",
}
_WORDING = {
    "int": "is not a whole number",
    "float": "is not a number",
    "date": "is not a date (expected YYYY-MM-DD)",
    "bool": "is not one of 0/1/true/false",
}
_ARROW_TYPES = {
    "int": pa_arrow.int64(),
    "float": pa_arrow.float64(),
    "date": pa_arrow.date32(),
    "bool": pa_arrow.bool_(),
    "str": pa_arrow.string(),
}


def _parse_column(raw: pa_arrow.Array, spec: FieldSpec) -> tuple[pa_arrow.Array, np.ndarray]:
    """Typed values (null where empty or invalid) and a mask of fields that failed to parse."""
    text = pc.utf8_trim_whitespace(raw.cast(pa_arrow.string()))
    empty = pc.fill_null(pc.equal(text, ""), True)
    if spec.type == "str":
        return pc.if_else(empty, None, text), np.zeros(len(raw), bool)
    if spec.type == "bool":
        lowered = pc.utf8_lower(text)
        is_true = pc.is_in(lowered, value_set=pa_arrow.array(sorted(TRUE_VALUES)))
        is_false = pc.is_in(lowered, value_set=pa_arrow.array(sorted(FALSE_VALUES)))
        valid = pc.or_(is_true, is_false)
        values = pc.if_else(valid, is_true, pa_arrow.scalar(None, pa_arrow.bool_()))
    else:
        valid = pc.fill_null(pc.match_substring_regex(text, _PATTERNS[spec.type]), False)
        clean = pc.if_else(valid, text, pa_arrow.scalar(None, pa_arrow.string()))
        if spec.type == "int":
            clean = pc.replace_substring_regex(clean, r"^\+|\.0*$", "")
            values = clean.cast(pa_arrow.int64())
            too_big = pc.fill_null(pc.greater(pc.abs(values), 2**31 - 1), False)
            valid = pc.and_(valid, pc.invert(too_big))
            values = pc.if_else(too_big, pa_arrow.scalar(None, pa_arrow.int64()), values)
        elif spec.type == "float":
            values = clean.cast(pa_arrow.float64())
            finite = pc.fill_null(pc.is_finite(values), True)
            valid = pc.and_(valid, finite)
            values = pc.if_else(finite, values, pa_arrow.scalar(None, pa_arrow.float64()))
        else:
            stamps = pc.strptime(clean, format=DATE_FORMAT, unit="s", error_is_null=True)
            # strptime rolls 2026-02-30 over to March: a real date formats back to its text
            round_trip = pc.equal(pc.strftime(stamps, format=DATE_FORMAT), clean)
            valid = pc.and_(valid, pc.fill_null(round_trip, False))
            values = pc.if_else(valid, stamps, pa_arrow.scalar(None, stamps.type)).cast(
                pa_arrow.date32()
            )
    bad = pc.and_(pc.invert(pc.fill_null(valid, False)), pc.invert(empty))
    return values, np.asarray(bad.to_numpy(zero_copy_only=False), dtype=bool)


# --- step 2: checks ----------------------------------------------------------------------------


def _schema(contract: Contract, ctx: Context) -> pa.DataFrameSchema:
    today = pd.Timestamp(ctx.today)
    not_future = pa.Check.le(today, error=f"is in the future (today is {ctx.today})")
    not_ancient = pa.Check.ge(EARLIEST_DATE, error="is before 1990")
    positive_id = pa.Check.gt(0, error="must be a positive id")
    columns: dict[str, pa.Column] = {}
    for spec in contract.fields:
        checks: list[pa.Check] = []
        if spec.type == "date":
            checks = [not_ancient, not_future] if contract.kind == "sales" else [not_ancient]
        columns[spec.name] = pa.Column(nullable=spec.nullable, checks=checks)
    if contract.kind == "sales":
        columns["store_id"].checks = [
            pa.Check.isin(list(ctx.known_stores), error="is not a known store (see stores.csv)")
        ]
        columns["product_id"].checks = [
            pa.Check.isin(list(ctx.known_products), error="is not a known product")
        ]
        columns["units_sold"].checks = [
            pa.Check.ge(0, error="is negative"),
            pa.Check.le(ctx.max_units, error=f"is implausibly large (> {ctx.max_units})"),
        ]
        columns["price"].checks = [pa.Check.gt(0, error="must be positive")]
        if ctx.max_price is not None:
            columns["price"].checks.append(
                pa.Check.le(ctx.max_price, error=f"is implausibly large (> {ctx.max_price:g})")
            )
    elif contract.kind == "stores":
        columns["store_id"].checks = [positive_id]
        columns["size_m2"].checks = [pa.Check.gt(0, error="must be positive")]
    else:
        columns["product_id"].checks = [positive_id]
        columns["base_price"].checks = [pa.Check.gt(0, error="must be positive")]
    return pa.DataFrameSchema(columns, strict=False)


def _describe_failure(column: str, check: str, case: object, contract: Contract) -> str:
    if check == "not_nullable":
        return f"{column} is missing"
    value = case.date() if isinstance(case, pd.Timestamp) else case
    is_int = any(f.name == column and f.type == "int" for f in contract.fields)
    if isinstance(value, float) and value.is_integer() and is_int:
        value = int(value)  # pandera reports failure cases of mixed columns as floats
    return f"{column}: {value} {check}"


def _to_pandas(table: pa_arrow.Table) -> pd.DataFrame:
    mapping = {
        pa_arrow.int64(): pd.Int64Dtype(),
        pa_arrow.float64(): pd.Float64Dtype(),
        pa_arrow.bool_(): pd.BooleanDtype(),
    }
    # dates become datetime64[s] (not [ns], which ends in 2262 and would overflow on typos)
    return table.to_pandas(types_mapper=mapping.get, date_as_object=False)


def validate(raw: pa_arrow.Table, contract: Contract, ctx: Context) -> Validated:
    """Validate a chunk of text rows against `contract`."""
    n = raw.num_rows
    problems: dict[int, list[str]] = {}
    columns: dict[str, pa_arrow.Array] = {}
    for spec in contract.fields:
        if spec.name not in raw.column_names:
            continue
        source = raw.column(spec.name).combine_chunks()
        values, bad = _parse_column(source, spec)
        columns[spec.name] = values
        if spec.required and not spec.nullable:
            missing = ~bad & np.asarray(values.is_null().to_numpy(zero_copy_only=False), bool)
            for pos in np.flatnonzero(missing):
                problems.setdefault(int(pos), []).append(f"{spec.name} is missing")
        for pos in np.flatnonzero(bad):
            shown = source[int(pos)].as_py()
            problems.setdefault(int(pos), []).append(
                f"{spec.name}: {shown!r} {_WORDING[spec.type]}"
            )
    parsed = pa_arrow.table(columns)

    parse_ok = np.ones(n, bool)
    parse_ok[list(problems)] = False
    parse_ok_positions = np.flatnonzero(parse_ok)
    checked = _to_pandas(parsed.filter(pa_arrow.array(parse_ok)))
    checked.index = parse_ok_positions
    try:
        _schema(contract, ctx).validate(checked, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        for column, check, case, index in cases[
            ["column", "check", "failure_case", "index"]
        ].itertuples(index=False):
            row = int(index)
            problems.setdefault(row, []).append(
                _describe_failure(str(column), str(check), case, contract)
            )

    if contract.kind == "sales" and ctx.base_prices and len(checked):
        _check_price_ratio(checked, ctx, problems)

    bad_positions = np.array(sorted(problems), dtype=np.int64)
    keep = np.ones(n, bool)
    keep[bad_positions] = False
    good = parsed.filter(pa_arrow.array(keep)).rename_columns(
        [contract.column(name) for name in parsed.column_names]
    )
    warnings: dict[str, int] = {}
    if contract.kind == "sales" and good.num_rows and ctx.known_stores:
        store_ids = np.asarray(good.column("store_id").to_numpy(), dtype=np.int64)
        ids = np.fromiter(ctx.known_stores, dtype=np.int64)
        opened = np.array(list(ctx.known_stores.values()), dtype="datetime64[D]")
        order = np.argsort(ids)
        where = order[np.searchsorted(ids, store_ids, sorter=order)]
        sale_days = good.column("sale_date").to_numpy().astype("datetime64[D]")
        early = int((sale_days < opened[where]).sum())
        if early:
            warnings["rows dated before their store's opening date"] = early
    return Validated(
        good=good,
        good_positions=np.flatnonzero(keep),
        bad_positions=bad_positions,
        bad_reasons=["; ".join(problems[int(p)]) for p in bad_positions],
        warnings=warnings,
    )


def _check_price_ratio(checked: pd.DataFrame, ctx: Context, problems: dict[int, list[str]]) -> None:
    """Prices far from their product's own base price (either way): a typo in cents, or a
    price of another product. Relative, so a chain selling in yen passes as one in euros."""
    ids = np.fromiter(ctx.base_prices, dtype=np.int64, count=len(ctx.base_prices))
    bases = np.fromiter(ctx.base_prices.values(), dtype=np.float64, count=len(ids))
    order = np.argsort(ids)
    product = checked["product_id"].to_numpy(np.float64, na_value=np.nan)
    price = checked["price"].to_numpy(np.float64, na_value=np.nan)
    known = np.isfinite(product) & np.isfinite(price) & (price > 0)
    where = np.searchsorted(ids, np.where(known, product, 0).astype(np.int64), sorter=order)
    where = order[np.clip(where, 0, len(ids) - 1)]
    known &= ids[where] == np.where(known, product, -1)
    base = np.where(known, bases[where], np.nan)
    with np.errstate(all="ignore"):
        ratio = price / base
    limit = ctx.max_price_ratio
    off = known & ((ratio > limit) | (ratio < 1 / limit))
    rows = checked.index.to_numpy(np.int64)
    for position in np.flatnonzero(off):
        row = int(rows[position])
        problems.setdefault(row, []).append(
            f"price: {price[position]:g} is implausible for product {int(product[position])} "
            f"({ratio[position]:.3g}x its base price {base[position]:g}; "
            f"limit {limit:g}x either way)"
        )


def kind_of(name: str) -> Kind | None:
    """The contract a drop file follows, from its name (`sales_2024-05.csv` -> sales)."""
    stem = name.lower()
    for kind in LOAD_ORDER:
        if stem.startswith(kind):
            return kind
    return None
