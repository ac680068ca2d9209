// Streaming messages drawn in the room's feed (issue #17; the pure part is streams.js). A stream
// shows as a card of its msg_type, like the message it becomes, with "writing…" in its head and
// `aria-busy` (a screen reader hears it once, when the final message replaces it, not at every
// chunk). Its text grows as the chunks come. The final message (a `message` frame with the
// stream's id) takes its place: the room calls `settle` before drawing it, so there is one card.
// A cancelled stream says "cancelled" for a moment, then goes.
//
// The cards sit at the end of the feed (data-seq "Infinity": feed.insertCard puts every stored
// message before them), they have no actions (there is nothing to reply to yet), and roomstate.js
// never hears of them. A gap in the chunks reads the channel's open streams again (REST), as does a
// resubscribe after a reconnect (to drop a stream that ended while away).

import {renderMessage} from "./render.js";
import {StreamSet, streamMessage} from "./streams.js";
import {api, h} from "./ui.js";

const CANCELLED_SHOWN_MS = 2500;
const NO_ACTIONS = {rights: () => ({react: false, edit: false, remove: false}), canReply: () => false};

export class StreamCards {
  /** `room`: the RoomPage (slug, current channel, feed.listEl, ctx()). */
  constructor(room) {
    this.room = room;
    this.sets = new Map(); // channel name -> StreamSet
    this.refetching = new Map(); // channel name -> promise
  }

  setOf(name) {
    if (!this.sets.has(name)) this.sets.set(name, new StreamSet());
    return this.sets.get(name);
  }

  get listEl() {
    return this.room.feed.listEl;
  }

  shown(name) {
    return this.room.current && this.room.current.name === name && this.room.current.info.readable;
  }

  cardOf(id) {
    return this.listEl ? this.listEl.querySelector(`.msg.streaming[data-id="${CSS.escape(id)}"]`) : null;
  }

  /** A channel frame about streams (room.onChannelFrame passes them on). */
  onFrame(ch, frame) {
    const set = this.setOf(ch.name);
    switch (frame.type) {
      case "subscribed":
        if (this.subscribedOnce && this.subscribedOnce.has(ch.name)) this.resync(ch, set);
        (this.subscribedOnce ||= new Set()).add(ch.name);
        break;
      case "stream.started": {
        const result = set.started(frame.stream);
        if (result) this.draw(ch.name, result.stream);
        break;
      }
      case "stream.chunk": {
        const result = set.chunk(frame);
        if (!result) break;
        if (result.changed) this.draw(ch.name, result.stream);
        this.mark(result.stream, statusWords(result.stream));
        if (result.gap) this.refetch(ch, set);
        break;
      }
      case "stream.ended": {
        const stream = set.ended(frame);
        if (!stream) break;
        if (frame.status === "cancelled") this.cancelled(stream);
        else this.mark(stream, "finishing…");
        break;
      }
      default:
        break;
    }
  }

  /** A stored message arrived in `ch`: the stream it completes (if any) is over, its card gone
   * (the room draws the message in its place at once). */
  settle(ch, message) {
    const set = this.sets.get(ch.name);
    if (!set || !set.has(message.id)) return;
    set.settle(message.id);
    const card = this.cardOf(message.id);
    if (card) card.remove();
  }

  /** Draws (or redraws) a stream's card in the open channel. */
  draw(name, stream) {
    if (!this.shown(name) || !this.listEl) return;
    const fresh = this.render(name, stream);
    const old = this.cardOf(stream.id);
    const feed = this.room.feed;
    // A reader at the end of the feed stays there as the text grows.
    const atBottom = feed.isAtBottom();
    if (old) {
      // Only the body changes: the card keeps its place, its focus and the reader's scroll.
      const body = old.querySelector(":scope > .msg-main > .msg-body");
      const newBody = fresh.querySelector(":scope > .msg-main > .msg-body");
      if (body && newBody) body.replaceWith(newBody);
      else old.replaceWith(fresh);
    } else {
      this.listEl.appendChild(fresh);
    }
    if (atBottom) feed.scrollToBottom(false);
  }

  render(name, stream) {
    // A streamed reply's header opens its parent's thread (the stream itself is not stored yet).
    const ctx = {...this.room.ctx(), ...NO_ACTIONS, openThread: () => stream.reply_to && this.room.threadView.open(stream.reply_to)};
    const card = renderMessage(streamMessage(stream, name), ctx);
    card.classList.add("streaming");
    card.dataset.seq = "Infinity";
    card.setAttribute("aria-busy", "true");
    // The text grows under the reader's eyes: never folded behind "Show more" while it does.
    const body = card.querySelector(":scope > .msg-main > .msg-body");
    if (body) body.classList.remove("folded");
    const more = card.querySelector(":scope > .msg-main > .show-more");
    if (more) more.remove();
    const foot = card.querySelector(":scope > .msg-main > .msg-foot");
    if (foot) foot.remove();
    const head = card.querySelector(":scope > .msg-main > .msg-head");
    if (head) {
      const time = head.querySelector(".msg-time");
      if (time) time.title = stream.started_at || "";
      head.append(h("span.stream-status", {dataset: {status: stream.status}},
        h("span.typing-dots", {"aria-hidden": "true"}, h("i"), h("i"), h("i")),
        h("span.stream-status-text", null, statusWords(stream))));
    }
    return card;
  }

  mark(stream, words) {
    const card = this.cardOf(stream.id);
    const text = card && card.querySelector(".stream-status-text");
    if (text) text.textContent = words;
  }

  cancelled(stream) {
    const card = this.cardOf(stream.id);
    if (!card) return;
    card.classList.add("stream-cancelled");
    card.removeAttribute("aria-busy");
    const status = card.querySelector(".stream-status");
    if (status) {
      status.dataset.status = "cancelled";
      status.replaceChildren(h("span.stream-status-text", null, "cancelled"));
    }
    setTimeout(() => {
      if (card.isConnected) card.remove();
    }, CANCELLED_SHOWN_MS);
  }

  /** The open channel was drawn again (feed.render): its streams go back at the end. */
  drawAll(ch) {
    const set = this.sets.get(ch.name);
    if (!set) return;
    for (const stream of set.list()) this.draw(ch.name, stream);
  }

  /** Reads the channel's open streams again: their text so far joins what is shown. */
  refetch(ch, set) {
    if (this.refetching.has(ch.name)) return this.refetching.get(ch.name);
    const url = `/api/stories/${this.room.slug}/channels/${encodeURIComponent(ch.name)}/streams`;
    const done = api("GET", url).then((page) => {
      const open = page && Array.isArray(page.results) ? page.results : [];
      for (const info of open) {
        const result = set.started(info);
        if (result && result.changed) this.draw(ch.name, result.stream);
        if (result && !result.stream.gap) this.mark(result.stream, statusWords(result.stream));
      }
      return open.map((s) => s.id);
    }).catch(() => null).finally(() => this.refetching.delete(ch.name));
    this.refetching.set(ch.name, done);
    return done;
  }

  /** After a resubscribe: a stream that ended while the socket was away goes. */
  async resync(ch, set) {
    const token = set.beginResync();
    await this.refetching.get(ch.name);
    const ids = await this.refetch(ch, set);
    if (ids === null) return;
    for (const id of set.endResync(ids, token)) {
      const card = this.cardOf(id);
      if (card) card.remove();
    }
  }
}

function statusWords(stream) {
  return stream.status === "completed" ? "finishing…" : stream.gap ? "catching up…" : "writing…";
}
