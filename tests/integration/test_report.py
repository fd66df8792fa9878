"""Forecasts for business users: the workbook and CSV of `fournil export`, and the report e-mailed
over SMTP to a real server (aiosmtpd on loopback) that the test reads back, attachment included.
On the served chain's warehouse (`api` fixture: sales, a champion, batch forecasts)."""

from __future__ import annotations

import csv
import datetime as dt
import email
import email.policy
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from openpyxl import load_workbook
from sqlalchemy import func, select

from fournil import export, pipeline
from fournil.db.schema import forecasts
from fournil.report import ReportError
from fournil.settings import Settings
from tests.integration.conftest import Api
from tests.integration.helpers import free_port


def newest_from_warehouse(api: Api, days: int) -> dict[tuple[int, int, dt.date], float]:
    """What the workbook must hold, read straight from the table: the newest forecast date's
    rows for its next `days` days (newest row per store, product and day)."""
    with api.engine.connect() as conn:
        made = conn.execute(select(func.max(forecasts.c.forecast_date))).scalar_one()
        rows = conn.execute(
            select(
                forecasts.c.store_id,
                forecasts.c.product_id,
                forecasts.c.target_date,
                forecasts.c.yhat,
                forecasts.c.created_at,
            )
            .where(
                forecasts.c.forecast_date == made,
                forecasts.c.target_date > made,
                forecasts.c.target_date <= made + dt.timedelta(days=days),
            )
            .order_by(forecasts.c.created_at)
        ).all()
    return {(r.store_id, r.product_id, r.target_date): r.yhat for r in rows}


def read_workbook(content: bytes) -> dict[str, list[tuple[Any, ...]]]:
    book = load_workbook(io.BytesIO(content))
    return {s.title: list(s.iter_rows(values_only=True)) for s in book.worksheets}


def test_the_workbook_has_an_overview_and_a_sheet_per_store(api: Api, tmp_path: Path) -> None:
    data = export.upcoming(api.engine, days=5)
    path = export.write_workbook(data, tmp_path / "forecasts.xlsx")
    sheets = read_workbook(path.read_bytes())
    expected = newest_from_warehouse(api, 5)
    stores = sorted({s for s, _, _ in expected})
    assert next(iter(sheets)) == "Overview" and len(sheets) == 1 + len(stores)
    got: dict[tuple[int, int, dt.date], int] = {}
    for title, rows in list(sheets.items())[1:]:
        store_id = int(title.split()[0])
        assert rows[1] == tuple(export.COLUMNS.values())  # the headings, under a title line
        for day, weekday, product_id, _name, yhat, low, high in rows[2:]:
            assert isinstance(day, dt.datetime)  # a date cell, not text
            assert weekday == day.strftime("%A")
            assert low <= yhat <= high
            got[(store_id, product_id, day.date())] = yhat
    assert got == {k: round(v) for k, v in expected.items()}
    book = load_workbook(path)
    assert book.worksheets[1].freeze_panes == "A3"


def test_fournil_export_writes_the_csv_and_the_workbook(api: Api, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": api.settings.warehouse_url, "COLUMNS": "200"}
    for fmt in ("csv", "xlsx"):
        out = tmp_path / f"f.{fmt}"
        args = ["export", "--format", fmt, "--out", str(out), "--days", "3", "--store", "2"]
        done = subprocess.run(
            [sys.executable, "-m", "fournil", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"wrote {out}" in done.stdout
    expected = {k: v for k, v in newest_from_warehouse(api, 3).items() if k[0] == 2}
    with (tmp_path / "f.csv").open() as fh:
        got = {
            (int(r["store_id"]), int(r["product_id"]), dt.date.fromisoformat(r["target_date"])): (
                float(r["yhat"])
            )
            for r in csv.DictReader(fh)
        }
    assert got == pytest.approx({k: round(v, 1) for k, v in expected.items()})
    assert list(read_workbook((tmp_path / "f.xlsx").read_bytes()))[1].startswith("2 ")


@dataclass
class Inbox:
    """What a real SMTP server on loopback received."""

    port: int
    envelopes: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


def with_report(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"report": settings.report.model_copy(update=changes)})


def test_the_report_is_emailed_with_the_workbook_attached(api: Api, inbox: Inbox) -> None:
    settings = with_report(
        api.settings,
        to="bakery-managers@example.org, ops@example.org",
        sender="forecasts@fournil.example.org",
        smtp_host="127.0.0.1",
        smtp_port=inbox.port,
        days=4,
    )
    result = pipeline.report(api.engine, settings)
    assert result.sent_to == ["bakery-managers@example.org", "ops@example.org"]
    [envelope] = inbox.envelopes
    assert sorted(envelope.rcpt_tos) == ["bakery-managers@example.org", "ops@example.org"]
    mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert mail["From"] == "forecasts@fournil.example.org"
    assert "Fournil forecasts made on" in mail["Subject"] and "4 days" in mail["Subject"]
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None and "one sheet per store" in body.get_content()
    [attachment] = list(mail.iter_attachments())
    assert result.workbook is not None and attachment.get_filename() == result.workbook.name
    sheets = read_workbook(attachment.get_content())
    stores = {s for s, _, _ in newest_from_warehouse(api, 4)}
    assert len(sheets) == 1 + len(stores)
    rows = sum(len(r) - 2 for title, r in sheets.items() if title != "Overview")
    assert rows == len(newest_from_warehouse(api, 4)) == result.rows


def test_fournil_report_sends_through_the_settings_and_fails_in_one_line(
    api: Api, inbox: Inbox, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": api.settings.warehouse_url,
        "FOURNIL_HOME": str(tmp_path / "home"),
        "FOURNIL_REPORT_TO": "shop-12@example.org",
        "FOURNIL_REPORT_SMTP_HOST": "127.0.0.1",
        "FOURNIL_REPORT_SMTP_PORT": str(inbox.port),
    }

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fournil", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    sent = run("report")
    assert sent.returncode == 0, sent.stderr
    assert "sent to shop-12@example.org" in sent.stdout
    assert [e.rcpt_tos for e in inbox.envelopes] == [["shop-12@example.org"]]
    assert list((tmp_path / "home" / "reports").glob("fournil-forecasts-*.xlsx"))
    refused = run("report", FOURNIL_REPORT_SMTP_PORT="9")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and len(lines) == 1, refused.stderr
    assert "cannot send the report through 127.0.0.1:9" in lines[0]
    flow = run("flows", "run", "report")  # what the daily deployment runs
    assert flow.returncode == 0, flow.stdout + flow.stderr
    assert len(inbox.envelopes) == 2


def test_an_unreachable_smtp_server_is_a_report_error(api: Api) -> None:
    settings = with_report(api.settings, to="a@example.org", smtp_host="127.0.0.1", smtp_port=9)
    with pytest.raises(ReportError, match=r"cannot send the report through 127\.0\.0\.1:9"):
        pipeline.report(api.engine, settings)
