"""The ingest benchmark's floor: store a message row with nothing else around it.

Mounted at `POST /bench/baseline/<channel_id>?story=<id>&sender=<id>` only when the server runs
with MYTHLINE_BENCH_BASELINE=1 (see mythline_site/urls.py); never in a normal deployment. It is
token-less and CSRF-exempt, so it must not be mounted anywhere reachable.

It inserts the same Message row as `messaging.services.message_post` (same model, same columns,
same payload) but with no DRF, no authentication, no access check, no validation, no policies,
no channel row lock: `seq` comes from an in-process counter per channel (one server process, so
it is unique), seeded from the channel's highest seq on first use. What is left is Django's
request cycle, JSON parsing and one INSERT in autocommit: the cheapest equivalent write.

A body `{"messages": [...]}` stores them all with one bulk INSERT (the floor of a batch post).
"""
import itertools
import json
import threading
import uuid

from django.db.models import Max
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from messaging.models import Message

_counters: dict[int, itertools.count] = {}
_lock = threading.Lock()


def _next_seqs(channel_id: int, n: int) -> list[int]:
    with _lock:
        counter = _counters.get(channel_id)
        if counter is None:
            top = Message.objects.filter(channel_id=channel_id).aggregate(m=Max("seq"))["m"] or 0
            counter = _counters[channel_id] = itertools.count(top + 1)
        return [next(counter) for _ in range(n)]


@csrf_exempt
def baseline_post(request, channel_id: int):
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    data = json.loads(request.body)
    bodies = data["messages"] if "messages" in data else [data]
    story_id, sender_id = int(request.GET["story"]), int(request.GET["sender"])
    messages = [Message(id=uuid.uuid4(), story_id=story_id, channel_id=channel_id, seq=seq, sender_id=sender_id,
                        msg_type=body["msg_type"], payload=body["payload"], audience="all",
                        audience_kind=Message.Audience.ALL, created_at=timezone.now())
                for body, seq in zip(bodies, _next_seqs(channel_id, len(bodies)))]
    if "messages" in data:
        Message.objects.bulk_create(messages)
        return JsonResponse({"stored": len(messages)})
    messages[0].save(force_insert=True)
    return JsonResponse({"id": str(messages[0].id), "seq": messages[0].seq}, status=201)
