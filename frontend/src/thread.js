// A thread in the room's drawer (issue #16): the root message and its replies, loaded from REST,
// then the live replies as they come, and a compact compose that replies in it. This view owns
// #thread; the room (room.js) hands it the live messages (wants/add) and publishes for it.

import {Compose, describeError} from "./compose.js";
import {renderMessage, snippet} from "./render.js";
import {$, api, clear, h} from "./ui.js";

const AT_BOTTOM_PX = 48;

export class ThreadView {
  /** `room`: the RoomPage (its state, config, ctx() for cards and publish()). */
  constructor(room) {
    this.room = room;
    this.thread = null; // {root, ids, messages, channel, list, compose} while one is open
    this.token = null;
  }

  get isOpen() {
    return !!this.thread;
  }

  /** Whether a message that just arrived belongs in the open thread (a reply to one of its messages). */
  wants(m) {
    return !!(this.thread && this.thread.ids.has(m.reply_to) && !this.thread.ids.has(m.id));
  }

  async open(id, {replyTo = null} = {}) {
    const room = this.room;
    const drawer = $("#thread");
    const token = Symbol("thread");
    this.token = token;
    drawer.hidden = false;
    document.body.classList.add("thread-open");
    clear(drawer).append(this.header(null), h("div.thread-body", null, h("div.feed-loading", null, h("span.spinner"), "Loading thread…")));
    let data;
    try {
      data = await api("GET", `/api/messages/${encodeURIComponent(id)}/thread`);
    } catch (error) {
      if (this.token !== token) return;
      clear(drawer).append(this.header(null), h("div.thread-body", null, h("p.muted", null, describeError(error))));
      return;
    }
    if (this.token !== token) return;
    const results = data.results || [];
    for (const m of results) room.state.remember(m);
    const root = results.find((m) => m.id === data.root) || results[0];
    this.thread = {root: data.root, ids: new Set(results.map((m) => m.id)), messages: results, channel: root && root.channel};
    const list = h("div.thread-list");
    const body = h("div.thread-body", null, list);
    // Inside a thread, a reply to its root needs no "in reply to" header; deeper replies keep theirs.
    for (const m of results) {
      list.appendChild(renderMessage(m, room.ctx(), {compact: m.id === data.root || m.reply_to === data.root, root: m.id === data.root}));
    }
    const compose = new Compose({
      types: ["text", "feedback", "narration", "dialogue", "query", "proposal"],
      compact: true,
      label: "Reply",
      placeholder: "Reply in thread…",
      onSend: (payload) => room.publish(this.thread.channel, {...payload, reply_to: payload.reply_to || this.thread.root}),
    });
    compose.keepReply = false;
    if (replyTo && replyTo.id !== data.root) compose.setContext("reply_to", replyTo);
    const canWrite = room.config.can_write && !(room.state.get(this.thread.channel) || {}).archived;
    clear(drawer).append(this.header(root), body);
    if (canWrite) drawer.append(compose.el);
    this.thread.list = list;
    this.thread.compose = compose;
    list.lastElementChild && list.lastElementChild.scrollIntoView({block: "end"});
    const target = list.querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
    if (target && id !== data.root) target.classList.add("flash");
    if (canWrite) compose.focus();
  }

  header(root) {
    return h("header.panel-head.thread-head", null,
      h("div", null, h("h3", null, "Thread"),
        root ? h("p.muted.small", null, `${root.channel ? "#" + root.channel : ""} · ${snippet(root, 60)}`) : null),
      h("button.icon-btn", {type: "button", id: "close-thread", title: "Close", "aria-label": "Close thread",
        onclick: () => this.close()}, "×"));
  }

  /** A live reply to the open thread: appended, and scrolled to if the reader was at its end. */
  add(m) {
    const t = this.thread;
    if (!t || !t.list) return;
    t.ids.add(m.id);
    t.messages.push(m);
    const scroller = t.list.parentElement;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < AT_BOTTOM_PX;
    t.list.appendChild(renderMessage(m, this.room.ctx(), {compact: m.reply_to === t.root}));
    if (atBottom) t.list.lastElementChild.scrollIntoView({block: "end"});
  }

  close() {
    this.thread = null;
    this.token = null;
    $("#thread").hidden = true;
    document.body.classList.remove("thread-open");
  }
}
