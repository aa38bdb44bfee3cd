"""Create the configured database when its server lacks it (used by `make run`)."""

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql


class Command(BaseCommand):
    help = "Create the database named in DATABASE_URL if it does not exist yet."

    def handle(self, *args: object, **options: object) -> None:
        db = settings.DATABASES["default"]
        params = {
            "dbname": "postgres",
            "user": db.get("USER") or None,
            "password": db.get("PASSWORD") or None,
            "host": db.get("HOST") or None,
            "port": db.get("PORT") or None,
            "connect_timeout": 5,
        }
        try:
            with psycopg.connect(**{k: v for k, v in params.items() if v is not None}, autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
                    self.stdout.write(f"created database {db['NAME']}")
        except psycopg.Error as error:
            raise CommandError(f"cannot reach PostgreSQL at {db.get('HOST')}:{db.get('PORT')}: {error}") from error
