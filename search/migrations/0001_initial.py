import django.db.models.deletion
from django.db import migrations, models

# The full-text index, per database (search/models.py). SQLite: an FTS5 table over
# search_messagetext (external content), kept in step by triggers. PostgreSQL: a generated tsvector
# column with a GIN index; `<` and `>` read as spaces, or PostgreSQL's parser would take `<lamp>`
# for an HTML tag and index no word of it (search/selectors.py does the same for highlights).
SQLITE = [
    "CREATE VIRTUAL TABLE search_messagetext_fts USING fts5(text, content='search_messagetext', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER search_messagetext_ai AFTER INSERT ON search_messagetext BEGIN "
    "INSERT INTO search_messagetext_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER search_messagetext_ad AFTER DELETE ON search_messagetext BEGIN "
    "INSERT INTO search_messagetext_fts(search_messagetext_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER search_messagetext_au AFTER UPDATE ON search_messagetext BEGIN "
    "INSERT INTO search_messagetext_fts(search_messagetext_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO search_messagetext_fts(rowid, text) VALUES (new.id, new.text); END",
]
SQLITE_UNDO = ["DROP TRIGGER IF EXISTS search_messagetext_au", "DROP TRIGGER IF EXISTS search_messagetext_ad",
               "DROP TRIGGER IF EXISTS search_messagetext_ai", "DROP TABLE IF EXISTS search_messagetext_fts"]
POSTGRES = [
    "ALTER TABLE search_messagetext ADD COLUMN tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, translate(text, '<>', '  '))) STORED",
    "CREATE INDEX search_messagetext_tsv_idx ON search_messagetext USING GIN (tsv)",
]
POSTGRES_UNDO = ["DROP INDEX IF EXISTS search_messagetext_tsv_idx",
                 "ALTER TABLE search_messagetext DROP COLUMN IF EXISTS tsv"]


def _run(statements):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        for sql in statements.get(vendor, ()):
            schema_editor.execute(sql)
    return run


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("messaging", "0003_message_idempotency_key"),
    ]

    operations = [
        migrations.CreateModel(
            name="MessageText",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("text", models.TextField()),
                ("message", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                                 related_name="search_text", to="messaging.message")),
            ],
            options={"verbose_name": "message text"},
        ),
        migrations.RunPython(_run({"sqlite": SQLITE, "postgresql": POSTGRES}),
                             _run({"sqlite": SQLITE_UNDO, "postgresql": POSTGRES_UNDO})),
    ]
