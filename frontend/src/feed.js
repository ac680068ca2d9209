// The open channel's feed (issue #16): its header, its messages in seq order (history a page at a
// time as the reader scrolls up, live ones as they come, the reader's place kept), the "new messages
// below" button, the jump to a message, and who is typing. The messages themselves are in
// roomstate.js; the room (room.js) adds them and moves the read cursor. This view owns #feed,
// #feed-list, #feed-top, #new-below, #typing and the channel header.

import {describeError} from "./compose.js";
import {insertionIndex, newBelowLabel} from "./roomstate.js";
import {renderMessage} from "./render.js";
import {iconFor} from "./sidebar.js";
import {$, api, clear, h, nameWithHandle, toast} from "./ui.js";

const PAGE = 50;
const NEAR_TOP_PX = 300;
const AT_BOTTOM_PX = 48;
const KIND_HELP = {
  public: "Everyone who reads the story reads this channel",
  private: "Only its members read this channel",
  presence: "Shows who is here",
  inbox: "An agent's work queue: editors post, the agent and the owner read",
};

/** What cards (render.js) need from the room: the state, who may vote or reply, and the actions. */
export function cardContext(room) {
  const state = room.state;
  const canWriteIn = (channel) => {
    const ch = state.get(channel);
    return room.config.can_write && (!ch || !ch.archived);
  };
  return {
    me: room.me,
    lookup: (id) => state.lookup(id),
    replyCount: (id) => state.replyCount(id),
    votesFor: (id) => state.votesFor(id),
    canVote: (proposal) => canWriteIn(proposal.channel) && !state.isDecided(proposal.id),
    decidedIn: (id) => state.isDecided(id),
    canReply: (m) => canWriteIn(m.channel) && !m.deleted, // nothing to answer in a deleted message
    vote: (proposal, choice) => room.publish(proposal.channel, {msg_type: "vote", payload: {proposal: proposal.id, choice}})
      .catch((error) => toast(describeError(error), "error")),
    openThread: (id) => room.threadView.open(id),
    jumpTo: (id) => room.feed.jumpTo(id),
    openBible: (slug, opener) => room.bible.open(opener, slug),
    reply: (m) => room.threadView.open(m.id, {replyTo: m}),
    feedback: (m) => {
      room.compose.setType("feedback");
      room.compose.setContext("target", m);
    },
    decide: (m) => {
      room.compose.setType("decision");
      room.compose.setContext("proposal", m);
    },
    // Edit, delete, react (msgactions.js).
    rights: (m) => room.actions.rights(m),
    edit: (m, card) => room.actions.startEdit(m, card),
    remove: (m) => room.actions.remove(m),
    openPicker: (m, opener) => room.actions.togglePicker(m, opener),
    toggleReaction: (m, key) => room.actions.toggleReaction(m, key),
  };
}

export class FeedView {
  /** `room`: the RoomPage (its state, config, slug, ctx() for cards, addMessage, markRead, maybeAck,
   * threadView, upsertChannel and renderCompose). */
  constructor(room) {
    this.room = room;
    this.state = room.state;
    this.newBelow = 0;
  }

  get current() {
    return this.state.open;
  }

  start() {
    this.feedEl = $("#feed");
    this.listEl = $("#feed-list");
    this.topEl = $("#feed-top");
    this.newBelowEl = $("#new-below");
    this.typingEl = $("#typing");
    this.feedEl.addEventListener("scroll", () => this.onScroll(), {passive: true});
    this.newBelowEl.addEventListener("click", () => this.scrollToBottom(true));
  }

  // --- the channel header ------------------------------------------------------------------------

  renderHeader() {
    const ch = this.current;
    const nameEl = $("#channel-name");
    clear(nameEl).append(h("span.chan-icon", null, iconFor(ch.info.kind)), " ", this.state.channelLabel(ch));
    $("#channel-topic").textContent = ch.info.topic || (ch.info.kind === "inbox"
      ? "Messages for this agent. Every editor may post; only the agent and the story owner read."
      : "");
    const actions = clear($("#channel-actions"));
    actions.append(h("span.pill", {title: KIND_HELP[ch.info.kind] || ""}, this.kindLabel(ch.info.kind)));
    if (ch.archived) actions.append(h("span.pill.warn", null, "archived"));
    if (ch.info.can_manage && ch.info.kind !== "inbox") {
      actions.append(h("button.btn.ghost.sm", {type: "button", id: "archive-channel",
        onclick: () => this.setArchived(ch, !ch.archived)}, ch.archived ? "Unarchive" : "Archive"));
    }
  }

  /** What a channel's kind means here: "public" in a private story is everyone in the story. */
  kindLabel(kind) {
    if (kind === "public") return this.room.config.story.visibility === "private" ? "All members" : "Public";
    return {private: "Private", presence: "Room", inbox: "Inbox"}[kind] || kind;
  }

  async setArchived(ch, archived) {
    if (archived && !window.confirm(`Archive #${ch.name}? It becomes read-only; nothing is deleted.`)) return;
    try {
      const info = await api("PATCH", `/api/stories/${this.room.slug}/channels/${encodeURIComponent(ch.name)}`, {archived});
      this.room.upsertChannel(info);
      this.room.renderCompose();
      toast(archived ? `#${ch.name} archived.` : `#${ch.name} is open again.`);
    } catch (error) {
      toast(describeError(error), "error");
    }
  }

  // --- the messages ------------------------------------------------------------------------------

  render() {
    const ch = this.current;
    clear(this.listEl);
    clear(this.topEl);
    this.newBelow = 0;
    this.updateNewBelow();
    if (!ch.info.readable) {
      this.topEl.append(h("div.feed-empty", null, h("div.empty-icon", null, "✉"),
        h("h3", null, this.state.channelLabel(ch)),
        h("p.muted", null, "Only the agent and the story owner read this inbox. What you send here goes straight to the agent.")));
      return;
    }
    if (ch.error) {
      this.topEl.append(h("div.feed-empty", null, h("p.muted", null, `This channel cannot be shown: ${ch.error}`)));
      return;
    }
    for (const m of ch.sorted()) if (!m.relates_to) this.listEl.appendChild(renderMessage(m, this.room.ctx()));
    if (this.room.streams) this.room.streams.drawAll(ch); // messages being streamed, at the end
    this.renderTop();
    this.scrollToBottom(false);
    if (!ch.historyLoaded) this.loadOlder(ch);
    else this.fillViewport(ch);
    this.room.markRead(ch);
  }

  renderTop() {
    const ch = this.current;
    clear(this.topEl);
    if (!ch || !ch.info.readable) return;
    if (ch.loading) {
      this.topEl.append(h("div.feed-loading", null, h("span.spinner"), "Loading earlier messages…"));
    } else if (ch.historyLoaded && !ch.hasMore) {
      this.topEl.append(h("div.feed-start", null,
        h("div.feed-start-icon", null, iconFor(ch.info.kind)),
        h("h3", null, `This is the start of ${ch.info.kind === "inbox" ? "" : "#"}${this.state.channelLabel(ch)}`),
        h("p.muted", null, ch.info.topic || "Every message here is kept, in order.")));
    }
  }

  /** Inserts a card in seq order; keeps the reader's place (see room.js's module comment). */
  insertCard(m, {live}) {
    const card = renderMessage(m, this.room.ctx());
    const cards = this.listEl.children;
    const atBottom = this.isAtBottom();
    const at = insertionIndex(cards.length, (i) => Number(cards[i].dataset.seq), m.seq);
    if (at === cards.length) {
      this.listEl.appendChild(card);
      if (atBottom) this.scrollToBottom(false);
      else if (live) {
        this.newBelow += 1;
        this.updateNewBelow();
      }
    } else {
      const fromBottom = this.feedEl.scrollHeight - this.feedEl.scrollTop;
      this.listEl.insertBefore(card, cards[at]);
      if (!atBottom) this.feedEl.scrollTop = this.feedEl.scrollHeight - fromBottom;
      else this.scrollToBottom(false);
    }
  }

  async loadOlder(ch, {limit = PAGE} = {}) {
    if (ch.loading || !ch.hasMore || !ch.info.readable) return ch.loading;
    const before = ch.historyBefore();
    const url = `/api/stories/${this.room.slug}/channels/${encodeURIComponent(ch.name)}/messages?before=${before}&limit=${limit}`;
    ch.loading = (async () => {
      if (this.current === ch) this.renderTop();
      try {
        const page = await api("GET", url);
        const rows = page.results || [];
        const visible = this.current === ch;
        // Prepending moves what the reader looks at down by exactly the added height: take it back.
        const fromBottom = this.feedEl.scrollHeight - this.feedEl.scrollTop;
        const atBottom = this.isAtBottom();
        const added = [];
        for (const m of rows) if (this.room.addMessage(ch, m, {live: false, render: false})) added.push(m);
        if (visible && added.length) {
          // All older than anything on screen (history goes down from baseSeq; live is above it).
          const fragment = document.createDocumentFragment();
          for (const m of added.sort((a, b) => a.seq - b.seq)) {
            if (!m.relates_to) fragment.appendChild(renderMessage(m, this.room.ctx()));
          }
          this.listEl.insertBefore(fragment, this.listEl.firstChild);
        }
        ch.historyPage(rows, page.next_before, before);
        ch.loading = null;
        if (visible) {
          this.renderTop();
          this.refreshReplyRefs();
          if (atBottom) this.scrollToBottom(false);
          else this.feedEl.scrollTop = this.feedEl.scrollHeight - fromBottom;
          this.fillViewport(ch);
        }
      } catch (error) {
        ch.loading = null;
        if (this.current === ch) {
          this.renderTop();
          this.topEl.append(h("div.feed-error", null, `Could not load earlier messages: ${describeError(error)}`,
            " ", h("button.btn.ghost.sm", {type: "button", onclick: () => this.loadOlder(ch)}, "Retry")));
        }
      }
    })();
    return ch.loading;
  }

  /** Loads more until the feed overflows (so the reader can scroll up for the rest). */
  fillViewport(ch) {
    if (this.current === ch && ch.hasMore && !ch.loading && this.feedEl.scrollHeight <= this.feedEl.clientHeight + NEAR_TOP_PX) {
      this.loadOlder(ch);
    }
  }

  /** A message changed (edited, deleted, reacted to): its card drawn again where it is. A card
   * being edited waits (its writer's form stays) and is drawn when the form closes; a control that
   * had the focus has it again in the new card (the same action or reaction chip), else the card.
   * `card` with `focusAct`: the card whose editor closed, and the action to focus in it. */
  redraw(id, {card: only = null, focusAct = null} = {}) {
    const m = this.state.lookup(id);
    if (!m) return;
    const cards = only ? [only] : document.querySelectorAll(`.msg[data-id="${CSS.escape(id)}"]`);
    for (const card of cards) {
      if (!only && card.querySelector(".msg-edit-form")) continue;
      const active = document.activeElement;
      const hadFocus = focusAct || (active && active !== document.body && card.contains(active));
      const key = focusAct ? `[data-act="${focusAct}"]` : hadFocus && active.dataset.act ? `[data-act="${active.dataset.act}"]`
        : hadFocus && active.dataset.key ? `[data-key="${CSS.escape(active.dataset.key)}"]` : null;
      const fresh = renderMessage(m, this.room.ctx(), {compact: card.closest("#thread") != null,
        root: card.classList.contains("thread-root")});
      card.replaceWith(fresh);
      if (hadFocus) {
        const target = key && fresh.querySelector(`${key}:not([disabled])`);
        if (target) {
          target.focus({preventScroll: true});
        } else {
          fresh.tabIndex = -1;
          fresh.focus({preventScroll: true});
        }
      }
    }
  }

  /** Every card drawn again (the reader's role or a channel's archived state changed what they may do). */
  redrawAll() {
    for (const id of new Set([...document.querySelectorAll(".msg[data-id]")].map((c) => c.dataset.id))) this.redraw(id);
  }

  /** Reply headers rendered before their parent was loaded: fill them in now. */
  refreshReplyRefs() {
    for (const card of this.listEl.querySelectorAll(".msg")) {
      const m = this.state.lookup(card.dataset.id);
      if (!m || !m.reply_to) continue;
      const ref = card.querySelector(":scope > .msg-main > .reply-ref");
      if (ref && !ref.querySelector("b") && this.state.lookup(m.reply_to)) {
        card.replaceWith(renderMessage(m, this.room.ctx()));
      }
    }
  }

  // --- scrolling ---------------------------------------------------------------------------------

  onScroll() {
    const ch = this.current;
    if (!ch) return;
    if (this.feedEl.scrollTop < NEAR_TOP_PX) this.loadOlder(ch);
    if (this.isAtBottom()) {
      if (this.newBelow) {
        this.newBelow = 0;
        this.updateNewBelow();
      }
      this.room.maybeAck();
    }
  }

  isAtBottom() {
    const f = this.feedEl;
    return f.scrollHeight - f.scrollTop - f.clientHeight < AT_BOTTOM_PX;
  }

  /** The reader sees the newest messages of the open channel (the tab is visible, the feed at its end). */
  reading() {
    return document.visibilityState === "visible" && this.isAtBottom();
  }

  scrollToBottom(smooth) {
    this.feedEl.scrollTo({top: this.feedEl.scrollHeight, behavior: smooth ? "smooth" : "instant"});
    if (smooth) {
      this.newBelow = 0;
      this.updateNewBelow();
    }
  }

  updateNewBelow() {
    this.newBelowEl.hidden = !this.newBelow;
    this.newBelowEl.textContent = newBelowLabel(this.newBelow);
  }

  /** A message's card in the feed, flashed; one not in the feed opens in its thread. `focus`: the
   * card takes the focus too (a search result was followed). */
  async jumpTo(id, {focus = false} = {}) {
    const card = this.listEl.querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
    if (card) {
      card.scrollIntoView({block: "center", behavior: "smooth"});
      card.classList.remove("flash");
      void card.offsetWidth;
      card.classList.add("flash");
      if (focus) {
        card.tabIndex = -1;
        card.focus({preventScroll: true});
      }
      return;
    }
    this.room.threadView.open(id);
  }

  /** Loads the open channel's history down to `seq` (the most a page holds at a time, a bounded
   * number of pages), so that a message found elsewhere can be shown in its place. Answers whether
   * the history now reaches it. */
  async loadUntil(ch, seq, {maxPages = 20} = {}) {
    for (let page = 0; page < maxPages; page++) {
      if (ch.oldestSeq != null && ch.oldestSeq <= seq) return true;
      if (ch.loading) {
        await ch.loading;
        continue;
      }
      if (!ch.hasMore) return ch.oldestSeq == null || ch.oldestSeq <= seq;
      const before = ch.historyBefore();
      await this.loadOlder(ch, {limit: Math.max(PAGE, Math.min(500, before - seq + 10))});
      if (ch.loading) await ch.loading;
      if (ch.historyBefore() === before && ch.hasMore) return false; // the page failed (shown at the top)
    }
    return ch.oldestSeq != null && ch.oldestSeq <= seq;
  }

  // --- typing ------------------------------------------------------------------------------------

  renderTyping() {
    const users = this.current ? this.state.typingIn(this.current.name) : [];
    clear(this.typingEl);
    if (!users.length) return;
    // Names with their @username, as everywhere in the room: two people may share a display name.
    const names = users.map((u) => h("span.typing-name", {dataset: {user: u.username}}, nameWithHandle(u)));
    const text = names.length === 1 ? [names[0], " is typing…"]
      : names.length === 2 ? [names[0], " and ", names[1], " are typing…"] : "Several people are typing…";
    this.typingEl.append(h("span.typing-dots", {"aria-hidden": "true"}, h("i"), h("i"), h("i")), h("span", null, text));
  }
}
