"""Model instances from a hand-written SELECT, for the few queries every request runs.

Building a query with the ORM costs far more than running it when the query is small and asked
on every request: the access check of a post (a channel, its story and the caller's two roles)
took ~3 ms of `SQLCompiler` work on this project's machine for a query the database answers in
~0.05 ms. `Columns` writes the select list of a model once and turns a row back into an instance
the way the ORM does (the backend's converters, `Model.from_db`), so a hand-written query still
hands out ordinary, fully loaded model instances.

Use it only where a profile shows the ORM's cost; write the SQL with `qn` (quote_name) and
%s placeholders, and keep a test that compares the result with the ORM's.
"""
from django.db import connection as default_connection


class Columns:
    """The concrete columns of `model` under the table alias `alias`."""

    def __init__(self, model, alias: str):
        self.model, self.alias = model, alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)

    def select(self, qn) -> str:
        return ", ".join(f"{self.alias}.{qn(f.column)}" for f in self.fields)

    def load(self, values, connection=default_connection):
        """An instance from `values` (this model's columns, in `select` order), as the ORM loads it."""
        converted = []
        for field, value in zip(self.fields, values):
            col = field.get_col(self.alias)
            for convert in connection.ops.get_db_converters(col) + col.get_db_converters(connection):
                value = convert(value, col, connection)
            converted.append(value)
        return self.model.from_db(connection.alias, self.attnames, converted)


def table(model, qn) -> str:
    return qn(model._meta.db_table)
