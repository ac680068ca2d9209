// The story room's state, apart from the page that shows it and the socket that feeds it (issue #16):
// the channels, each channel's messages (kept by seq, de-duplicated, gaps known), replies per
// message, votes per proposal, who is typing where (until their notice expires), unread counts
// (from the read cursors and the channel the reader has open) and the read cursor acks.
// No DOM, no socket, no fetch: room.js asks what changed and draws it; tests/node/roomstate.test.mjs
// drives it directly.

export const TYPING_DEFAULT_S = 6; // how long a "typing" notice lasts when the frame does not say

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
  constructor({me = null} = {}) {
    this.me = me;
    this.channels = new Map(); // name -> ChannelState
    this.open = null; // the ChannelState the reader has open
    this.byId = new Map(); // message id -> message (every channel, and threads)
    this.replies = new Map(); // parent id -> Set of reply ids
    this.votes = new Map(); // proposal id -> Map username -> {choice, sender, created_at}
    this.decided = new Set(); // proposal ids a decision closed
    this.typing = new Map(); // channel name -> Map username -> {user, until}
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
    if (live && m.seq > ch.baseSeq && !this.isMe(m.sender) && m.seq > ch.readSeq &&
        !(this.open === ch && (typeof reading === "function" ? reading() : reading))) {
      ch.unread += 1;
      change.counted = true;
    }
    return change;
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
}
