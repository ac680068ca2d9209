// The story room's state, apart from the page that shows it and the socket that feeds it (issue #16):
// the channels, each channel's messages (kept by seq, de-duplicated, gaps known), replies per
// message, votes per proposal, who is typing where (until their notice expires), unread counts
// (from the read cursors and the channel the reader has open), the read cursor acks, who is in the
// room and the story's agents (presence), and how the sidebar groups the channels.
// No DOM, no socket, no fetch: room.js asks what changed and its views (feed.js, thread.js,
// people.js, sidebar.js) draw it; tests/node/roomstate.test.mjs drives it directly.

export const TYPING_DEFAULT_S = 6; // how long a "typing" notice lasts when the frame does not say

/** The sidebar's groups of channels, in order (the icon is a name for ui.js's icon()). */
export const KIND_GROUPS = [
  {kind: "public", title: "Channels", icon: "hash"},
  {kind: "private", title: "Private", icon: "lock"},
  {kind: "presence", title: "Rooms", icon: "room"},
  {kind: "inbox", title: "Agent inboxes", icon: "inbox"},
];

const STATE_RANK = {active: 0, idle: 1, away: 2};

function nameOf(user) {
  return (user && (user.display_name || user.username)) || "someone";
}

/** Where a card with `seq` goes among `count` cards in seq order (`seqAt(i)` the i-th card's seq):
 * after every card with a lower seq. */
export function insertionIndex(count, seqAt, seq) {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (seqAt(mid) < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Why the reader may not write in a channel ("" when they may): not a member of a public story
 * (`join`: they may join it), a viewer, or an archived channel. */
export function composeBlock({role, visibility, canWrite, archived}) {
  if (!role && visibility === "public") return {reason: "You are reading this story. Join it to write.", join: true};
  if (!canWrite) return {reason: "Viewers read along; ask the owner to make you an editor to write.", join: false};
  if (archived) return {reason: "This channel is archived: it is read-only.", join: false};
  return {reason: "", join: false};
}

/** The "new messages below" button's text. */
export function newBelowLabel(count) {
  return count === 1 ? "1 new message ↓" : `${count} new messages ↓`;
}

export class ChannelState {
  constructor(info) {
    this.info = info;
    this.messages = new Map(); // seq -> message
    this.ids = new Set(); // the ids of those messages
    this.baseSeq = info.last_seq; // REST history is <= baseSeq; the subscription brings the rest
    this.oldestSeq = null;
    this.hasMore = info.last_seq > 0;
    this.historyLoaded = !info.readable || info.last_seq === 0;
    this.loading = null;
    this.unread = info.unread || 0;
    this.readSeq = info.read_seq || 0;
    this.sub = null;
    this.error = null;
  }

  get name() {
    return this.info.name;
  }

  get archived() {
    return !!this.info.archived;
  }

  has(m) {
    return this.messages.has(m.seq) || this.ids.has(m.id);
  }

  sorted() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Where the next page of history starts (exclusive): below what is loaded, else after baseSeq. */
  historyBefore() {
    return this.oldestSeq != null ? this.oldestSeq : this.baseSeq + 1;
  }

  /** A page of history came (`rows` newest first, as the API answers; `nextBefore` null at the start). */
  historyPage(rows, nextBefore, before = this.historyBefore()) {
    this.oldestSeq = rows.length ? rows[rows.length - 1].seq : (this.oldestSeq ?? before);
    this.hasMore = nextBefore != null;
    this.historyLoaded = true;
  }

  /** The seqs missing between the oldest message held and the newest known ([from, to] inclusive).
   * History not loaded yet below the oldest held is not a gap (hasMore says there is more). */
  gaps() {
    const seqs = [...this.messages.keys()].sort((a, b) => a - b);
    const out = [];
    if (!seqs.length) return out;
    for (let i = 1; i < seqs.length; i++) {
      if (seqs[i] > seqs[i - 1] + 1) out.push([seqs[i - 1] + 1, seqs[i] - 1]);
    }
    const newest = seqs[seqs.length - 1];
    if (this.info.last_seq > newest) out.push([newest + 1, this.info.last_seq]);
    return out;
  }
}

export class RoomState {
  constructor({me = null, agents = []} = {}) {
    this.me = me;
    this.channels = new Map(); // name -> ChannelState
    this.open = null; // the ChannelState the reader has open
    this.byId = new Map(); // message id -> message (every channel, and threads)
    this.replies = new Map(); // parent id -> Set of reply ids
    this.votes = new Map(); // proposal id -> Map username -> {choice, sender, created_at}
    this.decided = new Set(); // proposal ids a decision closed
    this.typing = new Map(); // channel name -> Map username -> {user, until}
    this.agents = new Map(agents.map((a) => [a.username, {...a, connections: 0}])); // username -> agent
    this.members = new Map(); // username -> presence entry (room)
    this.presenceKnown = false;
    this.stale = new Set(); // message ids whose view only the server can tell now (applyRelation)
  }

  isMe(user) {
    return !!(user && this.me && user.username === this.me.username);
  }

  // --- channels -------------------------------------------------------------------------------

  /** The channels the page was rendered with (each with its last_seq, unread and read_seq then). */
  loadChannels(infos) {
    for (const info of infos) this.channels.set(info.name, new ChannelState(info));
  }

  get(name) {
    return this.channels.get(name);
  }

  /** A channel created, changed or newly readable. One born after the page starts empty: all of it is new. */
  upsertChannel(info, {isOwner = false} = {}) {
    let ch = this.channels.get(info.name);
    if (!ch) {
      const data = {read_seq: 0, unread: 0, readable: true,
        can_manage: isOwner || (!!this.me && info.created_by === this.me.username), ...info};
      ch = new ChannelState(data);
      ch.info.last_seq = 0;
      ch.baseSeq = 0;
      ch.hasMore = false;
      ch.historyLoaded = true;
      this.channels.set(info.name, ch);
    } else {
      Object.assign(ch.info, {...info, last_seq: Math.max(ch.info.last_seq, info.last_seq || 0)});
    }
    return ch;
  }

  /** Forgets a channel; answers it (or undefined). The open channel stays open until another is selected. */
  removeChannel(name) {
    const ch = this.channels.get(name);
    if (!ch) return undefined;
    this.channels.delete(name);
    this.typing.delete(name);
    return ch;
  }

  select(name) {
    const ch = this.channels.get(name);
    if (ch) this.open = ch;
    return ch;
  }

  // --- messages -------------------------------------------------------------------------------

  /**
   * A message of `ch` arrived: live from the subscription, or from history. Answers null for one
   * already held, else what changed: {message, counted (it added to the unread count), replyTo and
   * replyCount (a reply: its parent's count now), tally (a proposal whose votes or decision changed)}.
   * `reading` (a boolean or a function, asked only when it matters) says the reader sees the newest
   * messages of the open channel: a live message there is read in place, not counted.
   */
  addMessage(ch, m, {live = false, reading = false} = {}) {
    if (ch.has(m)) return null;
    ch.messages.set(m.seq, m);
    ch.ids.add(m.id);
    this.byId.set(m.id, m);
    if (m.seq > ch.info.last_seq) ch.info.last_seq = m.seq;
    const change = {message: m, counted: false, replyTo: null, replyCount: 0, tally: null};
    if (m.reply_to) {
      if (!this.replies.has(m.reply_to)) this.replies.set(m.reply_to, new Set());
      this.replies.get(m.reply_to).add(m.id);
      change.replyTo = m.reply_to;
      change.replyCount = this.replies.get(m.reply_to).size;
    }
    if (m.msg_type === "vote" && m.payload && m.payload.proposal) {
      this.recordVote(m);
      change.tally = m.payload.proposal;
    }
    if (m.msg_type === "decision" && m.payload && typeof m.payload.proposal === "string") {
      this.decided.add(m.payload.proposal);
      change.tally = m.payload.proposal;
    }
    if (m.relates_to) {
      // An edit, deletion or reaction (docs/protocol.md 4.1): no card of its own, it changes another.
      change.updated = this.applyRelation(m);
      return change;
    }
    if (live && m.seq > ch.baseSeq && !this.isMe(m.sender) && m.seq > ch.readSeq &&
        !(this.open === ch && (typeof reading === "function" ? reading() : reading))) {
      ch.unread += 1;
      change.counted = true;
    }
    return change;
  }

  /** Applies a relation (edit, deletion, reaction, or a reaction taken back) to the messages it
   * changes, as the server aggregates them: the frame's `target` when it has one (live frames),
   * else worked out here (replay). Returns the ids of the messages whose cards must be drawn again. */
  applyRelation(m) {
    const target = this.byId.get(m.relates_to);
    const mine = this.isMe(m.sender);
    if (!target) {
      // A reaction taken back that the room does not hold (a message of a thread from another
      // channel): the live frame's target is the reaction, which names the message it changed but
      // no longer its key. That message's view is read again (`stale`: room.js).
      const original = m.target && m.target.relates_to ? this.byId.get(m.target.relates_to) : null;
      if (original) this.stale.add(original.id);
      return [];
    }
    if (m.rel_type === "redact" && target.rel_type === "annotate") {
      // A reaction taken back: the reaction is deleted, its message counts one less.
      target.deleted = true;
      const original = this.byId.get(target.relates_to);
      const key = target.payload && target.payload.key;
      if (!original || (m.target && m.target.id === original.id &&
          this.takeView(original, m.target, m, mine, this.isMe(target.sender) ? key : null))) {
        return original ? [original.id] : [];
      }
      original.reactions = (original.reactions || []).flatMap((r) => r.key !== key ? [r]
        : r.count > 1 ? [{...r, count: r.count - 1, me: this.isMe(target.sender) ? false : r.me}] : []);
      return [original.id];
    }
    if (m.target && m.target.id === target.id) {
      this.takeView(target, m.target, m, mine);
      return [target.id];
    }
    if (m.rel_type === "replace" && m.payload && m.payload.payload) {
      target.payload = m.payload.payload;
      target.edited_at = m.created_at;
    } else if (m.rel_type === "redact") {
      target.deleted = true;
      target.payload = null;
    } else if (m.rel_type === "annotate" && m.payload && typeof m.payload.key === "string") {
      const reactions = target.reactions || [];
      const found = reactions.find((r) => r.key === m.payload.key);
      target.reactions = found
        ? reactions.map((r) => r === found ? {...r, count: r.count + 1, me: r.me || mine} : r)
        : [...reactions, {key: m.payload.key, count: 1, me: mine}];
    } else {
      return [];
    }
    return [target.id];
  }

  /** Takes the server's view of `target` (a live frame's); `me` there is null (one frame for every
   * reader), so whether I reacted is kept from before, or set by this relation if it is mine, or
   * cleared when it takes back my reaction with `takenBack` (others may still have that key). */
  takeView(target, view, m, mine, takenBack = null) {
    const before = new Map((target.reactions || []).map((r) => [r.key, r.me]));
    const changed = m.rel_type === "annotate" && m.payload ? m.payload.key : null;
    target.payload = view.payload;
    target.edited_at = view.edited_at;
    target.deleted = view.deleted;
    target.reactions = (view.reactions || []).map((r) => ({...r,
      me: r.me != null ? r.me : r.key === takenBack ? false : (mine && r.key === changed) || Boolean(before.get(r.key))}));
    return true;
  }

  /** My reaction with `key` to message `id` that is not taken back (the message to delete to take
   * it back), if the room holds it: a channel's log from a message on always holds its relations. */
  myReaction(id, key) {
    for (const m of this.byId.values()) {
      if (m.relates_to === id && m.rel_type === "annotate" && !m.deleted && this.isMe(m.sender) &&
          m.payload && m.payload.key === key) return m;
    }
    return null;
  }

  /** The ids whose view must be read again (and forgets them). */
  takeStale() {
    const ids = [...this.stale];
    this.stale.clear();
    return ids;
  }

  /** A message's view read again from the server (a read's `me` is the reader's own). Answers
   * whether the room holds it. */
  refreshView(view) {
    const held = view && this.byId.get(view.id);
    if (!held) return false;
    Object.assign(held, {payload: view.payload, edited_at: view.edited_at, deleted: view.deleted, reactions: view.reactions || []});
    return true;
  }

  /** A message seen elsewhere (a thread): known by id, not added to its channel. */
  remember(m) {
    if (!this.byId.has(m.id)) this.byId.set(m.id, m);
  }

  lookup(id) {
    return this.byId.get(id);
  }

  replyCount(id) {
    return this.replies.has(id) ? this.replies.get(id).size : 0;
  }

  // --- votes ------------------------------------------------------------------------------------

  /** One vote per voter and proposal: the latest (by created_at) wins, whatever order they arrive in. */
  recordVote(m) {
    const id = m.payload.proposal;
    if (!this.votes.has(id)) this.votes.set(id, new Map());
    const votes = this.votes.get(id);
    const previous = votes.get(m.sender.username);
    if (!previous || previous.created_at <= m.created_at) {
      votes.set(m.sender.username, {choice: String(m.payload.choice), sender: m.sender, created_at: m.created_at});
      return true;
    }
    return false;
  }

  votesFor(id) {
    return this.votes.get(id) || new Map();
  }

  /** {choice: count} for a proposal. */
  tally(id) {
    const counts = {};
    for (const v of this.votesFor(id).values()) counts[v.choice] = (counts[v.choice] || 0) + 1;
    return counts;
  }

  isDecided(id) {
    return this.decided.has(id);
  }

  // --- unread and the read cursor -------------------------------------------------------------------

  /** The reader saw all of `ch`: answers whether there was an unread count to clear. */
  markRead(ch) {
    const had = ch.unread > 0;
    ch.unread = 0;
    return had;
  }

  /** The seq the read cursor of `ch` should move to, or 0 when it is there already. */
  ackDue(ch) {
    return ch.info.last_seq > ch.readSeq ? ch.info.last_seq : 0;
  }

  acked(ch, seq) {
    if (seq > ch.readSeq) ch.readSeq = seq;
  }

  /** The ack of `seq` failed: the cursor goes back below it so the next ack tries again. */
  ackFailed(ch, seq) {
    ch.readSeq = Math.min(ch.readSeq, seq - 1);
  }

  // --- typing -------------------------------------------------------------------------------------

  /** Someone started (typing) or stopped typing in a channel; our own notices are ignored. Answers
   * whether anything changed. */
  setTyping(channel, user, typing, {expiresIn = TYPING_DEFAULT_S, now = Date.now()} = {}) {
    if (!user || this.isMe(user)) return false;
    if (!this.typing.has(channel)) this.typing.set(channel, new Map());
    const map = this.typing.get(channel);
    if (typing) {
      map.set(user.username, {user, until: now + 1000 * (expiresIn || TYPING_DEFAULT_S)});
      return true;
    }
    return map.delete(user.username);
  }

  /** `username` sent a message in `channel`: they are no longer typing there. */
  clearTyping(channel, username) {
    const map = this.typing.get(channel);
    return !!(map && username && map.delete(username));
  }

  /** Drops the notices that ran out; answers whether any did. */
  expireTyping(now = Date.now()) {
    let changed = false;
    for (const map of this.typing.values()) {
      for (const [name, t] of map) {
        if (t.until <= now) {
          map.delete(name);
          changed = true;
        }
      }
    }
    return changed;
  }

  /** The users typing in a channel (in the order they started). */
  typingIn(channel) {
    const map = channel ? this.typing.get(channel) : null;
    return map ? [...map.values()].map((t) => t.user) : [];
  }

  // --- presence and agents ------------------------------------------------------------------------

  /** A presence frame of the room channel (presence.state or presence.diff). Answers whether an
   * agent's entry changed through a diff's updates (the sidebar shows the agents' status). */
  applyPresence(frame) {
    let agentChanged = false;
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
        if (m.kind === "agent") {
          agentChanged = this.updateAgent({username: m.username, display_name: m.display_name, ...(m.agent || {}),
            ...(m.status !== undefined ? {status: m.status, task: m.task, progress: m.progress} : {})}) || agentChanged;
        }
      }
      for (const m of frame.leaves || []) this.members.delete(m.username);
    }
    this.countAgentConnections();
    return agentChanged;
  }

  countAgentConnections() {
    for (const a of this.agents.values()) {
      const live = this.members.get(a.username);
      a.connections = live ? live.connections || 1 : 0;
    }
  }

  /** An agent's status, task or name changed (or a new agent): answers whether there was one to update. */
  updateAgent(data) {
    if (!data || !data.username) return false;
    const current = this.agents.get(data.username) || {username: data.username, kind: "agent", connections: 0};
    this.agents.set(data.username, {...current, ...data});
    return true;
  }

  /** Who the people list shows: the humans in the room (active, idle, away, then by name) and the
   * agents (by name). */
  people() {
    const humans = [...this.members.values()].filter((m) => m.kind !== "agent")
      .sort((a, b) => (STATE_RANK[a.state] ?? 3) - (STATE_RANK[b.state] ?? 3) || nameOf(a).localeCompare(nameOf(b)));
    const agents = [...this.agents.values()].sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
    return {humans, agents};
  }

  /** The agent an inbox channel belongs to (or undefined). */
  inboxAgent(ch) {
    return this.agents.get(ch.info.inbox_of || ch.name.replace(/^inbox\./, ""));
  }

  /** A channel's name as the room shows it: an inbox by its agent's name and @username. */
  channelLabel(ch) {
    if (ch.info.kind === "inbox") {
      const agent = this.inboxAgent(ch);
      // The username too: two agents may share a display name, never a username.
      return agent ? `${nameOf(agent)} inbox (@${agent.username})` : ch.name;
    }
    return ch.name;
  }

  // --- the sidebar --------------------------------------------------------------------------------

  /** The sidebar's groups: KIND_GROUPS with their channels not archived, by name; a group with none
   * is left out, except the public one (it has the "create a channel" button). */
  channelGroups() {
    const all = [...this.channels.values()];
    const out = [];
    for (const group of KIND_GROUPS) {
      const channels = all.filter((c) => c.info.kind === group.kind && !c.archived).sort((a, b) => a.name.localeCompare(b.name));
      if (!channels.length && group.kind !== "public") continue;
      out.push({...group, channels});
    }
    return out;
  }

  archivedChannels() {
    return [...this.channels.values()].filter((c) => c.archived);
  }

  /** Whether a channel's unread badge shows: unread messages in a channel the reader does not have open. */
  showsUnread(ch) {
    return ch.unread > 0 && this.open !== ch;
  }
}
