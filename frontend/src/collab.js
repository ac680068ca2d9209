// Co-editing a `doc:<story>/<doc>` topic with CodeMirror 6 and @codemirror/collab (SPEC 9).
//
// The server is the authority and keeps a linear log, one change set per revision. A client pushes
// its unconfirmed updates, composed into one change set, against the revision it is synced to; the
// server applies it and broadcasts `doc.change` to every subscriber (the sender too, which is how
// the push is confirmed), or answers `conflict` with the current revision. The changes up to that
// revision are committed and already on their way to us over the subscription: the client waits
// for them (receiveUpdates maps its unconfirmed updates over each as it comes) and pushes again as
// soon as it has them, without a `doc.pull` round trip. It pulls only if they do not all arrive
// within `conflictWait` ms (a change lost in transit) or when a gap shows in the revisions.
//
// One push in flight at a time: the server cannot tell whether a push at revision R+1 was made on
// top of the same client's push at R, so pipelining would let a second push land on a document
// where the first one failed. Composing instead keeps the number of pushes (and of conflicts, and of
// rate-limited frames) down when edits pile up behind a slow or contended round trip.
//
// Each push has its own client_id, `<editor id>:<n>`, and the editor remembers how many local
// updates push n carried: when push n shows up in the log (live or in a pull after a reconnect),
// exactly those updates are confirmed (receiveUpdates with that many own updates). @codemirror/
// collab's version therefore counts local updates, not server revisions; `syncedVersion` is the
// server revision. A push repeated after a lost answer cannot apply twice: both are made against
// the same revision, so only one of them can win it.
//
//   const {view, sync} = await openCollabEditor({socket, topic: "doc:tale/main", parent})
//   // or, without a DOM (tests, scripts):
//   const editor = await openHeadlessEditor({socket, topic})
//   editor.dispatch({changes: {from: 0, insert: "Once"}})
//
// Others' cursors and selections show with their names: `cursor` frames feed a StateField of
// decorations, mapped through every change; our own selection goes out as `cursor` frames,
// throttled, and only while nothing is unconfirmed (so its positions are in the synced revision the
// server stamps on it).

import {ChangeSet, Compartment, EditorSelection, EditorState, StateEffect, StateField, Transaction} from "@codemirror/state";
import {Decoration, EditorView, WidgetType} from "@codemirror/view";
import {collab, receiveUpdates, sendableUpdates} from "@codemirror/collab";

const HISTORY_KEEP = 500; // received change sets kept to map others' cursors from older revisions
const CURSOR_EXPIRY_MS = 120000; // a cursor not moved for this long is hidden

function randomID() {
  const bytes = new Uint8Array(9);
  if (globalThis.crypto && globalThis.crypto.getRandomValues) globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- others' cursors ------------------------------------------------------------------------

/** Sets (or, with `anchor: null`, removes) the cursor of `user` ({username, display_name}). */
export const setRemoteCursor = StateEffect.define({
  map: (value, changes) =>
    value.anchor == null
      ? value
      : {...value, anchor: changes.mapPos(value.anchor, 1), head: changes.mapPos(value.head, 1)},
});

export function userColor(username) {
  let hash = 0;
  for (const ch of String(username)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${hash % 360}, 65%, 27%)`; // white names on it read at 4.5:1 or more, whatever the hue
}

class CursorWidget extends WidgetType {
  constructor(name, color) {
    super();
    this.name = name;
    this.color = color;
  }

  eq(other) {
    return other.name === this.name && other.color === this.color;
  }

  toDOM() {
    const caret = document.createElement("span");
    caret.className = "cm-remoteCursor";
    caret.style.borderLeftColor = this.color;
    const label = document.createElement("span");
    label.className = "cm-remoteCursorName";
    label.style.backgroundColor = this.color;
    label.textContent = this.name; // text, never HTML
    caret.appendChild(label);
    return caret;
  }

  ignoreEvent() {
    return true;
  }
}

function clampCursor(cursor, length) {
  return {...cursor, anchor: Math.min(cursor.anchor, length), head: Math.min(cursor.head, length)};
}

function buildDecorations(cursors) {
  const ranges = [];
  for (const c of cursors.values()) {
    const from = Math.min(c.anchor, c.head);
    const to = Math.max(c.anchor, c.head);
    if (from < to) {
      ranges.push(Decoration.mark({
        class: "cm-remoteSelection",
        attributes: {style: `background-color: color-mix(in srgb, ${c.color} 25%, transparent)`, title: c.name},
      }).range(from, to));
    }
    ranges.push(Decoration.widget({widget: new CursorWidget(c.name, c.color), side: 1}).range(c.head));
  }
  return Decoration.set(ranges, true);
}

/** username -> {username, name, color, anchor, head, at}, in this editor's document coordinates. */
export const remoteCursorsField = StateField.define({
  create: () => ({cursors: new Map(), decorations: Decoration.none}),
  update(value, tr) {
    let cursors = value.cursors;
    let touched = false;
    if (tr.docChanged && cursors.size) {
      cursors = new Map();
      for (const [key, c] of value.cursors) {
        cursors.set(key, {...c, anchor: tr.changes.mapPos(c.anchor, 1), head: tr.changes.mapPos(c.head, 1)});
      }
      touched = true;
    }
    for (const effect of tr.effects) {
      if (!effect.is(setRemoteCursor)) continue;
      if (!touched) cursors = new Map(cursors);
      touched = true;
      const {user, anchor, head} = effect.value;
      if (anchor == null) {
        cursors.delete(user.username);
      } else {
        const name = user.display_name || user.username;
        cursors.set(user.username, clampCursor(
          {username: user.username, name, color: userColor(user.username), anchor, head, at: Date.now()},
          tr.newDoc.length));
      }
    }
    if (!touched) return value;
    return {cursors, decorations: buildDecorations(cursors)};
  },
  provide: (field) => EditorView.decorations.from(field, (value) => value.decorations),
});

export const remoteCursorTheme = EditorView.baseTheme({
  ".cm-remoteCursor": {
    position: "relative",
    borderLeft: "2px solid",
    marginLeft: "-1px",
    marginRight: "-1px",
    pointerEvents: "none",
  },
  ".cm-remoteCursorName": {
    position: "absolute",
    top: "-1.35em",
    left: "-2px",
    fontSize: "0.75em",
    lineHeight: "1.2",
    padding: "0 3px",
    borderRadius: "3px 3px 3px 0",
    color: "white",
    whiteSpace: "nowrap",
    userSelect: "none",
  },
});

/** Others' cursors as {username: {name, anchor, head}} (for tests and status lines). */
export function remoteCursors(state) {
  const out = {};
  for (const [key, c] of state.field(remoteCursorsField).cursors) out[key] = {name: c.name, anchor: c.anchor, head: c.head};
  return out;
}

// --- the sync engine ------------------------------------------------------------------------

const MAX_PUSH_BYTES = 128 * 1024; // well under the server's 256 KiB frame limit
// Until doc.state tells ours: characters one change may insert, characters in the document, changed
// ranges in one push.
export const DEFAULT_LIMITS = {maxInsert: 65536, maxChars: 2000000, maxChanges: 10000};
// A local edit inserting more than this is split into several updates (a large paste): each push
// then stays under the server's limits. Small enough that a push of a few of them fits a frame.
export const SPLIT_INSERT = 16384;

/** Characters a change set inserts (UTF-16 units: at least the server's count in code points). */
export function insertedLength(changes) {
  let n = 0;
  changes.iterChanges((fromA, toA, fromB, toB) => {
    n += toB - fromB;
  });
  return n;
}

/** Changed ranges in a change set as the server counts them (the `[...]` items of its JSON). */
export function changeCount(changes) {
  let n = 0;
  changes.iterChanges(() => {
    n += 1;
  }, true);
  return n;
}

const encoder = new TextEncoder();

function utf8Length(text) {
  return encoder.encode(text).length;
}

/** The first updates (at most `max`; within the server's insert limit, its cap on changed ranges
 * and a frame's worth) composed into one change set, as JSON. */
export function composeUpdates(updates, max, maxInsert = DEFAULT_LIMITS.maxInsert, maxChanges = DEFAULT_LIMITS.maxChanges) {
  let count = Math.min(max, updates.length);
  for (;;) {
    let composed = updates[0].changes;
    for (let i = 1; i < count; i++) composed = composed.compose(updates[i].changes);
    const json = composed.toJSON();
    if (count === 1 || (insertedLength(composed) <= maxInsert && changeCount(composed) <= maxChanges &&
        utf8Length(JSON.stringify(json)) <= MAX_PUSH_BYTES)) {
      return {changes: json, count};
    }
    count = Math.max(1, count >> 1);
  }
}

/** The JSON bytes a changed range may take in a push, at most (positions up to 7 digits). */
function rangeBytes(text) {
  if (!text) return 24;
  let newlines = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) newlines += 1;
  return 24 + utf8Length(JSON.stringify(text)) + newlines; // a line break is `","`, not `\n`
}

/** Splits a local transaction that one push could not carry into a series of transaction specs
 * that together make the same change: each inserts at most `maxInsert` characters (a longer insert
 * is cut, never inside a surrogate pair), changes at most `maxChanges` ranges (a replace-all over
 * many occurrences) and stays within a push's worth of JSON. The ranges go from the last to the
 * first, so that each spec's positions hold when it is applied. Null when it needs no split. */
export function splitLocalEdit(tr, {maxInsert = SPLIT_INSERT, maxChanges = DEFAULT_LIMITS.maxChanges} = {}) {
  if (!tr.docChanged) return null;
  const limit = Math.max(2, maxInsert);
  const cap = Math.max(1, maxChanges);
  const ranges = [];
  let inserted = 0;
  let bytes = 0;
  tr.changes.iterChanges((fromA, toA, fromB, toB, text) => {
    const str = text.toString();
    const weight = rangeBytes(str);
    ranges.push({fromA, toA, text: str, weight});
    inserted += str.length;
    bytes += weight;
  }, true); // one range per `[...]` item of the JSON, as the server counts them
  if (inserted <= limit && ranges.length <= cap && bytes <= MAX_PUSH_BYTES) return null;
  const userEvent = tr.annotation(Transaction.userEvent) || (inserted > limit ? "input.paste" : "input");
  const specs = [];
  let group = [];
  let groupInsert = 0;
  let groupBytes = 0;
  const flush = () => {
    if (!group.length) return;
    specs.push({changes: group.reverse(), userEvent}); // ascending positions, as CodeMirror likes them
    group = [];
    groupInsert = 0;
    groupBytes = 0;
  };
  for (let i = ranges.length - 1; i >= 0; i--) {
    const {fromA, toA, text, weight} = ranges[i];
    if (text.length <= limit) {
      if (group.length >= cap || groupInsert + text.length > limit || groupBytes + weight > MAX_PUSH_BYTES) flush();
      group.push({from: fromA, to: toA, insert: text});
      groupInsert += text.length;
      groupBytes += weight;
      continue;
    }
    flush();
    let offset = 0;
    let pos = fromA;
    while (offset < text.length) {
      let end = Math.min(offset + limit, text.length);
      const code = text.charCodeAt(end - 1);
      if (end < text.length && code >= 0xd800 && code <= 0xdbff) end -= 1; // keep the pair whole
      const piece = text.slice(offset, end);
      specs.push({changes: offset ? {from: pos, insert: piece} : {from: fromA, to: toA, insert: piece}, userEvent});
      pos += piece.length;
      offset = end;
    }
  }
  flush();
  const last = specs[specs.length - 1];
  last.selection = tr.newSelection;
  last.scrollIntoView = true;
  if (tr.effects.length) last.effects = tr.effects; // in the final document's positions, as the last spec's
  return specs;
}

/** Splits a local transaction that inserts more than `limit` characters (splitLocalEdit without
 * the cap on ranges); null when it needs no split. */
export function splitLargeInsert(tr, limit = SPLIT_INSERT) {
  return splitLocalEdit(tr, {maxInsert: limit, maxChanges: Infinity});
}

/** splitLocalEdit by the limits a DocSync learnt from doc.state. */
function splitForSync(tr, sync) {
  return splitLocalEdit(tr, {maxInsert: Math.min(SPLIT_INSERT, sync.limits.maxInsert), maxChanges: sync.limits.maxChanges});
}

/** Guards what local edits may reach the sync: splits large inserts and edits changing more ranges
 * than a push may carry (splitLocalEdit), replaces NUL characters (no
 * database stores them), and refuses an edit that would make the document longer than the server
 * keeps, before anything is lost (`onRefuse(message)`). For EditorView's dispatchTransactions. */
export function guardLocalEdits(sync, onRefuse) {
  return (trs, view) => {
    for (const tr of trs) {
      if (!tr.docChanged || tr.annotation(Transaction.remote)) {
        view.update([tr]);
        continue;
      }
      let local = tr;
      let nul = false;
      tr.changes.iterChanges((fromA, toA, fromB, toB, inserted) => {
        if (inserted.toString().includes("\u0000")) nul = true;
      });
      if (nul) {
        const changes = [];
        tr.changes.iterChanges((fromA, toA, fromB, toB, inserted) =>
          changes.push({from: fromA, to: toA, insert: inserted.toString().replaceAll("\u0000", "\ufffd")}));
        local = view.state.update({changes, userEvent: tr.annotation(Transaction.userEvent)});
      }
      const maxChars = sync.limits.maxChars;
      if (local.newDoc.length > maxChars && local.newDoc.length > local.startState.doc.length) {
        if (onRefuse) {
          onRefuse(`That would make the document ${local.newDoc.length.toLocaleString("en")} characters long; ` +
            `it holds at most ${maxChars.toLocaleString("en")}. Nothing was changed.`);
        }
        return; // this transaction and the ones built on it
      }
      const specs = splitForSync(local, sync);
      if (!specs) {
        view.update([local]);
      } else {
        for (const spec of specs) view.update([view.state.update(spec)]);
      }
      if (local !== tr || specs) return; // later transactions of the batch were built on the original
    }
  };
}

/**
 * Keeps one editor state in sync with a `doc:` topic over a MythlineSocket.
 *
 * `await sync.open()` subscribes and resolves with the server's `{revision, text}`; create the
 * editor state with `sync.extension()` among its extensions and that text, then `sync.attach(host)`
 * where `host.state` is the current state and `host.dispatch(tr)` applies a transaction. Call
 * `sync.changed()` after every local transaction (openCollabEditor / HeadlessEditor do).
 *
 * `status` (and `onStatus(status, detail)`): "loading", "synced" (nothing unconfirmed), "sending",
 * "offline" (the socket is down; edits are kept and sent on reconnect), "readonly" (viewer),
 * "error" (the server refused a change; `detail` says why).
 */
export class DocSync {
  constructor(socket, topic, {clientID = randomID(), onStatus = null, cursorInterval = 100, pushTimeout = 10000,
    conflictWait = 1000, draftKey = null} = {}) {
    this.socket = socket;
    this.topic = topic;
    this.clientID = clientID;
    this.onStatus = onStatus;
    this.cursorInterval = cursorInterval;
    this.pushTimeout = pushTimeout;
    this.conflictWait = conflictWait; // ms to wait for the changes a conflict announced before pulling
    this.host = null;
    this.status = "loading";
    this.detail = null;
    this.startVersion = null;
    this.serverRevision = 0; // the highest revision the server told us of
    this.incoming = new Map(); // revision -> {changes (JSON), client_id}, not yet applied
    this.history = []; // [{revision, changes: ChangeSet}] most recent received, to map cursors
    this.stashedCursors = new Map(); // cursor frames from revisions we have not reached yet
    this.pushing = false;
    this.pushSeq = 0;
    this.pushCounts = new Map(); // push client_id -> how many local updates it composed
    this.maxBatch = 100; // local updates per push at most
    this.revision = null; // the server revision the editor is synced to
    this.live = false; // a doc.state arrived on the current connection: pushes may go out
    this.pulling = null;
    this.flushQueued = false;
    this.cursorTimer = null;
    this.cursorDirty = false;
    this.lastCursorSent = 0;
    this.stopped = false;
    this.stats = {pushes: 0, conflicts: 0, conflictWaits: 0, pulls: 0, received: 0, rateLimited: 0, refused: 0};
    this.limits = {...DEFAULT_LIMITS};
    this.draftKey = draftKey; // where unsaved edits are kept in this browser (null: nowhere)
    this.draftTimer = null;
    this.inflight = null; // {client_id, count, revision} of the push on its way
    this.retryTimer = null;
    this.retryDelay = 0;
    this._idleWaiters = [];
    this._revisionWaiters = new Set(); // {target, done(ok)}: resolved once syncedVersion >= target
    this._stateOff = null;
    this.sub = null;
  }

  /** Subscribes; resolves with the first `doc.state` ({revision, text}). */
  open() {
    const topic = this.topic;
    return new Promise((resolve, reject) => {
      this._opened = {resolve, reject};
      this.sub = this.socket.subscribe(this.topic, {}, (frame) => this._onFrame(frame));
      this._stateOff = this.socket.onState((state, info) => {
        if (state === "open") return; // the resubscription's doc.state resumes
        this.live = false;
        this._endRevisionWaits(false); // what was on its way is lost with the socket: _resume pulls
        if (state === "closed" && this.startVersion == null && this.socket._stopped) {
          reject(new Error(`the socket closed (${info ? info.code : "?"}) before ${topic} loaded`));
        }
        if (this.host && !this.stopped) this._setStatus("offline");
      });
    });
  }

  /** The extensions the editor state needs (collab with the right start version, others' cursors). */
  extension() {
    if (this.startVersion == null) throw new Error("DocSync.extension(): await open() first");
    return [collab({startVersion: this.startVersion, clientID: this.clientID}), remoteCursorsField, remoteCursorTheme];
  }

  attach(host) {
    this.host = host;
    this._applyIncoming();
    this._resume();
  }

  close() {
    this.saveDraftNow();
    this.stopped = true;
    clearTimeout(this.cursorTimer);
    clearTimeout(this.draftTimer);
    clearTimeout(this.retryTimer);
    if (this._stateOff) this._stateOff();
    if (this.sub) this.sub.unsubscribe();
    for (const w of this._idleWaiters.splice(0)) w.reject(new Error("closed"));
    this._endRevisionWaits(false);
  }

  get state() {
    return this.host.state;
  }

  /** The server revision this editor has received every change up to. */
  get syncedVersion() {
    return this.revision;
  }

  /** Call after local transactions: pushes new changes, sends the cursor when the selection moved. */
  changed(transactions = []) {
    if (!this.host || this.stopped) return;
    if (sendableUpdates(this.host.state).length) {
      this._updateStatus();
      this._queueFlush();
      this._saveDraftSoon();
    }
    if (transactions.some((tr) => tr.selection || (tr.docChanged && !tr.annotation(Transaction.remote)))) {
      this._cursorChanged();
    }
  }

  /** Resolves once nothing is unconfirmed (every local change is in the server's log). */
  whenSynced() {
    if (this.host && !sendableUpdates(this.host.state).length) return Promise.resolve();
    return new Promise((resolve, reject) => this._idleWaiters.push({resolve, reject}));
  }

  /** Pulls until the server has nothing newer; resolves with the synced revision. */
  async catchUp() {
    for (;;) {
      const before = this.syncedVersion;
      const got = await this.pull();
      if (!got || this.syncedVersion === before) return this.syncedVersion;
    }
  }

  // --- frames from the server ---------------------------------------------------------------

  _onFrame(frame) {
    if (this.stopped) return;
    switch (frame.type) {
      case "doc.state":
        this.live = true;
        this.limits = {
          maxInsert: frame.max_insert_chars || DEFAULT_LIMITS.maxInsert,
          maxChars: frame.max_chars || DEFAULT_LIMITS.maxChars,
          maxChanges: frame.max_changes || DEFAULT_LIMITS.maxChanges,
        };
        this.serverRevision = Math.max(this.serverRevision, frame.revision);
        if (this.startVersion == null) {
          this.startVersion = frame.revision;
          this.revision = frame.revision;
          this._opened.resolve({revision: frame.revision, text: frame.text});
        } else if (this.host) {
          this._resume();
        }
        break;
      case "doc.change":
        this._receive([frame]);
        break;
      case "cursor":
        this._onCursor(frame);
        break;
      case "unsubscribed": // only the server ends a subscription from its side (access revoked)
        if (frame.reason !== "access_revoked") break;
        this.stopped = true;
        this._setStatus("error", "You no longer have access to this document.");
        break;
      case "error":
        if (this.startVersion == null) this._opened.reject(new Error(`${frame.code}: ${frame.message}`));
        break;
      default:
        break;
    }
  }

  /** After (re)subscribing: pull what was missed, then send what is unconfirmed. */
  _resume() {
    if (!this.host || this.stopped) return;
    // A push whose answer was lost with the old socket failed with "disconnected". If it was
    // applied, the pull below confirms it (by client_id); a push sent before that pull lands is
    // made against an older revision and refused as a conflict, so nothing applies twice.
    const behind = this.serverRevision > this.syncedVersion;
    (behind ? this.pull() : Promise.resolve()).then(() => this._queueFlush(), () => this._queueFlush());
    this._updateStatus();
    this._cursorChanged();
  }

  _receive(changes) {
    for (const c of changes) {
      this.serverRevision = Math.max(this.serverRevision, c.revision);
      if (this.revision == null || c.revision > this.revision) {
        this.incoming.set(c.revision, c);
      }
    }
    if (this.host) this._applyIncoming();
  }

  /** Applies received changes in revision order from the synced version; pulls over a gap. */
  _applyIncoming() {
    let version = this.syncedVersion;
    let applied = false;
    while (this.incoming.has(version + 1)) {
      const c = this.incoming.get(version + 1);
      this.incoming.delete(version + 1);
      let changes;
      try {
        changes = ChangeSet.fromJSON(c.changes);
      } catch (error) {
        this._setStatus("error", `unreadable change at revision ${c.revision}: ${error.message}`);
        return;
      }
      // Our own push: confirm the local updates it composed. client_ids are visible to every
      // subscriber, so one of ours from another author is someone else's change (a copied id).
      const me = this.socket.welcome && this.socket.welcome.user;
      const count = this.pushCounts.get(c.client_id);
      const unconfirmed = sendableUpdates(this.host.state);
      let tr;
      if (count && (!me || c.author === me.username) && count <= unconfirmed.length) {
        this.pushCounts.delete(c.client_id);
        tr = receiveUpdates(this.host.state, unconfirmed.slice(0, count).map((u) => ({changes: u.changes, clientID: this.clientID})));
      } else {
        tr = receiveUpdates(this.host.state, [{changes, clientID: `remote:${c.client_id}`}]);
      }
      this.host.dispatch(tr);
      this.revision = version + 1;
      this.stats.received += 1;
      this.history.push({revision: version + 1, changes});
      if (this.history.length > HISTORY_KEEP) this.history.splice(0, this.history.length - HISTORY_KEEP);
      version += 1;
      applied = true;
    }
    for (const revision of this.incoming.keys()) if (revision <= version) this.incoming.delete(revision);
    if (this.incoming.size && !this.pulling) this.pull().catch(() => {}); // a gap: fill it from the log
    if (applied) {
      this._replayStashedCursors();
      this._updateStatus();
      this._endRevisionWaits(true);
    }
  }

  /** Resolves with true once every change up to `target` is applied, false after `timeout` ms or
   * if the socket drops first. */
  _waitForRevision(target, timeout) {
    if (this.syncedVersion >= target) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        target,
        done: (ok) => {
          clearTimeout(waiter.timer);
          this._revisionWaiters.delete(waiter);
          resolve(ok);
        },
      };
      waiter.timer = setTimeout(() => waiter.done(false), timeout);
      this._revisionWaiters.add(waiter);
    });
  }

  _endRevisionWaits(reached) {
    for (const waiter of [...this._revisionWaiters]) {
      if (!reached || this.syncedVersion >= waiter.target) waiter.done(reached);
    }
  }

  /** One `doc.pull` from the synced version. Resolves with the number of changes received. */
  pull() {
    if (this.pulling) return this.pulling;
    const after = this.syncedVersion;
    this.stats.pulls += 1;
    this.pulling = this.socket.request({type: "doc.pull", topic: this.topic, after})
      .then((reply) => {
        this._receive(reply.changes || []);
        return (reply.changes || []).length;
      })
      .finally(() => {
        this.pulling = null;
      })
      .then((received) => {
        // A pull answers at most a page of the log: keep going while the server is known to be ahead.
        if (received && !this.stopped && (this.serverRevision > this.revision || this.incoming.size)) {
          this.pull().catch(() => {});
        }
        return received;
      });
    return this.pulling;
  }

  // --- pushing ------------------------------------------------------------------------------

  _queueFlush() {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this._flush();
    });
  }

  async _flush() {
    if (this.pushing || !this.host || this.stopped || !this.live || !this.socket.isOpen) return;
    if (this.status === "readonly" || this.retryTimer) return;
    const updates = sendableUpdates(this.host.state);
    if (!updates.length) {
      this._updateStatus();
      return;
    }
    this.pushing = true;
    const socket = this.socket;
    const revision = this.syncedVersion;
    const me = socket.welcome && socket.welcome.user;
    const {changes, count} = composeUpdates(updates, this.maxBatch, this.limits.maxInsert, this.limits.maxChanges);
    this.pushSeq += 1;
    const clientID = `${this.clientID}:${this.pushSeq}`;
    this.pushCounts.set(clientID, count);
    if (this.pushCounts.size > 64) this.pushCounts.delete(this.pushCounts.keys().next().value);
    const frame = {type: "doc.push", topic: this.topic, revision, changes, client_id: clientID};
    let retryAfter = 0;
    this.inflight = {client_id: clientID, count, revision};
    this._saveDraftSoon();
    try {
      this.stats.pushes += 1;
      await socket.request(frame, {
        timeout: this.pushTimeout,
        match: (f) => f.type === "doc.change" && f.topic === this.topic && f.client_id === clientID &&
          f.revision === revision + 1 && (!me || f.author === me.username),
      });
    } catch (error) {
      // Refused (anything but a lost answer): it is not in the log, and never will be.
      if (error.code !== "timeout" && error.code !== "disconnected") this.pushCounts.delete(clientID);
      if (error.code === "conflict") {
        this.stats.conflicts += 1;
        const current = error.frame && typeof error.frame.revision === "number" ? error.frame.revision : null;
        if (current != null) this.serverRevision = Math.max(this.serverRevision, current);
        // The changes up to `current` are committed, so their doc.change frames are coming over our
        // subscription (the server sent the ones it had before this answer): once we have them,
        // receiveUpdates has rebased what is unconfirmed and the next push is made at `current`.
        // A pull is the fallback, for a change lost on the way (or an answer without a revision).
        if (current != null && await this._waitForRevision(current, this.conflictWait)) {
          this.stats.conflictWaits += 1;
        } else {
          await this.pull().catch(() => {});
        }
      } else if (error.code === "rate_limited") {
        this.stats.rateLimited += 1;
        const details = (error.frame && error.frame.details) || {};
        retryAfter = 1000 * (Number(details.retry_after) || 1);
      } else if (error.code === "timeout") {
        await this.pull().catch(() => {}); // maybe it was applied: the pull confirms it by client_id
      } else if (error.code === "forbidden") {
        this._setStatus("readonly", error.message);
      } else if (error.code === "payload_too_large" && count > 1 && this._lowerChangeCap(error)) {
        // The server caps changed ranges per push lower than we knew (a doc.state without
        // max_changes): the next push composes fewer updates, at once.
      } else if (error.code !== "disconnected") {
        // Refused for another reason: the edits stay here (and in the browser's draft), shown as
        // not saved, and the push is tried again later; a refusal never stops the edits after it.
        this.stats.refused += 1;
        this.retryDelay = Math.min(60000, Math.max(2000, this.retryDelay * 2));
        this._setStatus("error", `${error.message || error.code} Your text is kept in this browser; trying again.`);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this._queueFlush();
        }, this.retryDelay);
      }
    } finally {
      this.pushing = false;
      this.inflight = null;
    }
    if (retryAfter) await sleep(retryAfter);
    if (socket.isOpen) this._queueFlush();
  }

  /** Lowers limits.maxChanges to the cap a refusal names; true if it did. */
  _lowerChangeCap(error) {
    const details = (error.frame && error.frame.details) || {};
    const cap = Number(details.max_changes);
    if (!(cap >= 1 && cap < this.limits.maxChanges)) return false;
    this.limits.maxChanges = cap;
    return true;
  }

  _updateStatus() {
    if (!this.host || this.status === "readonly" || (this.status === "error" && this.retryTimer)) return;
    const unconfirmed = sendableUpdates(this.host.state).length;
    if (!unconfirmed) this.retryDelay = 0;
    this._saveDraftSoon();
    if (!this.socket.isOpen) this._setStatus("offline");
    else this._setStatus(unconfirmed ? "sending" : "synced");
    if (!unconfirmed) {
      for (const w of this._idleWaiters.splice(0)) w.resolve();
      if (this.cursorDirty) this._cursorChanged();
    }
  }

  _setStatus(status, detail = null) {
    if (status === this.status && detail === this.detail) return;
    this.status = status;
    this.detail = detail;
    if (this.onStatus) {
      try {
        this.onStatus(status, detail);
      } catch (error) {
        console.error(error);
      }
    }
  }

  // --- the draft: unsaved edits kept in this browser ---------------------------------------
  // While anything is unconfirmed, the editor keeps it in localStorage under
  // `<draftKey>.<username>.<topic>.<clientID>`: the synced revision, the push on its way (its client_id and the
  // changes it carries) and the changes after it. After a reload or a crash the page offers it
  // back (`findDrafts`, `restoreDraft`): it is rebased over what the server committed since, and
  // a push that did land (its client_id is in the log) is not applied twice.

  /** Where this user's drafts of this document are kept (`<draftKey>.<username>.<topic>`). */
  draftBase() {
    const user = this.socket.welcome && this.socket.welcome.user;
    return this.draftKey && user ? `${this.draftKey}.${user.username}.${this.topic}` : null;
  }

  /** True while some local edit is not in the server's log. */
  hasUnsaved() {
    return Boolean(this.host && sendableUpdates(this.host.state).length);
  }

  _saveDraftSoon() {
    if (!this.draftKey || this.draftTimer) return;
    this.draftTimer = setTimeout(() => {
      this.draftTimer = null;
      this.saveDraftNow();
    }, 250);
  }

  /** Writes (or, with nothing unsaved, removes) this editor's draft now. False if the browser
   * refused to store it (quota). */
  saveDraftNow() {
    const base = this.draftBase();
    if (!base || !this.host || this.stopped) return true;
    const key = `${base}.${this.clientID}`;
    const storage = globalThis.localStorage;
    if (!storage) return false;
    const updates = sendableUpdates(this.host.state);
    try {
      if (!updates.length) {
        storage.removeItem(key);
        return true;
      }
      const compose = (list) => list.reduce((acc, u) => (acc ? acc.compose(u.changes) : u.changes), null);
      const inflight = this.inflight && this.inflight.revision === this.syncedVersion ? this.inflight : null;
      const head = inflight ? compose(updates.slice(0, inflight.count)) : null;
      const tail = compose(updates.slice(inflight ? inflight.count : 0));
      storage.setItem(key, JSON.stringify({
        topic: this.topic, revision: this.syncedVersion, savedAt: Date.now(),
        inflight: inflight ? {client_id: inflight.client_id, changes: head.toJSON()} : null,
        changes: tail ? tail.toJSON() : null,
      }));
      return true;
    } catch (error) {
      console.warn("could not keep the draft in this browser", error);
      return false;
    }
  }

  /** Applies a draft (from findDrafts) on top of the current text, rebased over every change the
   * server committed since it was saved. Resolves with the number of characters it put back. */
  async restoreDraft(draft) {
    const server = [];
    let after = draft.revision;
    while (after < this.syncedVersion) {
      const reply = await this.socket.request({type: "doc.pull", topic: this.topic, after});
      const page = (reply.changes || []).filter((c) => c.revision <= this.syncedVersion);
      if (!page.length) break;
      server.push(...page);
      after = page[page.length - 1].revision;
    }
    if (after !== this.syncedVersion) throw new Error("the document's history since the draft could not be read");
    const me = this.socket.welcome && this.socket.welcome.user;
    let rest = server;
    let changes = draft.changes ? ChangeSet.fromJSON(draft.changes) : null;
    if (draft.inflight) {
      const landed = server.length && server[0].client_id === draft.inflight.client_id &&
        (!me || server[0].author === me.username);
      if (landed) {
        rest = server.slice(1); // that part is in the log already
      } else {
        const head = ChangeSet.fromJSON(draft.inflight.changes);
        changes = changes ? head.compose(changes) : head;
      }
    }
    if (!changes) return 0;
    const committed = rest.reduce((acc, c) => {
      const cs = ChangeSet.fromJSON(c.changes);
      return acc ? acc.compose(cs) : cs;
    }, null);
    const rebased = committed ? changes.map(committed) : changes;
    if (rebased.length !== this.host.state.doc.length) throw new Error("the draft does not fit the document");
    this.host.dispatch(this.host.state.update({changes: rebased, userEvent: "input.restore"}));
    this.changed([]);
    return insertedLength(rebased);
  }

  // --- cursors ------------------------------------------------------------------------------

  _cursorChanged() {
    this.cursorDirty = true;
    if (this.cursorTimer) return;
    const wait = Math.max(0, this.lastCursorSent + this.cursorInterval - Date.now());
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = null;
      this.sendCursor();
    }, wait);
  }

  /** Sends our main selection now, if it can be expressed in the synced revision. */
  sendCursor() {
    if (!this.host || this.stopped || !this.cursorDirty || !this.live || !this.socket.isOpen) return false;
    // With unconfirmed changes our positions are not in any server revision; try again once synced.
    if (sendableUpdates(this.host.state).length) return false;
    const {anchor, head} = this.host.state.selection.main;
    if (this.socket.send({type: "cursor", topic: this.topic, anchor, head})) {
      this.cursorDirty = false;
      this.lastCursorSent = Date.now();
      return true;
    }
    return false;
  }

  _onCursor(frame) {
    if (!frame.user || typeof frame.anchor !== "number") return;
    const me = this.socket.welcome && this.socket.welcome.user;
    if (me && me.username === frame.user.username) return; // our own other tab
    if (!this.host) return;
    const revision = typeof frame.revision === "number" ? frame.revision : this.syncedVersion;
    if (revision > this.syncedVersion) {
      this.stashedCursors.set(frame.user.username, frame); // the changes it refers to are on their way
      return;
    }
    this._showCursor(frame, revision);
  }

  _replayStashedCursors() {
    for (const [key, frame] of this.stashedCursors) {
      if (frame.revision <= this.syncedVersion) {
        this.stashedCursors.delete(key);
        this._showCursor(frame, frame.revision);
      }
    }
  }

  _showCursor(frame, revision) {
    const state = this.host.state;
    let anchor = frame.anchor;
    let head = frame.head ?? frame.anchor;
    // Positions are in `revision`: map them through what we received since, then through our own
    // unconfirmed changes, into this editor's document.
    const since = this.history.filter((h) => h.revision > revision);
    if (since.length !== this.syncedVersion - revision) return; // too old to place
    const maps = since.map((h) => h.changes).concat(sendableUpdates(state).map((u) => u.changes));
    for (const changes of maps) {
      anchor = changes.mapPos(Math.min(anchor, changes.length), 1);
      head = changes.mapPos(Math.min(head, changes.length), 1);
    }
    this.host.dispatch(state.update({effects: setRemoteCursor.of({user: frame.user, anchor, head})}));
  }

  /** Hides cursors that have not moved for a while (their owner left or went quiet). */
  expireCursors(now = Date.now()) {
    if (!this.host) return;
    const effects = [];
    for (const c of this.host.state.field(remoteCursorsField).cursors.values()) {
      if (now - c.at > CURSOR_EXPIRY_MS) effects.push(setRemoteCursor.of({user: {username: c.username}, anchor: null}));
    }
    if (effects.length) this.host.dispatch(this.host.state.update({effects}));
  }
}

// --- drafts ---------------------------------------------------------------------------------

/** The drafts kept in this browser under `draftKey` (from editors that did not get their edits
 * into the log), newest first: [{key, revision, savedAt, inflight, changes}]. */
export function findDrafts(draftKey) {
  const storage = globalThis.localStorage;
  if (!storage || !draftKey) return [];
  const out = [];
  for (let i = 0; i < storage.length; i++) {
    const key = storage.key(i);
    if (!key || !key.startsWith(`${draftKey}.`)) continue;
    try {
      const draft = JSON.parse(storage.getItem(key));
      if (draft && typeof draft.revision === "number") out.push({...draft, key});
    } catch {
      // not ours, or torn: leave it
    }
  }
  return out.sort((a, b) => b.savedAt - a.savedAt);
}

export function forgetDraft(draft) {
  if (globalThis.localStorage && draft && draft.key) globalThis.localStorage.removeItem(draft.key);
}

// --- editors --------------------------------------------------------------------------------

/** An editor without a DOM: `state`, `dispatch(...specs | tr)`. For tests and scripts. */
export class HeadlessEditor {
  constructor(sync, text, extensions = []) {
    this.sync = sync;
    this.state = EditorState.create({doc: text, extensions: [sync.extension(), extensions]});
    sync.attach(this);
  }

  /** Applies a transaction; a local one too large for a push goes as several (splitLocalEdit), and
   * the last is returned. */
  dispatch(...specs) {
    const tr = specs.length === 1 && specs[0] instanceof Transaction ? specs[0] : this.state.update(...specs);
    const parts = tr.docChanged && !tr.annotation(Transaction.remote) ? splitForSync(tr, this.sync) : null;
    if (!parts) return this._apply(tr);
    let last = tr;
    for (const spec of parts) last = this._apply(this.state.update(spec));
    return last;
  }

  _apply(tr) {
    this.state = tr.state;
    this.sync.changed([tr]);
    return tr;
  }

  get text() {
    return this.state.doc.toString();
  }
}

export async function openHeadlessEditor({socket, topic, clientID, onStatus, extensions = [], cursorInterval, conflictWait}) {
  const sync = new DocSync(socket, topic, {clientID, onStatus, cursorInterval, conflictWait});
  const {text} = await sync.open();
  return new HeadlessEditor(sync, text, extensions);
}

/**
 * A CodeMirror EditorView on `topic`, in `parent`. `extensions` adds the page's own (keymaps,
 * history, line wrapping...); `readOnly` for viewers (it also turns on by itself if the server
 * refuses an edit as forbidden). Resolves with {view, sync, destroy}.
 */
export async function openCollabEditor({socket, topic, parent, extensions = [], clientID, onStatus, cursorInterval,
  conflictWait, readOnly = false, draftKey = null, onRefuse = null}) {
  const editable = new Compartment();
  const lock = (locked) => [EditorState.readOnly.of(locked), EditorView.editable.of(!locked)];
  let view = null;
  const sync = new DocSync(socket, topic, {
    clientID,
    cursorInterval,
    conflictWait,
    draftKey,
    onStatus(status, detail) {
      if (status === "readonly" && view) view.dispatch({effects: editable.reconfigure(lock(true))});
      if (onStatus) onStatus(status, detail);
    },
  });
  const {text} = await sync.open();
  view = new EditorView({
    parent,
    dispatchTransactions: guardLocalEdits(sync, onRefuse),
    state: EditorState.create({
      doc: text,
      extensions: [
        sync.extension(),
        EditorView.updateListener.of((update) => sync.changed(update.transactions)),
        editable.of(lock(readOnly)),
        extensions,
      ],
    }),
  });
  sync.attach({
    get state() {
      return view.state;
    },
    dispatch: (tr) => view.dispatch(tr),
  });
  const expiry = setInterval(() => sync.expireCursors(), 15000);
  return {
    view,
    sync,
    destroy() {
      clearInterval(expiry);
      sync.close();
      view.destroy();
    },
  };
}

export {ChangeSet, EditorSelection, EditorState};
