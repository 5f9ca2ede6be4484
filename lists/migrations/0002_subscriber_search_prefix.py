"""Prefix search on the subscriber table (lists.filters): Postgres only.

``lower(email) LIKE 'abc%'`` can use a btree index only with text_pattern_ops (or in
the C collation), so the list page's search gets two such indexes, led by the
account so one account's search never walks another's rows. SQLite has no operator
classes and scans, which is fine for the embedded default.
"""

from django.db import migrations

INDEXES = [
    (
        "subscriber_email_prefix",
        "lists_subscriber (account_id, lower(email) text_pattern_ops)",
    ),
    (
        "subscriber_name_prefix",
        "lists_subscriber (account_id, lower(name) text_pattern_ops)",
    ),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, target in INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("lists", "0001_initial")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
