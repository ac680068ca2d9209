"""Writes of the search index. A message's text is indexed in the transaction that stores it.

`index_posted` is called by messaging.services when it stores a message (the one way a message
is stored; a plain post on Postgres writes the same row, `message_text` into `TEXT_TABLE`, in the
statement that stores the message): one INSERT of its extracted text (search/extract.py) on the same connection and
transaction as the message's own, and the database's full-text index follows (an FTS5 trigger on
SQLite, a generated tsvector column on PostgreSQL).

Relations in the log (issue #17: a message with `rel_type` and `relates_to`) are not indexed
themselves: an edit (`replace`) indexes its target with the new payload (`payload.payload`), a
deletion (`redact`) takes its target out of search, a reaction changes nothing. So search finds a
message by its current text, and never by a text taken back. Any other writer that changes what a
message says calls `reindex_message(message, payload=...)` or `unindex_message(message.pk)` in its
transaction.
"""
from django.db import connections, transaction

from messaging.models import Message
from search.extract import message_text
from search.models import MessageText

_TABLE = MessageText._meta.db_table
TEXT_TABLE = _TABLE  # messaging's one-statement post on Postgres inserts its row with the message's
_MESSAGE_PK = Message._meta.pk


def _insert(connection, message_pk, text: str) -> None:
    # Hand-written: the ORM's create() costs more than the INSERT itself on the hot path.
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {_TABLE} (message_id, text) VALUES (%s, %s)",
                       [_MESSAGE_PK.get_db_prep_value(message_pk, connection), text])


def index_posted(message: Message, *, using: str = "default") -> None:
    """A message just stored: index it (one INSERT), or apply it to its target if it is a relation."""
    if message.rel_type is not None:
        _apply_relation(message, message.rel_type, using=using)
    else:
        _insert(connections[using], message.pk, message_text(message.msg_type, message.payload))


def index_posted_many(messages: list[Message], *, using: str = "default") -> None:
    """`index_posted` for the messages of a batch: the plain ones in one executemany."""
    connection = connections[using]
    rows = []
    for message in messages:
        if message.rel_type is not None:
            _apply_relation(message, message.rel_type, using=using)
        else:
            rows.append([_MESSAGE_PK.get_db_prep_value(message.pk, connection),
                         message_text(message.msg_type, message.payload)])
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {_TABLE} (message_id, text) VALUES (%s, %s)", rows)


def _apply_relation(relation: Message, rel_type: str, *, using: str) -> None:
    """An edit re-indexes its target with the new payload; a deletion un-indexes it (search/services.py)."""
    target_id = relation.relates_to_id
    if rel_type == "replace":
        target = Message.objects.using(using).filter(pk=target_id).only("pk", "msg_type").first()
        new = relation.payload.get("payload") if isinstance(relation.payload, dict) else None
        if target is not None and isinstance(new, dict):
            reindex_message(target, payload=new, using=using)
    elif rel_type == "redact":
        unindex_message(target_id, using=using)


def reindex_message(message: Message, *, payload=None, using: str = "default") -> None:
    """Index `message` with `payload` (default: its own): the hook for edits. Idempotent."""
    text = message_text(message.msg_type, message.payload if payload is None else payload)
    with transaction.atomic(using=using):
        updated = MessageText.objects.using(using).filter(message_id=message.pk).update(text=text)
        if not updated:
            _insert(connections[using], message.pk, text)


def unindex_message(message_id, *, using: str = "default") -> None:
    """Take a message out of search (the hook for deletions): it is found no more."""
    MessageText.objects.using(using).filter(message_id=message_id).delete()


def reindex_all(*, batch: int = 1000, using: str = "default") -> int:
    """Index every message from its payload again (`manage.py search_reindex`). Returns how many."""
    count = 0
    # Relations in the log are applied to their targets, never indexed themselves.
    rows = Message.objects.using(using).order_by("pk").filter(rel_type__isnull=True)
    rows = rows.values_list("pk", "msg_type", "payload")
    chunk = []

    def flush():
        ids = [pk for pk, _ in chunk]
        with transaction.atomic(using=using):
            MessageText.objects.using(using).filter(message_id__in=ids).delete()
            MessageText.objects.using(using).bulk_create(MessageText(message_id=pk, text=text) for pk, text in chunk)
            # the edits and deletions of these messages, in the order they were posted
            for relation in (Message.objects.using(using).filter(relates_to_id__in=ids, rel_type__in=[
                    "replace", "redact"]).order_by("seq").only("relates_to_id", "rel_type", "payload")):
                _apply_relation(relation, relation.rel_type, using=using)

    for pk, msg_type, payload in rows.iterator(chunk_size=batch):
        chunk.append((pk, message_text(msg_type, payload)))
        if len(chunk) >= batch:
            flush()
            count += len(chunk)
            chunk = []
    if chunk:
        flush()
        count += len(chunk)
    return count
