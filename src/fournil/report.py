"""The daily forecast e-mail: the workbook of `fournil.export`, attached, sent over SMTP to
`FOURNIL_REPORT_TO` (plain, STARTTLS or TLS, with a login if the server wants one)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from fournil.export import Upcoming
from fournil.settings import ReportSettings

XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


class ReportError(Exception):
    """The e-mail could not be sent: one line saying why."""


def recipients(settings: ReportSettings) -> list[str]:
    return [a.strip() for a in settings.to.split(",") if a.strip()]


def message(settings: ReportSettings, data: Upcoming, workbook: Path) -> EmailMessage:
    made = data.forecast_date.isoformat() if data.forecast_date else "-"
    stores = data.frame["store_id"].nunique() if not data.frame.empty else 0
    mail = EmailMessage()
    mail["Subject"] = f"Fournil forecasts made on {made}: {stores} stores, {settings.days} days"
    mail["From"] = settings.sender
    mail["To"] = ", ".join(recipients(settings))
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    lines = [
        "Good morning,",
        "",
        f"Attached: the forecasts made on {made} for the next {settings.days} days, one sheet "
        "per store (units per product and day, with a low and a high that the actual sales "
        "fall between four days in five).",
        "",
        f"Models: {', '.join(data.models) or '-'}.",
        "",
        "-- Fournil",
    ]
    mail.set_content("\n".join(lines))
    mail.add_attachment(
        workbook.read_bytes(), maintype=XLSX[0], subtype=XLSX[1], filename=workbook.name
    )
    return mail


def send(settings: ReportSettings, mail: EmailMessage) -> None:
    """Send `mail` (ReportError with one line when the server refuses or cannot be reached)."""
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.smtp_timeout_seconds
    try:
        if settings.smtp_security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if settings.smtp_security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                password = (
                    settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                )
                client.login(settings.smtp_user, password)
            refused = client.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReportError(f"cannot send the report through {host}:{port}: {reason}") from None
    if refused:
        raise ReportError(f"the SMTP server refused: {', '.join(sorted(refused))}")
