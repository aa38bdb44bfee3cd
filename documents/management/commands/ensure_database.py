"""Create the configured database when its server lacks it (`make run`, `make manage`)."""

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from psycopg import sql


class Command(BaseCommand):
    help = "Create the database named in DATABASE_URL if it does not exist yet."

    def handle(self, *args: object, **options: object) -> None:
        db = settings.DATABASES["default"]
        # Django's own connection parameters: they carry a socket folder given as `?host=` in the
        # URL (the embedded server's), which HOST alone would miss.
        wanted = ("host", "port", "user", "password", "sslmode", "connect_timeout")
        params = {key: value for key, value in connection.get_connection_params().items() if key in wanted}
        target = params.get("host") or "the default socket"
        try:
            with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
                    self.stdout.write(f"created database {db['NAME']}")
        except psycopg.Error as error:
            raise CommandError(f"cannot reach PostgreSQL at {target}: {error}") from error
