"""`make manage` (python -m searchsite.devstack manage) on a machine where the site never ran."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_database_url() -> str:
    """Return DATABASE_URL naming a database that does not exist yet; drop it afterwards."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    name = f"devstack_fresh_{uuid.uuid4().hex[:8]}"
    yield urlunsplit(parts._replace(path="/" + name))
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_manage_creates_and_migrates_the_database_before_the_command(fresh_database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": fresh_database_url}
    env.pop("SEARCHSITE_TESTING", None)

    result = subprocess.run(
        [sys.executable, "-m", "searchsite.devstack", "manage", "showmigrations", "documents"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "[X] 0001_initial" in result.stdout, result.stdout
    assert "[ ]" not in result.stdout, "every migration must be applied before the command runs"
