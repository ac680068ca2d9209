// The open channel's message box (issue #16): the Compose (compose.js), the notice that replaces it
// where the reader may not write (with "Join the story" on a public story they read), and the
// offline hint. The room (room.js) publishes what it sends; roomstate.js's composeBlock says why
// the reader may not write.

import {Compose, describeError} from "./compose.js";
import {composeBlock} from "./roomstate.js";
import {api, clear, h, toast} from "./ui.js";

const TYPING_REPEAT_MS = 2500;

export class ComposeBar {
  /** `config`: the page's (role, can_write, story, compose_types, limits); `slug`: the story's. */
  constructor({config, slug, socket, onSend, onTyping}) {
    this.config = config;
    this.slug = slug;
    this.socket = socket;
    this.typingTopic = null; // the topic our last "typing" notice went to, until we stop
    this.typingSentAt = 0;
    this.offlineHint = h("p.offline-hint", {id: "offline-hint", role: "status", hidden: true},
      "Offline: keep writing; Send works again as soon as the connection is back.");
    this.compose = new Compose({
      types: config.compose_types,
      maxPayloadBytes: (config.limits && config.limits.max_payload_bytes) || 65536,
      onSend,
      onTyping,
    });
    this.notice = h("div.compose-notice", {hidden: true});
  }

  mount(host) {
    host.appendChild(this.compose.el);
    host.appendChild(this.notice);
    host.appendChild(this.offlineHint);
  }

  /** The socket's state: the hint shows while it is down (not while it first connects). */
  connection(state) {
    this.offlineHint.hidden = state === "open" || state === "connecting";
  }

  /** The box for channel `ch`, or the notice saying why the reader may not write there. */
  render(ch) {
    const {reason, join} = composeBlock({role: this.config.role, visibility: this.config.story.visibility,
      canWrite: this.config.can_write, archived: ch.archived});
    const action = join ? h("button.btn.sm", {type: "button", id: "join-story", onclick: () => this.join()}, "Join the story") : null;
    this.compose.el.hidden = !!reason;
    this.notice.hidden = !reason;
    clear(this.notice).append(h("span", null, reason));
    if (action) this.notice.append(action);
    if (!reason) {
      this.compose.setContext("reply_to", null);
      this.compose.setEnabled(true);
    }
  }

  /** The writer types (`typing`) or stopped: a notice to `topic`, repeated at most every 2.5 s while
   * they type; the stop goes to the topic the notices went to. */
  sendTyping(typing, topic) {
    const now = Date.now();
    if (typing) {
      if (this.typingTopic === topic && now - this.typingSentAt < TYPING_REPEAT_MS) return;
      this.typingSentAt = now;
      this.typingTopic = topic;
      this.socket.send({type: "typing", topic, typing: true});
    } else if (this.typingTopic) {
      this.socket.send({type: "typing", topic: this.typingTopic, typing: false});
      this.typingTopic = null;
      this.typingSentAt = 0;
    }
  }

  /** "Join the story": the page again, as a member. */
  async join() {
    try {
      await api("POST", `/api/stories/${this.slug}/join`, {});
      location.reload();
    } catch (error) {
      toast(describeError(error), "error");
    }
  }
}
