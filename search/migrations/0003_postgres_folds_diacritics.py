"""PostgreSQL folds diacritics as SQLite's FTS5 does (`cafe` finds `café`): a text search
configuration `mythline_search`, the `simple` one with the `unaccent` dictionary before it, for the
indexed column, the queries and the highlights (search/selectors.py asks which configuration the
database has: `PG_CONFIG`). Where the `unaccent` extension cannot be created (not installed,
or the database user may not create it) the index keeps `simple`, diacritics kept, and the
migration says so; running it again later, once the extension can be created, folds them."""
from django.db import DatabaseError, migrations, transaction

CONFIG = "mythline_search"
INDEX = "search_messagetext_tsv_idx"


def _column(config: str) -> list[str]:
    return [f"DROP INDEX IF EXISTS {INDEX}",
            "ALTER TABLE search_messagetext DROP COLUMN IF EXISTS tsv",
            "ALTER TABLE search_messagetext ADD COLUMN tsv tsvector "
            f"GENERATED ALWAYS AS (to_tsvector('{config}'::regconfig, translate(text, '<>', '  '))) STORED",
            f"CREATE INDEX {INDEX} ON search_messagetext USING GIN (tsv)"]


# Every token type of the `simple` parser that can hold a letter with a diacritic.
WORDS = "word, hword, hword_part, numword, numhword, hword_numpart"


def fold(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return  # SQLite's FTS5 table folds them already (unicode61 remove_diacritics 2)
    qn = connection.ops.quote_name
    try:
        with transaction.atomic(using=connection.alias):  # a savepoint: a refusal leaves `simple` as it was
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
            with connection.cursor() as cursor:
                # The dictionary, wherever the extension lives (some hosts keep extensions in a
                # schema of their own, off the search_path).
                cursor.execute("SELECT n.nspname FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace "
                               "WHERE d.dictname = 'unaccent' ORDER BY n.nspname = current_schema() DESC LIMIT 1")
                row = cursor.fetchone()
                if row is None:
                    raise DatabaseError("the unaccent extension has no `unaccent` dictionary")
                cursor.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = %s", [CONFIG])
                exists = cursor.fetchone() is not None
            if not exists:
                schema_editor.execute(f"CREATE TEXT SEARCH CONFIGURATION {CONFIG} (COPY = simple)")
                schema_editor.execute(f"ALTER TEXT SEARCH CONFIGURATION {CONFIG} "
                                      f"ALTER MAPPING FOR {WORDS} WITH {qn(row[0])}.unaccent, simple")
    except DatabaseError as exc:
        print(f"\n  search: PostgreSQL's unaccent extension could not be used ({str(exc).strip()}); "
              "search keeps diacritics (`cafe` does not find `café`). Create it (CREATE EXTENSION unaccent) "
              "and run `manage.py migrate search 0002 && manage.py migrate search` to fold them.")
        return
    for sql in _column(CONFIG):
        schema_editor.execute(sql)


def keep(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    for sql in _column("simple"):
        schema_editor.execute(sql)
    schema_editor.execute(f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {CONFIG}")


class Migration(migrations.Migration):
    dependencies = [("search", "0002_index_existing_messages")]

    operations = [migrations.RunPython(fold, keep)]
