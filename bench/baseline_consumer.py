"""The fan-out benchmark's Channels floor: the group-broadcast consumer from the Channels tutorial.

Mounted only when the server runs with MYTHLINE_BENCH_BASELINE=1 (never in a normal deployment):

* WebSocket `/bench/ws/` (mythline_site/asgi.py): `BaselineChatConsumer`, which on connect joins the
  group `bench-fanout` and relays every `chat_message` event with
  `await self.send(text_data=json.dumps(event["message"]))` - no auth check, no seq, no filter,
  no backfill, no slow-client bound;
* HTTP `POST /bench/publish` (mythline_site/urls.py): `baseline_publish`, a bare sync Django view
  that parses the JSON body and does `async_to_sync(group_send)` - the same hop our services take
  after a commit (messaging/events.py), minus DRF, auth, validation and the database write.

Both are token-less and CSRF-exempt: never mount them anywhere reachable.
"""
import json

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.http import HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt

GROUP = "bench-fanout"


class BaselineChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def chat_message(self, event):
        await self.send(text_data=json.dumps(event["message"]))


@csrf_exempt
def baseline_publish(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    message = json.loads(request.body)
    async_to_sync(get_channel_layer().group_send)(GROUP, {"type": "chat_message", "message": message})
    return JsonResponse({"ok": True}, status=202)
