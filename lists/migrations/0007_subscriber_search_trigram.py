"""Substring search on the subscriber table (lists.filters): Postgres only.

``lower(email) LIKE '%abc%'`` and the same on the name are served by pg_trgm GIN
indexes (gin_trgm_ops on the lowercased columns). pg_trgm is an extension: creating
it needs a superuser (or a database owner on PostgreSQL 13+, as it is trusted). The
indexes are built CONCURRENTLY, so a big table keeps taking writes while they build
(hence a non-atomic migration). SQLite has neither and scans, which is fine for the
embedded default.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

INDEXES = [
    ("subscriber_email_trgm", "lists_subscriber USING gin (lower(email) gin_trgm_ops)"),
    ("subscriber_name_trgm", "lists_subscriber USING gin (lower(name) gin_trgm_ops)"),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, target in INDEXES:
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("lists", "0006_exportjob")]

    operations = [TrigramExtension(), migrations.RunPython(create, drop, elidable=False)]
