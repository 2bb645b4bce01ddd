"""The autouse fixture of tests/conftest.py: a test never reaches the user's own files."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_config_dir, user_data_dir

from taskcell.settings import Settings


def test_a_test_has_its_own_home_data_config_and_database(own_user_folders: Path) -> None:
    home = own_user_folders
    assert Path.home() == home, Path.home()
    assert Path(user_data_dir("taskcell")).is_relative_to(home), user_data_dir("taskcell")
    assert Path(user_config_dir("taskcell")).is_relative_to(home), user_config_dir("taskcell")
    settings = Settings()
    assert settings.database_url == f"sqlite:///{home / 'taskcell.db'}", settings.database_url
    assert os.environ["TASKCELL_CONFIG"] == str(home / "taskcell.toml")
    assert not (home / "taskcell.toml").exists()
    kept = {"TASKCELL_CONFIG", "TASKCELL_DATABASE_URL", "TASKCELL_TEST_POSTGRES_URL"}
    settings_seen = {name for name in os.environ if name.startswith("TASKCELL_")}
    assert settings_seen <= kept, sorted(settings_seen)
