// The story room: channels, the live feed, threads, compose, presence and the co-edited document,
// all over the one shared MythlineSocket.
//
// Data flow. The page is rendered with the readable channels and, for each, its `last_seq` and the
// caller's unread count at that moment. Every open channel is subscribed with `after` = that
// last_seq, so each message after it arrives exactly once (replay, then live; socket.js resumes and
// de-duplicates across reconnects) and counts as unread unless it is read in place. History up to
// that seq comes from REST (`before`), a page at a time as the reader scrolls up. Messages are kept
// per channel by seq and rendered in seq order, whatever order they arrive in.
//
// The parts (issue #16): the state is roomstate.js (pure, Node-tested); the views draw it and own
// their DOM: feed.js (the open channel's header, messages, scrolling, typing), thread.js (the thread
// drawer), people.js (who is here, the agents), sidebar.js (the channels), composebar.js (the message
// box), roomtools.js (the document, its suggestions and comments panels, the story's dialogs).
// RoomPage coordinates them: the socket's frames, the state, which view draws what.

import {bindConnectionIndicator} from "./socket.js";
import {RoomState} from "./roomstate.js";
import {ComposeBar} from "./composebar.js";
import {RoomTools} from "./roomtools.js";
import {cardContext, FeedView} from "./feed.js";
import {ThreadView} from "./thread.js";
import {PeopleView} from "./people.js";
import {SidebarView} from "./sidebar.js";
import {MessageActions} from "./msgactions.js";
import {SearchView} from "./search.js";
import {StreamCards} from "./streamview.js";
import {fillTally, updateReplyCount} from "./render.js";
import {$, api, h, toast, uuid4} from "./ui.js";

export class RoomPage {
  constructor(config, socket) {
    this.config = config;
    this.socket = socket;
    this.slug = config.story.slug;
    this.me = config.me;
    // Channels, messages, votes, typing, unread counts, presence: roomstate.js. The views draw them.
    this.state = new RoomState({me: config.me, agents: config.agents || []});
    this.channels = this.state.channels; // name -> ChannelState (the same Map)
    this.byId = this.state.byId; // message id -> message (the same Map)
    this.ackTimer = null;
    this.feed = new FeedView(this);
    this.threadView = new ThreadView(this);
    this.people = new PeopleView({state: this.state, me: this.me, slug: this.slug, onAgents: () => this.sidebar.render()});
    this.sidebar = new SidebarView(this);
    this.actions = new MessageActions(this); // edit, delete, react (issue #17)
    this.search = new SearchView(this);
    this.streams = new StreamCards(this); // streaming messages (issue #17)
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
    this.composeBar = new ComposeBar({config: this.config, onSend: (body) => this.publish(this.current.name, body),
      onTyping: (typing) => this.sendTyping(typing), slug: this.slug, socket: this.socket});
    this.compose = this.composeBar.compose;
    this.socket.onState((state) => {
      document.body.classList.toggle("offline", state !== "open");
      this.composeBar.connection(state);
    });
    this.state.loadChannels(this.config.channels);
    this.feed.start();

    this.composeBar.mount($("#compose-host"));

    this.socket.subscribe(`story:${this.slug}`, {}, (frame) => this.onStoryFrame(frame));
    for (const ch of this.channels.values()) if (ch.info.readable && !ch.archived) this.subscribeChannel(ch);

    this.sidebar.render();
    this.people.render();
    const first = this.channels.get(this.config.channel) ||
      [...this.channels.values()].find((c) => c.info.readable) || [...this.channels.values()][0];
    // A link to one message (`?channel=C&message=ID`, as search results make): shown in its place.
    const linked = new URLSearchParams(location.search).get("message");
    if (first) this.select(first.name, {replace: true});
    this.search.mount();
    if (linked && first) this.showMessage({id: linked, channel: first.name});

    // The document and its dialogs: roomtools.js (the room's fields for them, for the console and tests).
    this.tools = new RoomTools(this);
    ({bible: this.bible, outline: this.outline, crew: this.crew, versions: this.versions, suggestions: this.suggestions,
      comments: this.comments, docs: this.docs, membersDialog: this.membersDialog} = this.tools);
    this.sidebar.addHeadButtons({members: this.membersDialog, bible: this.bible, outline: this.outline, crew: this.crew});

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
      if (e.key === "Escape" && this.threadView.isOpen && !e.defaultPrevented && !document.querySelector("dialog[open]")) {
        this.threadView.close();
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
        this.streams.onFrame(ch, frame);
        break;
      case "stream.started":
      case "stream.chunk":
      case "stream.ended":
        this.streams.onFrame(ch, frame);
        break;
      case "message":
        this.addMessage(ch, frame.message, {live: true});
        break;
      case "presence.state":
      case "presence.diff":
        if (ch.name === "room") this.people.onPresence(frame);
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
          if (this.current === ch) this.feed.render();
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
    this.tools.onEvent(frame.event, data);
    if (frame.event.startsWith("participant.") && data.username === this.me.username) {
      this.myRoleChanged(frame.event === "participant.removed" ? null : data.role);
    }
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
      case "agent.status":
        this.people.updateAgent(data);
        break;
      case "participant.joined":
        if (data.kind === "agent") {
          this.people.refreshAgents(data);
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
    const wasArchived = this.channels.has(info.name) && this.channels.get(info.name).archived;
    const ch = this.state.upsertChannel(info, {isOwner: this.config.is_owner});
    if (ch.info.readable && !ch.archived) this.subscribeChannel(ch);
    this.sidebar.render();
    if (this.current === ch) this.feed.renderHeader();
    if (wasArchived !== ch.archived) this.feed.redrawAll(); // an archived channel's cards lose their buttons
    return ch;
  }

  removeChannel(name) {
    const ch = this.state.removeChannel(name);
    if (!ch) return;
    if (ch.sub) ch.sub.unsubscribe();
    this.sidebar.render();
    if (this.current === ch) {
      const next = this.channels.get("general") || [...this.channels.values()][0];
      if (next) this.select(next.name);
    }
  }

  // --- messages --------------------------------------------------------------------------------

  addMessage(ch, m, {live, render = true}) {
    this.streams.settle(ch, m); // a streamed message's final one takes its stream's card
    const change = this.state.addMessage(ch, m, {live, reading: () => this.readingHere()});
    if (!change) return false;
    if (change.updated) {
      for (const id of change.updated) this.feed.redraw(id);
      for (const id of this.state.takeStale()) {
        api("GET", `/api/messages/${encodeURIComponent(id)}`).then((view) => {
          if (this.state.refreshView(view)) this.feed.redraw(id);
        }).catch(() => {});
      }
      return true;
    }
    if (change.replyTo) updateReplyCount(document, change.replyTo, change.replyCount);
    if (change.tally) this.refreshTally(change.tally);
    if (change.counted) this.sidebar.renderUnread(ch);
    if (this.current === ch && render) {
      this.feed.insertCard(m, {live});
      if (live) this.maybeAck();
      this.clearTypingOf(ch.name, m.sender && m.sender.username);
    }
    if (this.threadView.wants(m)) this.threadView.add(m);
    return true;
  }

  refreshTally(id) {
    const proposal = this.byId.get(id);
    for (const el of document.querySelectorAll(`.tally[data-proposal="${CSS.escape(id)}"]`)) {
      if (proposal) fillTally(el, proposal, this.ctx());
    }
  }

  /** What cards need from the page (feed.js's cardContext). */
  ctx() {
    if (!this._ctx) this._ctx = cardContext(this);
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

  // --- the open channel ------------------------------------------------------------------------

  select(name, {replace = false, push = true, focus = !replace} = {}) {
    const ch = this.channels.get(name);
    if (!ch) return;
    if (this.composeBar.typingTopic && this.current && this.current !== ch) this.sendTyping(false);
    this.state.select(name);
    if (push || replace) {
      const url = new URL(location.href);
      url.searchParams.set("channel", name);
      url.searchParams.delete("message"); // a link to one message has done its work
      history[replace ? "replaceState" : "pushState"](null, "", url);
    }
    if (ch.info.readable && !ch.sub) this.subscribeChannel(ch);
    this.sidebar.render();
    this.feed.renderHeader();
    this.renderCompose();
    this.feed.render();
    this.feed.renderTyping();
    // A channel the writer picked takes the focus to its message box; the page opening does not
    // (the skip links come first, and a screen reader starts at the top).
    if (focus && this.compose && !this.compose.el.classList.contains("disabled")) this.compose.focus();
  }

  /** Shows a message found elsewhere (a search result, a link) in its place: its channel opened,
   * its history loaded down to it if need be, the card scrolled to, flashed and focused. One the
   * feed cannot hold (a channel this room does not list, history too far back) opens in the thread
   * drawer, which shows any message by id. */
  async showMessage({id, channel, seq = null}) {
    const ch = this.channels.get(channel);
    this.showPane("chat");
    if (!ch || !ch.info.readable) {
      this.threadView.open(id);
      return;
    }
    if (this.current !== ch) this.select(ch.name, {focus: false});
    const inFeed = () => this.feed.listEl.querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
    if (!inFeed()) {
      if (ch.loading) await ch.loading;
      let target = seq;
      if (target == null) {
        const known = this.state.lookup(id);
        target = known ? known.seq : null;
      }
      if (target == null) {
        try {
          target = (await api("GET", `/api/messages/${encodeURIComponent(id)}`)).seq;
        } catch {
          target = null;
        }
      }
      if (target != null && this.current === ch) await this.feed.loadUntil(ch, target);
    }
    if (this.current !== ch) return; // the reader went elsewhere meanwhile
    this.feed.jumpTo(id, {focus: true});
  }

  renderCompose() {
    this.composeBar.render(this.current);
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
      this.tools.setCanWrite(this.config.can_write, role);
      // The cards' buttons (reply, edit, delete, react) follow the role too.
      this.feed.redrawAll();
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

  // --- read marking -----------------------------------------------------------------------------

  readingHere() {
    return this.feed.reading();
  }

  markRead(ch) {
    this.state.markRead(ch);
    this.sidebar.renderUnread(ch);
    this.maybeAck();
  }

  /** Moves the read cursor to the newest message once the reader sees it (debounced). */
  maybeAck() {
    const ch = this.current;
    if (!ch || !ch.info.readable || !this.readingHere()) return;
    if (this.state.markRead(ch)) this.sidebar.renderUnread(ch);
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

  // --- typing -----------------------------------------------------------------------------------

  /** Our own typing notices, for the open channel (composebar.js repeats and stops them). */
  sendTyping(typing) {
    if (!this.current || !this.current.sub) return;
    this.composeBar.sendTyping(typing, this.topicOf(this.current.name));
  }

  onTyping(ch, frame) {
    if (!frame.user || this.state.isMe(frame.user)) return;
    this.state.setTyping(ch.name, frame.user, !!frame.typing, {expiresIn: frame.expires_in});
    this.renderTyping();
  }

  clearTypingOf(channel, username) {
    if (this.state.clearTyping(channel, username)) this.renderTyping();
  }

  expireTyping() {
    if (this.state.expireTyping()) this.renderTyping();
  }

  /** Who is typing shows in the feed and in the people list. */
  renderTyping() {
    this.feed.renderTyping();
    this.people.render();
  }
}
