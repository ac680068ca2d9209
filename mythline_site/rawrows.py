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
from django.db import connection as default_connection, connections


class Columns:
    """The concrete columns of `model` under the table alias `alias`."""

    def __init__(self, model, alias: str):
        self.model, self.alias = model, alias
        fields = list(model._meta.concrete_fields)
        self.columns = [f.column for f in fields]
        self.attnames = [f.attname for f in fields]
        self.cols = [f.get_col(alias) for f in fields]  # the expressions the ORM converts through
        self.width = len(fields)
        self.pk_index = self.attnames.index(model._meta.pk.attname)

    def select(self, qn) -> str:
        return ", ".join(f"{self.alias}.{qn(column)}" for column in self.columns)

    def load(self, values, connection=default_connection):
        """An instance from `values` (this model's columns, in `select` order), as the ORM loads it."""
        connection = connections[connection.alias]  # the thread's wrapper, not the proxy, in the loop
        ops = connection.ops
        converted = list(values)
        for i, col in enumerate(self.cols):
            for convert in ops.get_db_converters(col) + col.get_db_converters(connection):
                converted[i] = convert(converted[i], col, connection)
        return self.model.from_db(connection.alias, self.attnames, converted)


def load_row(row, parts: list[Columns], connection=default_connection) -> tuple[list, tuple]:
    """The instances of `parts`, whose columns stand side by side at the start of `row` (None for
    a LEFT JOIN that found nothing: its primary key is NULL), and the row's values after them."""
    objects, start = [], 0
    for part in parts:
        values = row[start:start + part.width]
        objects.append(None if values[part.pk_index] is None else part.load(values, connection))
        start += part.width
    return objects, row[start:]


def table(model, qn) -> str:
    return qn(model._meta.db_table)
