"""Scratch databases of a test's own on the test server: created empty, migrated by a child
process (with chosen migration modules, or to a chosen migration), dropped afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tests.support.processes import ROOT

# Runs in a fresh interpreter: migrate with the migration modules in MIGRATION_MODULES_JSON
# (app label to module; empty: the project's own), with the arguments in MIGRATE_ARGS_JSON.
MIGRATE = """
import json, os
import django
from django.conf import settings
settings.MIGRATION_MODULES = json.loads(os.environ["MIGRATION_MODULES_JSON"])
django.setup()
from django.core.management import call_command
call_command("migrate", *json.loads(os.environ["MIGRATE_ARGS_JSON"]), verbosity=0)
"""


def database_url(name: str) -> str:
    """Return DATABASE_URL with `name` in place of the database's name."""
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + name))


def migrate(name: str, *args: str, modules: dict[str, str] | None = None) -> None:
    """Run `migrate *args` on database `name` in a child process; fail with its output."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(name),
        DJANGO_SETTINGS_MODULE="searchsite.settings",
        MIGRATION_MODULES_JSON=json.dumps(modules or {}),
        MIGRATE_ARGS_JSON=json.dumps(list(args)),
    )
    completed = subprocess.run(
        [sys.executable, "-c", MIGRATE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-4000:]


@contextlib.contextmanager
def scratch_databases(*labels: str) -> Iterator[list[str]]:
    """Yield the names of new empty databases (one per label), dropped on the way out."""
    names = [f"scratch_{uuid.uuid4().hex[:10]}_{label}" for label in labels]
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield names
    finally:
        with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
