from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fournil.settings import Settings, SettingsError


def test_defaults_are_embedded_and_live_under_fournil_home(isolated_settings: Path) -> None:
    settings = Settings()
    assert settings.mode == "local"
    assert settings.warehouse_url == f"sqlite:///{isolated_settings.resolve() / 'warehouse.db'}"
    assert settings.tracking_uri.startswith("sqlite:///")
    assert str(isolated_settings.resolve()) in settings.tracking_uri
    assert settings.prefect_api_url is None


def test_home_is_not_read_from_the_users_home_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOURNIL_HOME")
    monkeypatch.setenv("HOME", "/somewhere/else")
    assert Settings().home == Path.cwd().resolve() / ".fournil"  # absolute, in the project


def test_a_notebook_in_a_sub_folder_reads_the_project_s_env_and_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel runs in notebooks/: it must find the project's .env, and a relative
    FOURNIL_HOME there means the project's folder, not notebooks/ (it found no model)."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / ".env").write_text("FOURNIL_HOME=.fournil\nFOURNIL_HORIZON=9\n")
    monkeypatch.delenv("FOURNIL_HOME")
    monkeypatch.chdir(project / "notebooks")
    settings = Settings()
    assert settings.horizon == 9
    assert settings.home_dir == (project / ".fournil").resolve()
    assert settings.warehouse_url == f"sqlite:///{(project / '.fournil').resolve()}/warehouse.db"


def test_without_an_env_file_the_nearest_fournil_folder_is_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "project" / ".fournil").mkdir(parents=True)
    (tmp_path / "project" / "notebooks").mkdir()
    monkeypatch.delenv("FOURNIL_HOME")
    monkeypatch.chdir(tmp_path / "project" / "notebooks")
    assert Settings().home_dir == (tmp_path / "project" / ".fournil").resolve()


def test_database_url_switches_the_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://fournil:s3cret@db:5432/warehouse"
    monkeypatch.setenv("DATABASE_URL", url)
    assert Settings().warehouse_url == url


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FOURNIL_TIMEZONE=America/Montreal\n")
    assert Settings().timezone == "America/Montreal"


def test_production_refuses_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOURNIL_MODE", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:a-real-one@db/w")
    monkeypatch.setenv("FOURNIL_SECRET_KEY", "change-me")
    with pytest.raises(SettingsError, match="FOURNIL_SECRET_KEY is a placeholder"):
        Settings()


def test_production_refuses_placeholder_database_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FOURNIL_MODE", "production")
    monkeypatch.setenv("FOURNIL_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:changeme@db/w")
    with pytest.raises(SettingsError, match="password in DATABASE_URL is a placeholder"):
        Settings()


def test_production_starts_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOURNIL_MODE", "production")
    monkeypatch.setenv("FOURNIL_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:Zq8-long-random@db/w")
    assert Settings().mode == "production"


def test_local_mode_allows_the_placeholder() -> None:
    assert Settings().secret_key.get_secret_value() == "change-me"


def test_unknown_time_zone_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOURNIL_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings()


def test_grouped_settings_keep_their_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("FOURNIL_API_WORKERS=3\nFOURNIL_API_PORT=7000\n")
    monkeypatch.setenv("FOURNIL_API_PORT", "9001")  # the environment wins over .env
    monkeypatch.setenv("FOURNIL_GATE_TOLERANCE", "0.05")
    monkeypatch.setenv("FOURNIL_ETL_CHUNK_ROWS", "1234")
    monkeypatch.setenv("FOURNIL_ETL_CRON", "0 5 * * *")  # not an ETL group setting
    settings = Settings()
    assert (settings.api.port, settings.api.workers) == (9001, 3)
    assert settings.gate.tolerance == 0.05
    assert settings.etl.chunk_rows == 1234
    assert settings.etl_cron == "0 5 * * *"


def test_grouped_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOURNIL_API_CHALLENGER_SHARE", "1.5")
    with pytest.raises(ValidationError, match="challenger_share"):
        Settings()


def test_training_row_sampling_comes_from_settings_unless_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fournil.models.training import default_spec

    monkeypatch.setenv("FOURNIL_TRAIN_ORIGIN_STRIDE", "7")
    monkeypatch.setenv("FOURNIL_TRAIN_HISTORY_DAYS", "365")
    monkeypatch.setenv("FOURNIL_TRAIN_CRON", "0 4 * * 1")  # not a training-rows setting
    settings = Settings()
    spec = default_spec(settings)
    assert (spec.origin_stride, spec.train_days, spec.horizon) == (7, 365, settings.horizon)
    assert spec.params()["origin_stride"] == 7  # what MLflow logs as model.origin_stride
    given = default_spec(settings, origin_stride=3, horizon=None, seed=5)
    assert (given.origin_stride, given.train_days, given.seed) == (3, 365, 5)
    assert settings.train_cron == "0 4 * * 1"


def test_absent_days_unset_by_compose_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOURNIL_ABSENT_DAYS", "")
    assert Settings().absent_days is None
    monkeypatch.setenv("FOURNIL_ABSENT_DAYS", "zero")
    assert Settings().absent_days == "zero"
    monkeypatch.setenv("FOURNIL_ABSENT_DAYS", "0")
    with pytest.raises(ValidationError, match="FOURNIL_ABSENT_DAYS"):
        Settings()
