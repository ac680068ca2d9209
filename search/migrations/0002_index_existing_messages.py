"""Index the messages stored before search existed (search/extract.py gives each one's text).
`manage.py search_reindex` does the same at any time."""
from django.db import migrations

BATCH = 1000


def index_existing(apps, schema_editor):
    from search.extract import message_text

    Message = apps.get_model("messaging", "Message")
    MessageText = apps.get_model("search", "MessageText")
    rows = Message.objects.filter(search_text__isnull=True).order_by("pk").values_list("pk", "msg_type", "payload")
    batch = []
    for pk, msg_type, payload in rows.iterator(chunk_size=BATCH):
        batch.append(MessageText(message_id=pk, text=message_text(msg_type, payload)))
        if len(batch) >= BATCH:
            MessageText.objects.bulk_create(batch)
            batch = []
    MessageText.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [("search", "0001_initial")]

    operations = [migrations.RunPython(index_existing, migrations.RunPython.noop)]
