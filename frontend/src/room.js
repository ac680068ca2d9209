// The story room: channels, the live feed, threads, compose, presence and the co-edited document,
// all over the one shared MythlineSocket.
//
// Data flow. The page is rendered with the readable channels and, for each, its `last_seq` and the
// caller's unread count at that moment. Every open channel is subscribed with `after` = that
// last_seq, so each message after it arrives exactly once (replay, then live; socket.js resumes and
// de-duplicates across reconnects) and counts as unread unless it is read in place. History up to
// that seq comes from REST (`before`), a page at a time as the reader scrolls up. Messages are kept
// per channel by seq and rendered in seq order, whatever order they arrive in.

import {bindConnectionIndicator} from "./socket.js";
import {RoomState} from "./roomstate.js";
import {Compose, describeError} from "./compose.js";
import {DocumentPanel} from "./docpanel.js";
import {MembersDialog} from "./members.js";
import {BibleDialog, bibleMarks} from "./bible.js";
import {OutlineDialog, selectRange} from "./outline.js";
import {CrewPanel} from "./crew.js";
import {VersionsDialog} from "./versions.js";
import {SuggestionsPanel, suggestionMarks} from "./suggestions.js";
import {CommentsPanel, commentMarks} from "./comments.js";
import {fillTally, renderMessage, snippet, updateReplyCount} from "./render.js";
import {
  $, ago, api, avatar, clear, displayName, h, icon, labelled, NAME_PATTERN, NAME_RE, NAME_RULE, nameWithHandle, progressBar,
  statusBadge, toast,
  uuid4,
} from "./ui.js";

const PAGE = 50;
const NEAR_TOP_PX = 300;
const AT_BOTTOM_PX = 48;
const TYPING_REPEAT_MS = 2500;
const STATE_RANK = {active: 0, idle: 1, away: 2};
const KIND_HELP = {
  public: "Everyone who reads the story reads this channel",
  private: "Only its members read this channel",
  presence: "Shows who is here",
  inbox: "An agent's work queue: editors post, the agent and the owner read",
};
const KIND_GROUPS = [
  {kind: "public", title: "Channels", icon: "hash"},
  {kind: "private", title: "Private", icon: "lock"},
  {kind: "presence", title: "Rooms", icon: "room"},
  {kind: "inbox", title: "Agent inboxes", icon: "inbox"},
];

function iconFor(kind) {
  const group = KIND_GROUPS.find((g) => g.kind === kind);
  return icon(group ? group.icon : "hash");
}

export class RoomPage {
  constructor(config, socket) {
    this.config = config;
    this.socket = socket;
    this.slug = config.story.slug;
    this.me = config.me;
    // Channels, messages, votes, typing, unread counts: roomstate.js. The page draws them.
    this.state = new RoomState({me: config.me});
    this.channels = this.state.channels; // name -> ChannelState (the same Map)
    this.byId = this.state.byId; // message id -> message (the same Map)
    this.thread = null;
    this.typingSentAt = 0;
    this.typingTopic = null;
    this.newBelow = 0;
    this.ackTimer = null;
    this.agents = new Map((config.agents || []).map((a) => [a.username, {...a, connections: 0}]));
    this.members = new Map(); // username -> presence entry (room)
    this.presenceKnown = false;
  }

  /** The channel the reader has open (the state's). */
  get current() {
    return this.state.open;
  }

  topicOf(name) {
    return `channel:${this.slug}/${name}`;
  }

  start() {
    bindConnectionIndicator(this.socket, $("#connection"), {open: "Live"});
    this.offlineHint = h("p.offline-hint", {id: "offline-hint", role: "status", hidden: true},
      "Offline: keep writing; Send works again as soon as the connection is back.");
    this.socket.onState((state) => {
      document.body.classList.toggle("offline", state !== "open");
      this.offlineHint.hidden = state === "open" || state === "connecting";
    });
    this.state.loadChannels(this.config.channels);

    this.feedEl = $("#feed");
    this.listEl = $("#feed-list");
    this.topEl = $("#feed-top");
    this.newBelowEl = $("#new-below");
    this.typingEl = $("#typing");
    this.feedEl.addEventListener("scroll", () => this.onScroll(), {passive: true});
    this.newBelowEl.addEventListener("click", () => this.scrollToBottom(true));

    this.compose = new Compose({
      types: this.config.compose_types,
      maxPayloadBytes: (this.config.limits && this.config.limits.max_payload_bytes) || 65536,
      onSend: (body) => this.publish(this.current.name, body),
      onTyping: (typing) => this.sendTyping(typing),
    });
    $("#compose-host").appendChild(this.compose.el);
    this.composeNotice = h("div.compose-notice", {hidden: true});
    $("#compose-host").appendChild(this.composeNotice);
    $("#compose-host").appendChild(this.offlineHint);

    this.socket.subscribe(`story:${this.slug}`, {}, (frame) => this.onStoryFrame(frame));
    for (const ch of this.channels.values()) if (ch.info.readable && !ch.archived) this.subscribeChannel(ch);

    this.renderSidebar();
    this.renderPeople();
    const first = this.channels.get(this.config.channel) ||
      [...this.channels.values()].find((c) => c.info.readable) || [...this.channels.values()][0];
    if (first) this.select(first.name, {replace: true});

    this.bible = new BibleDialog({slug: this.slug, canWrite: this.config.can_write});
    this.bible.load();
    this.outline = new OutlineDialog({slug: this.slug, canWrite: this.config.can_write, goTo: (range) => this.goToRange(range)});
    this.crew = new CrewPanel({slug: this.slug, indicator: $("#crew-paused")});
    this.versions = new VersionsDialog({slug: this.slug, canWrite: this.config.can_write, current: () => ({
      name: this.docs.name, revision: this.docs.editor ? this.docs.editor.sync.syncedVersion : 0,
      forkedFrom: (this.docs.documents.get(this.docs.name) || {}).forked_from || null})});
    this.suggestions = new SuggestionsPanel({slug: this.slug, canWrite: this.config.can_write, me: this.me});
    this.comments = new CommentsPanel({slug: this.slug, canWrite: this.config.can_write, me: this.me});
    this.crew.load(); // for the "paused" indicator in the header
    // Events missed while the socket was down: read the bible (outline, crew) again when it is back.
    let wasOpen = false;
    this.socket.onState((state) => {
      if (state === "open" && wasOpen) {
        this.bible.load();
        if (this.outline.loaded) this.outline.load();
        if (this.crew.loaded) this.crew.load();
        this.suggestions.load();
        this.comments.load();
      }
      if (state === "open") wasOpen = true;
    });
    this.docs = new DocumentPanel({
      socket: this.socket, slug: this.slug, head: $("#doc-head"), host: $("#editor"),
      documents: this.config.documents, canWrite: this.config.can_write,
      extensions: [bibleMarks(this.bible), suggestionMarks(this.suggestions), commentMarks(this.comments)],
      onEditor: (editor, name) => {
        this.suggestions.attach(editor, name);
        this.comments.attach(editor, name);
      },
      headActions: () => [h("button.btn.ghost.sm", {type: "button", id: "doc-bible", title: "The story bible: who and what the text names",
        onclick: (e) => this.bible.open(e.currentTarget)}, "Bible"),
      h("button.btn.ghost.sm", {type: "button", id: "doc-outline", title: "The outline: the story's scenes in order",
        onclick: (e) => this.outline.open(e.currentTarget)}, "Outline"),
      h("button.btn.ghost.sm", {type: "button", id: "doc-versions", title: "Versions: name, compare and restore revisions",
        onclick: (e) => this.versions.open(e.currentTarget)}, "Versions"),
      this.suggestions.button(), this.comments.button()],
    });
    this.docs.open("main");

    this.membersDialog = new MembersDialog({slug: this.slug, me: this.me, isOwner: this.config.is_owner});
    if (this.config.role) {
      $(".sidebar-head").append(h("button.btn.ghost.sm.on-dark.members-button", {type: "button", id: "members-button",
        onclick: (e) => this.membersDialog.open(e.currentTarget)}, this.config.is_owner ? "Members and invites" : "Members"));
    }
    $(".sidebar-head").append(h("button.btn.ghost.sm.on-dark.bible-button", {type: "button", id: "bible-button",
      onclick: (e) => this.bible.open(e.currentTarget)}, "Story bible"));
    $(".sidebar-head").append(h("button.btn.ghost.sm.on-dark.bible-button", {type: "button", id: "outline-button",
      onclick: (e) => this.outline.open(e.currentTarget)}, "Outline"));
    $(".sidebar-head").append(h("button.btn.ghost.sm.on-dark.bible-button", {type: "button", id: "crew-button",
      onclick: (e) => this.crew.open(e.currentTarget)}, "Writers' room"));

    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.maybeAck();
    });
    window.addEventListener("popstate", () => {
      const name = new URLSearchParams(location.search).get("channel");
      if (name && this.channels.has(name)) this.select(name, {push: false});
    });
    setInterval(() => this.expireTyping(), 1000);
    this.bindPanes();
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.thread && !e.defaultPrevented && !document.querySelector("dialog[open]")) {
        this.closeThread();
      }
    });
    window.mythline = {room: this, socket: this.socket}; // for the console and the browser tests
  }

  // --- subscriptions -------------------------------------------------------------------------

  subscribeChannel(ch) {
    if (ch.sub) return;
    ch.sub = this.socket.subscribe(this.topicOf(ch.name), {after: ch.info.last_seq},
      (frame) => this.onChannelFrame(ch, frame));
  }

  onChannelFrame(ch, frame) {
    switch (frame.type) {
      case "subscribed":
        ch.error = null;
        break;
      case "message":
        this.addMessage(ch, frame.message, {live: true});
        break;
      case "presence.state":
      case "presence.diff":
        if (ch.name === "room") this.onPresence(frame);
        break;
      case "typing":
        this.onTyping(ch, frame);
        break;
      case "unsubscribed":
        if (frame.reason) {
          toast(`You no longer have access to #${ch.name}.`, "warn");
          this.removeChannel(ch.name);
        }
        break;
      case "error":
        if (!ch.sub || !ch.sub.subscribed) {
          ch.error = frame.message || frame.code;
          if (this.current === ch) this.renderFeed();
        }
        break;
      default:
        break;
    }
  }

  onStoryFrame(frame) {
    if (frame.type === "unsubscribed" && frame.reason === "access_revoked") {
      this.lostAccess();
      return;
    }
    if (frame.type !== "event") return;
    const data = frame.data || {};
    if (frame.event.startsWith("participant.")) {
      if (this.membersDialog.el.open) this.membersDialog.refresh();
      if (data.username === this.me.username) this.myRoleChanged(frame.event === "participant.removed" ? null : data.role);
    }
    if (frame.event.startsWith("bible.entry.")) this.bible.onEvent(frame.event, data);
    if (frame.event.startsWith("outline.scene.")) this.outline.onEvent(frame.event, data);
    if (frame.event === "crew.updated") this.crew.onEvent(data);
    if (frame.event.startsWith("document.version.")) this.versions.onEvent(frame.event, data);
    if (frame.event.startsWith("suggestion.")) this.suggestions.onEvent(frame.event, data);
    if (frame.event.startsWith("comment.")) this.comments.onEvent(frame.event, data);
    switch (frame.event) {
      case "channel.created":
        this.upsertChannel(data);
        break;
      case "channel.archived":
      case "channel.unarchived":
      case "channel.updated":
        if (this.channels.has(data.name)) this.upsertChannel(data);
        break;
      case "member.joined":
        if (data.username === this.me.username && !this.channels.has(data.channel)) {
          api("GET", `/api/stories/${this.slug}/channels/${encodeURIComponent(data.channel)}`)
            .then((info) => this.upsertChannel(info)).catch(() => {});
        }
        break;
      case "member.left":
        if (data.username === this.me.username) this.removeChannel(data.channel);
        break;
      case "document.created":
        this.docs.add(data);
        break;
      case "agent.status":
        this.updateAgent(data);
        break;
      case "participant.joined":
        if (data.kind === "agent") {
          this.refreshAgents(data);
          // Editors post to a new agent's inbox without reading it (the owner hears channel.created).
          const inbox = `inbox.${data.username}`;
          if (this.config.can_write && !this.config.is_owner && !this.channels.has(inbox)) {
            this.upsertChannel({name: inbox, kind: "inbox", inbox_of: data.username, topic: "", archived: false,
              last_seq: 0, readable: false, can_manage: false});
          }
        }
        break;
      default:
        break;
    }
  }

  upsertChannel(info) {
    const ch = this.state.upsertChannel(info, {isOwner: this.config.is_owner});
    if (ch.info.readable && !ch.archived) this.subscribeChannel(ch);
    this.renderSidebar();
    if (this.current === ch) this.renderHeader();
    return ch;
  }

  removeChannel(name) {
    const ch = this.state.removeChannel(name);
    if (!ch) return;
    if (ch.sub) ch.sub.unsubscribe();
    this.renderSidebar();
    if (this.current === ch) {
      const next = this.channels.get("general") || [...this.channels.values()][0];
      if (next) this.select(next.name);
    }
  }

  // --- messages --------------------------------------------------------------------------------

  addMessage(ch, m, {live, render = true}) {
    const change = this.state.addMessage(ch, m, {live, reading: () => this.readingHere()});
    if (!change) return false;
    if (change.replyTo) updateReplyCount(document, change.replyTo, change.replyCount);
    if (change.tally) this.refreshTally(change.tally);
    if (change.counted) this.renderUnread(ch);
    if (this.current === ch && render) {
      this.insertCard(m, {live});
      if (live) this.maybeAck();
      this.clearTypingOf(ch.name, m.sender && m.sender.username);
    }
    if (this.thread && this.thread.ids.has(m.reply_to) && !this.thread.ids.has(m.id)) this.threadAdd(m);
    return true;
  }

  refreshTally(id) {
    const proposal = this.byId.get(id);
    for (const el of document.querySelectorAll(`.tally[data-proposal="${CSS.escape(id)}"]`)) {
      if (proposal) fillTally(el, proposal, this.ctx());
    }
  }

  /** What cards need from the page. */
  ctx() {
    if (this._ctx) return this._ctx;
    const canWriteIn = (channel) => {
      const ch = this.channels.get(channel);
      return this.config.can_write && (!ch || !ch.archived);
    };
    this._ctx = {
      me: this.me,
      lookup: (id) => this.state.lookup(id),
      replyCount: (id) => this.state.replyCount(id),
      votesFor: (id) => this.state.votesFor(id),
      canVote: (proposal) => canWriteIn(proposal.channel) && !this.state.isDecided(proposal.id),
      decidedIn: (id) => this.state.isDecided(id),
      canReply: (m) => canWriteIn(m.channel),
      vote: (proposal, choice) => this.publish(proposal.channel, {msg_type: "vote", payload: {proposal: proposal.id, choice}})
        .catch((error) => toast(describeError(error), "error")),
      openThread: (id) => this.openThread(id),
      jumpTo: (id) => this.jumpTo(id),
      openBible: (slug, opener) => this.bible.open(opener, slug),
      reply: (m) => this.openThread(m.id, {replyTo: m}),
      feedback: (m) => {
        this.compose.setType("feedback");
        this.compose.setContext("target", m);
      },
      decide: (m) => {
        this.compose.setType("decision");
        this.compose.setContext("proposal", m);
      },
    };
    return this._ctx;
  }

  async publish(channelName, body) {
    const frame = {type: "publish", topic: this.topicOf(channelName), id: uuid4(), ...body};
    // The id makes a retry after a lost answer safe: the server answers with the original.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.socket.request(frame);
      } catch (error) {
        if ((error.code === "disconnected" || error.code === "timeout") && attempt < 2) continue;
        if (error.code === "rate_limited" && attempt < 2) {
          await new Promise((r) => setTimeout(r, 1000 * ((error.frame && error.frame.details && error.frame.details.retry_after) || 1)));
          continue;
        }
        throw error;
      }
    }
  }

  // --- the feed --------------------------------------------------------------------------------

  select(name, {replace = false, push = true} = {}) {
    const ch = this.channels.get(name);
    if (!ch) return;
    if (this.typingTopic && this.current && this.current !== ch) this.sendTyping(false);
    this.state.select(name);
    if (push || replace) {
      const url = new URL(location.href);
      url.searchParams.set("channel", name);
      history[replace ? "replaceState" : "pushState"](null, "", url);
    }
    if (ch.info.readable && !ch.sub) this.subscribeChannel(ch);
    this.renderSidebar();
    this.renderHeader();
    this.renderCompose();
    this.renderFeed();
    this.renderTyping();
    // A channel the writer picked takes the focus to its message box; the page opening does not
    // (the skip links come first, and a screen reader starts at the top).
    if (!replace && this.compose && !this.compose.el.classList.contains("disabled")) this.compose.focus();
  }

  renderHeader() {
    const ch = this.current;
    const nameEl = $("#channel-name");
    clear(nameEl).append(h("span.chan-icon", null, iconFor(ch.info.kind)), " ", this.channelLabel(ch));
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
    if (kind === "public") return this.config.story.visibility === "private" ? "All members" : "Public";
    return {private: "Private", presence: "Room", inbox: "Inbox"}[kind] || kind;
  }

  channelLabel(ch) {
    if (ch.info.kind === "inbox") {
      const agent = this.agents.get(ch.info.inbox_of || ch.name.replace(/^inbox\./, ""));
      // The username too: two agents may share a display name, never a username.
      return agent ? `${displayName(agent)} inbox (@${agent.username})` : ch.name;
    }
    return ch.name;
  }

  async setArchived(ch, archived) {
    if (archived && !window.confirm(`Archive #${ch.name}? It becomes read-only; nothing is deleted.`)) return;
    try {
      const info = await api("PATCH", `/api/stories/${this.slug}/channels/${encodeURIComponent(ch.name)}`, {archived});
      this.upsertChannel(info);
      this.renderCompose();
      toast(archived ? `#${ch.name} archived.` : `#${ch.name} is open again.`);
    } catch (error) {
      toast(describeError(error), "error");
    }
  }

  renderCompose() {
    const ch = this.current;
    let reason = "";
    let action = null;
    if (!this.config.role && this.config.story.visibility === "public") {
      reason = "You are reading this story. Join it to write.";
      action = h("button.btn.sm", {type: "button", id: "join-story", onclick: () => this.join()}, "Join the story");
    } else if (!this.config.can_write) {
      reason = "Viewers read along; ask the owner to make you an editor to write.";
    } else if (ch.archived) {
      reason = "This channel is archived: it is read-only.";
    }
    this.compose.el.hidden = !!reason;
    this.composeNotice.hidden = !reason;
    clear(this.composeNotice).append(h("span", null, reason));
    if (action) this.composeNotice.append(action);
    if (!reason) {
      this.compose.setContext("reply_to", null);
      this.compose.setEnabled(true);
    }
  }

  /** Below 1,000 px the room shows one pane at a time (channels, chat, the story text, people),
   * chosen with the tabs at the top; picking a channel goes to its chat. */
  bindPanes() {
    for (const tab of document.querySelectorAll("#room-tabs .room-tab")) {
      tab.addEventListener("click", () => this.showPane(tab.dataset.pane));
    }
  }

  showPane(pane) {
    const room = $("#room");
    if (!room || room.dataset.pane === pane) return;
    room.dataset.pane = pane;
    for (const tab of document.querySelectorAll("#room-tabs .room-tab")) {
      tab.setAttribute("aria-pressed", String(tab.dataset.pane === pane));
    }
    if (pane === "text" && this.docs && this.docs.editor) this.docs.editor.view.requestMeasure();
  }

  /** An outline scene's "Go to text": its document in the editor, the scene's text selected. */
  async goToRange(range) {
    if (!range || !range.document) return;
    await this.docs.open(range.document);
    this.showPane("text");
    if (this.docs.editor && this.docs.name === range.document) selectRange(this.docs.editor.view, range);
  }

  /** The owner changed our role (or removed us from a public story): the room follows at once. */
  myRoleChanged(role) {
    if (role === this.config.role) return;
    const could = this.config.can_write;
    this.config.role = role;
    this.config.can_write = role === "owner" || role === "editor";
    const pill = $("#my-role");
    if (pill) pill.textContent = role || "not a member";
    if (this.current) this.renderCompose();
    if (could !== this.config.can_write) {
      this.docs.setCanWrite(this.config.can_write);
      this.bible.setCanWrite(this.config.can_write);
      this.outline.setCanWrite(this.config.can_write);
      this.versions.setCanWrite(this.config.can_write);
      this.suggestions.setCanWrite(this.config.can_write);
      this.comments.setCanWrite(this.config.can_write);
      if (role) this.crew.load(); // who may pause the crew follows the role
      toast(this.config.can_write ? "You can write in this story now." :
        role ? "You are a viewer now: you read along but no longer write." : "You were removed from this story.");
    }
  }

  /** The server ended our topics: the story is no longer ours to read (removed, or made private). */
  lostAccess() {
    if (this.accessLost) return;
    this.accessLost = true;
    const notice = h("div.access-lost", {id: "access-lost", role: "alert"},
      h("strong", null, "You no longer have access to this story."),
      " The owner removed you or made it private. ", h("a", {href: "/"}, "Back to your stories"));
    $("#room").prepend(notice);
    this.compose.el.hidden = true;
  }

  async join() {
    try {
      await api("POST", `/api/stories/${this.slug}/join`, {});
      location.reload();
    } catch (error) {
      toast(describeError(error), "error");
    }
  }

  renderFeed() {
    const ch = this.current;
    clear(this.listEl);
    clear(this.topEl);
    this.newBelow = 0;
    this.updateNewBelow();
    if (!ch.info.readable) {
      this.topEl.append(h("div.feed-empty", null, h("div.empty-icon", null, "✉"),
        h("h3", null, this.channelLabel(ch)),
        h("p.muted", null, "Only the agent and the story owner read this inbox. What you send here goes straight to the agent.")));
      return;
    }
    if (ch.error) {
      this.topEl.append(h("div.feed-empty", null, h("p.muted", null, `This channel cannot be shown: ${ch.error}`)));
      return;
    }
    for (const m of ch.sorted()) this.listEl.appendChild(renderMessage(m, this.ctx()));
    this.renderFeedTop();
    this.scrollToBottom(false);
    if (!ch.historyLoaded) this.loadOlder(ch);
    else this.fillViewport(ch);
    this.markRead(ch);
  }

  renderFeedTop() {
    const ch = this.current;
    clear(this.topEl);
    if (!ch || !ch.info.readable) return;
    if (ch.loading) {
      this.topEl.append(h("div.feed-loading", null, h("span.spinner"), "Loading earlier messages…"));
    } else if (ch.historyLoaded && !ch.hasMore) {
      this.topEl.append(h("div.feed-start", null,
        h("div.feed-start-icon", null, iconFor(ch.info.kind)),
        h("h3", null, `This is the start of ${ch.info.kind === "inbox" ? "" : "#"}${this.channelLabel(ch)}`),
        h("p.muted", null, ch.info.topic || "Every message here is kept, in order.")));
    }
  }

  /** Inserts a card in seq order; keeps the reader's place (see the module comment). */
  insertCard(m, {live}) {
    const card = renderMessage(m, this.ctx());
    const cards = this.listEl.children;
    const atBottom = this.isAtBottom();
    let lo = 0;
    let hi = cards.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (Number(cards[mid].dataset.seq) < m.seq) lo = mid + 1;
      else hi = mid;
    }
    const appended = lo === cards.length;
    if (appended) {
      this.listEl.appendChild(card);
      if (atBottom) this.scrollToBottom(false);
      else if (live) {
        this.newBelow += 1;
        this.updateNewBelow();
      }
    } else {
      const fromBottom = this.feedEl.scrollHeight - this.feedEl.scrollTop;
      this.listEl.insertBefore(card, cards[lo]);
      if (!atBottom) this.feedEl.scrollTop = this.feedEl.scrollHeight - fromBottom;
      else this.scrollToBottom(false);
    }
  }

  async loadOlder(ch) {
    if (ch.loading || !ch.hasMore || !ch.info.readable) return ch.loading;
    const before = ch.historyBefore();
    const url = `/api/stories/${this.slug}/channels/${encodeURIComponent(ch.name)}/messages?before=${before}&limit=${PAGE}`;
    ch.loading = (async () => {
      if (this.current === ch) this.renderFeedTop();
      try {
        const page = await api("GET", url);
        const rows = page.results || [];
        const visible = this.current === ch;
        // Prepending moves what the reader looks at down by exactly the added height: take it back.
        const fromBottom = this.feedEl.scrollHeight - this.feedEl.scrollTop;
        const atBottom = this.isAtBottom();
        const added = [];
        for (const m of rows) if (this.addMessage(ch, m, {live: false, render: false})) added.push(m);
        if (visible && added.length) {
          // All older than anything on screen (history goes down from baseSeq; live is above it).
          const fragment = document.createDocumentFragment();
          for (const m of added.sort((a, b) => a.seq - b.seq)) fragment.appendChild(renderMessage(m, this.ctx()));
          this.listEl.insertBefore(fragment, this.listEl.firstChild);
        }
        ch.historyPage(rows, page.next_before, before);
        ch.loading = null;
        if (visible) {
          this.renderFeedTop();
          this.refreshReplyRefs();
          if (atBottom) this.scrollToBottom(false);
          else this.feedEl.scrollTop = this.feedEl.scrollHeight - fromBottom;
          this.fillViewport(ch);
        }
      } catch (error) {
        ch.loading = null;
        if (this.current === ch) {
          this.renderFeedTop();
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

  /** Reply headers rendered before their parent was loaded: fill them in now. */
  refreshReplyRefs() {
    for (const card of this.listEl.querySelectorAll(".msg")) {
      const m = this.byId.get(card.dataset.id);
      if (!m || !m.reply_to) continue;
      const ref = card.querySelector(":scope > .msg-main > .reply-ref");
      if (ref && !ref.querySelector("b") && this.byId.has(m.reply_to)) {
        card.replaceWith(renderMessage(m, this.ctx()));
      }
    }
  }

  onScroll() {
    const ch = this.current;
    if (!ch) return;
    if (this.feedEl.scrollTop < NEAR_TOP_PX) this.loadOlder(ch);
    if (this.isAtBottom()) {
      if (this.newBelow) {
        this.newBelow = 0;
        this.updateNewBelow();
      }
      this.maybeAck();
    }
  }

  isAtBottom() {
    const f = this.feedEl;
    return f.scrollHeight - f.scrollTop - f.clientHeight < AT_BOTTOM_PX;
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
    this.newBelowEl.textContent = this.newBelow === 1 ? "1 new message ↓" : `${this.newBelow} new messages ↓`;
  }

  readingHere() {
    return document.visibilityState === "visible" && this.isAtBottom();
  }

  markRead(ch) {
    this.state.markRead(ch);
    this.renderUnread(ch);
    this.maybeAck();
  }

  /** Moves the read cursor to the newest message once the reader sees it (debounced). */
  maybeAck() {
    const ch = this.current;
    if (!ch || !ch.info.readable || !this.readingHere()) return;
    if (this.state.markRead(ch)) this.renderUnread(ch);
    if (!this.state.ackDue(ch) || !this.config.role) return;
    clearTimeout(this.ackTimer);
    this.ackTimer = setTimeout(() => {
      const seq = this.state.ackDue(ch);
      if (!seq) return;
      this.state.acked(ch, seq);
      this.socket.request({type: "ack", topic: this.topicOf(ch.name), seq}).catch(() => {
        this.state.ackFailed(ch, seq);
      });
    }, 400);
  }

  async jumpTo(id) {
    const card = this.listEl.querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
    if (card) {
      card.scrollIntoView({block: "center", behavior: "smooth"});
      card.classList.remove("flash");
      void card.offsetWidth;
      card.classList.add("flash");
      return;
    }
    this.openThread(id);
  }

  // --- threads ----------------------------------------------------------------------------------

  async openThread(id, {replyTo = null} = {}) {
    const drawer = $("#thread");
    const token = Symbol("thread");
    this.threadToken = token;
    drawer.hidden = false;
    document.body.classList.add("thread-open");
    clear(drawer).append(this.threadHeader(null), h("div.thread-body", null, h("div.feed-loading", null, h("span.spinner"), "Loading thread…")));
    let data;
    try {
      data = await api("GET", `/api/messages/${encodeURIComponent(id)}/thread`);
    } catch (error) {
      if (this.threadToken !== token) return;
      clear(drawer).append(this.threadHeader(null), h("div.thread-body", null, h("p.muted", null, describeError(error))));
      return;
    }
    if (this.threadToken !== token) return;
    const results = data.results || [];
    for (const m of results) this.state.remember(m);
    const root = results.find((m) => m.id === data.root) || results[0];
    this.thread = {root: data.root, ids: new Set(results.map((m) => m.id)), messages: results, channel: root && root.channel};
    const list = h("div.thread-list");
    const body = h("div.thread-body", null, list);
    // Inside a thread, a reply to its root needs no "in reply to" header; deeper replies keep theirs.
    for (const m of results) {
      list.appendChild(renderMessage(m, this.ctx(), {compact: m.id === data.root || m.reply_to === data.root, root: m.id === data.root}));
    }
    const compose = new Compose({
      types: ["text", "feedback", "narration", "dialogue", "query", "proposal"],
      compact: true,
      label: "Reply",
      placeholder: "Reply in thread…",
      onSend: (payload) => this.publish(this.thread.channel, {...payload, reply_to: payload.reply_to || this.thread.root}),
    });
    compose.keepReply = false;
    if (replyTo && replyTo.id !== data.root) compose.setContext("reply_to", replyTo);
    const canWrite = this.config.can_write && !(this.channels.get(this.thread.channel) || {}).archived;
    clear(drawer).append(this.threadHeader(root), body);
    if (canWrite) drawer.append(compose.el);
    this.thread.list = list;
    this.thread.compose = compose;
    list.lastElementChild && list.lastElementChild.scrollIntoView({block: "end"});
    const target = list.querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
    if (target && id !== data.root) target.classList.add("flash");
    if (canWrite) compose.focus();
  }

  threadHeader(root) {
    return h("header.panel-head.thread-head", null,
      h("div", null, h("h3", null, "Thread"),
        root ? h("p.muted.small", null, `${root.channel ? "#" + root.channel : ""} · ${snippet(root, 60)}`) : null),
      h("button.icon-btn", {type: "button", id: "close-thread", title: "Close", "aria-label": "Close thread",
        onclick: () => this.closeThread()}, "×"));
  }

  threadAdd(m) {
    const t = this.thread;
    if (!t || !t.list) return;
    t.ids.add(m.id);
    t.messages.push(m);
    const atBottom = t.list.parentElement.scrollHeight - t.list.parentElement.scrollTop - t.list.parentElement.clientHeight < AT_BOTTOM_PX;
    t.list.appendChild(renderMessage(m, this.ctx(), {compact: m.reply_to === t.root}));
    if (atBottom) t.list.lastElementChild.scrollIntoView({block: "end"});
  }

  closeThread() {
    this.thread = null;
    this.threadToken = null;
    $("#thread").hidden = true;
    document.body.classList.remove("thread-open");
  }

  // --- typing -----------------------------------------------------------------------------------

  sendTyping(typing) {
    if (!this.current || !this.current.sub) return;
    const topic = this.topicOf(this.current.name);
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

  onTyping(ch, frame) {
    if (!frame.user || this.state.isMe(frame.user)) return;
    this.state.setTyping(ch.name, frame.user, !!frame.typing, {expiresIn: frame.expires_in});
    this.renderTyping();
    this.renderPeople();
  }

  clearTypingOf(channel, username) {
    if (this.state.clearTyping(channel, username)) {
      this.renderTyping();
      this.renderPeople();
    }
  }

  expireTyping() {
    if (this.state.expireTyping()) {
      this.renderTyping();
      this.renderPeople();
    }
  }

  typingHere() {
    return this.current ? this.state.typingIn(this.current.name) : [];
  }

  renderTyping() {
    const users = this.typingHere();
    clear(this.typingEl);
    if (!users.length) return;
    // Names with their @username, as everywhere in the room: two people may share a display name.
    const names = users.map((u) => h("span.typing-name", {dataset: {user: u.username}}, nameWithHandle(u)));
    const text = names.length === 1 ? [names[0], " is typing…"]
      : names.length === 2 ? [names[0], " and ", names[1], " are typing…"] : "Several people are typing…";
    this.typingEl.append(h("span.typing-dots", {"aria-hidden": "true"}, h("i"), h("i"), h("i")), h("span", null, text));
  }

  // --- presence ---------------------------------------------------------------------------------

  onPresence(frame) {
    if (frame.type === "presence.state") {
      this.presenceKnown = true;
      this.members = new Map((frame.members || []).map((m) => [m.username, m]));
      for (const a of frame.agents || []) this.agents.set(a.username, {...(this.agents.get(a.username) || {}), ...a});
    } else {
      for (const m of frame.joins || []) this.members.set(m.username, m);
      for (const m of frame.updates || []) {
        if (m.connections > 0 || this.members.has(m.username)) {
          if (m.connections === 0) this.members.delete(m.username);
          else this.members.set(m.username, {...(this.members.get(m.username) || {}), ...m});
        }
        if (m.kind === "agent") this.updateAgent({username: m.username, display_name: m.display_name, ...(m.agent || {}),
          ...(m.status !== undefined ? {status: m.status, task: m.task, progress: m.progress} : {})});
      }
      for (const m of frame.leaves || []) this.members.delete(m.username);
    }
    for (const a of this.agents.values()) {
      const live = this.members.get(a.username);
      a.connections = live ? live.connections || 1 : 0;
    }
    this.renderPeople();
  }

  updateAgent(data) {
    if (!data || !data.username) return;
    const current = this.agents.get(data.username) || {username: data.username, kind: "agent", connections: 0};
    this.agents.set(data.username, {...current, ...data});
    this.renderPeople();
    this.renderSidebar();
  }

  async refreshAgents(joined) {
    // The presence API answers those who read the room (as the room channel does); a reader of a
    // public story outside the room takes the agent from the event (its status comes live).
    if (!this.channels.has("room")) {
      if (joined) this.updateAgent({username: joined.username, display_name: joined.display_name});
      return;
    }
    try {
      const state = await api("GET", `/api/stories/${this.slug}/presence`);
      for (const a of state.agents || []) this.updateAgent(a);
    } catch {
      // the next presence frame will do
    }
  }

  renderPeople() {
    const body = $("#people-body");
    if (!body) return;
    const typingNow = new Set(this.typingHere().map((u) => u.username));
    const humans = [...this.members.values()].filter((m) => m.kind !== "agent")
      .sort((a, b) => (STATE_RANK[a.state] ?? 3) - (STATE_RANK[b.state] ?? 3) || displayName(a).localeCompare(displayName(b)));
    const agents = [...this.agents.values()].sort((a, b) => displayName(a).localeCompare(displayName(b)));
    clear(body);
    const online = h("div.people-group", null, h("h4.group-title", null, "Online", h("span.count", null, String(humans.length))));
    if (!humans.length) {
      online.append(h("p.muted.small.people-empty", null, this.presenceKnown ? "Nobody else is here." :
        this.channels.has("room") ? "Connecting…" : "Join the story to see who is here."));
    }
    for (const m of humans) {
      const typing = m.typing || typingNow.has(m.username);
      const state = m.state || "active";
      online.append(h("div.person", {dataset: {user: m.username, state, kind: "human"}},
        h("span.avatar-wrap", null, avatar(m, "sm"), h(`span.dot.dot-${state}`, {title: state})),
        h("div.person-main", null,
          h("div.person-name", null, nameWithHandle(m), m.username === this.me.username ? h("span.you", null, " (you)") : null),
          h("div.person-sub", null, typing ? h("span.typing-label", null, "typing…") : h(`span.state.state-${state}`, null, state),
            m.connections > 1 ? h("span.muted", null, ` · ${m.connections} tabs`) : null))));
    }
    body.append(online);
    const group = h("div.people-group", null, h("h4.group-title", null, "Agents", h("span.count", null, String(agents.length))));
    if (!agents.length) group.append(h("p.muted.small.people-empty", null, "No agents in this story yet."));
    for (const a of agents) {
      const connected = a.connections > 0;
      group.append(h("div.person.agent", {dataset: {user: a.username, status: a.status || "offline", kind: "agent"}},
        h("span.avatar-wrap", null, avatar({...a, kind: "agent"}, "sm"), connected ? h("span.dot.dot-active", {title: "connected"}) : null),
        h("div.person-main", null,
          h("div.person-name", null, nameWithHandle(a), " ", statusBadge(a.status)),
          a.task ? h("div.person-sub.task", {title: a.task}, a.task) : h("div.person-sub.muted", null, a.last_seen ? `seen ${ago(a.last_seen)}` : "not seen yet"),
          a.progress != null ? progressBar(a.progress) : null)));
    }
    body.append(group);
    $("#people-count").textContent = `${humans.length} online · ${agents.length} agent${agents.length === 1 ? "" : "s"}`;
  }

  // --- the sidebar ------------------------------------------------------------------------------

  renderSidebar() {
    const nav = $("#channel-groups");
    clear(nav);
    const all = [...this.channels.values()];
    for (const group of KIND_GROUPS) {
      const items = all.filter((c) => c.info.kind === group.kind && !c.archived).sort((a, b) => a.name.localeCompare(b.name));
      if (!items.length && group.kind !== "public") continue;
      const head = h("div.group-head", null, h("span", null, group.title));
      if (group.kind === "public" && this.config.can_write) {
        head.append(h("button.icon-btn.on-dark", {type: "button", id: "new-channel", title: "Create a channel",
          "aria-label": "Create a channel", onclick: () => this.showNewChannel()}, "+"));
      }
      nav.append(h("section.chan-group", {dataset: {kind: group.kind}}, head,
        h("ul", null, items.map((c) => this.channelItem(c, iconFor(c.info.kind))))));
    }
    const archived = all.filter((c) => c.archived);
    if (archived.length) {
      const details = h("details.chan-group.archived", {open: this.current && this.current.archived},
        h("summary.group-head", null, `Archived (${archived.length})`),
        h("ul", null, archived.map((c) => this.channelItem(c, iconFor(c.info.kind)))));
      nav.append(details);
    }
    if (this.newChannelForm) nav.prepend(this.newChannelForm);
  }

  channelItem(ch, glyph) {
    const active = this.current === ch;
    let status = null;
    if (ch.info.kind === "inbox") {
      const agent = this.agents.get(ch.info.inbox_of || ch.name.replace(/^inbox\./, ""));
      if (agent) status = h(`span.mini-status.status-${agent.status || "offline"}`, {title: agent.status || "offline"});
    }
    const unread = h("span.unread", {hidden: !ch.unread || active}, String(ch.unread));
    return h("li", null, h("a.chan", {href: `?channel=${encodeURIComponent(ch.name)}`,
      class: [active ? "active" : "", ch.unread && !active ? "has-unread" : "", ch.info.readable ? "" : "writeonly"].filter(Boolean).join(" "),
      dataset: {channel: ch.name}, "aria-current": active ? "page" : null,
      onclick: (e) => {
        e.preventDefault();
        this.select(ch.name);
        this.showPane("chat");
      }}, h("span.chan-icon", null, glyph), h("span.chan-name", null, this.channelLabel(ch)), status, unread));
  }

  renderUnread(ch) {
    const el = document.querySelector(`.chan[data-channel="${CSS.escape(ch.name)}"]`);
    if (!el) return;
    const badge = el.querySelector(".unread");
    const show = ch.unread > 0 && this.current !== ch;
    badge.hidden = !show;
    badge.textContent = String(ch.unread);
    el.classList.toggle("has-unread", show);
  }

  showNewChannel() {
    if (this.newChannelForm) {
      this.newChannelForm.querySelector("input").focus();
      return;
    }
    const name = h("input", {name: "name", placeholder: "name, e.g. scene-4", required: true, autocomplete: "off",
      pattern: NAME_PATTERN, title: NAME_RULE});
    const kind = h("select", {name: "kind"},
      h("option", {value: "public"}, "Public"), h("option", {value: "private"}, "Private"), h("option", {value: "presence"}, "Room (presence)"));
    const topic = h("input", {name: "topic", placeholder: "optional", autocomplete: "off"});
    const error = h("div.form-error.small", {hidden: true});
    const close = () => {
      this.newChannelForm = null;
      this.renderSidebar();
    };
    const form = h("form.new-channel", {id: "new-channel-form", onsubmit: async (e) => {
      e.preventDefault();
      if (!NAME_RE.test(name.value.trim().toLowerCase())) {
        error.textContent = NAME_RULE;
        error.hidden = false;
        name.focus();
        return;
      }
      try {
        const info = await api("POST", `/api/stories/${this.slug}/channels`,
          {name: name.value.trim().toLowerCase(), kind: kind.value, ...(topic.value.trim() ? {topic: topic.value.trim()} : {})});
        this.newChannelForm = null;
        this.upsertChannel({...info, can_manage: true});
        this.select(info.name);
      } catch (err) {
        error.textContent = describeError(err);
        error.hidden = false;
      }
    }}, h("div.new-channel-title", null, "New channel"), labelled("Name", name), labelled("Who reads it", kind),
    labelled("Topic", topic), error,
    h("div.row", null, h("button.btn.sm", {type: "submit"}, "Create"), h("button.btn.ghost.sm.on-dark", {type: "button", onclick: close}, "Cancel")));
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") close();
    });
    this.newChannelForm = form;
    this.renderSidebar();
    name.focus();
  }
}

