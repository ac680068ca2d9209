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
  return `hsl(${hash % 360}, 70%, 45%)`;
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

const MAX_PUSH_JSON = 128 * 1024; // well under the server's 256 KiB frame limit

/** The first updates (at most `max`, and a frame's worth) composed into one change set, as JSON. */
function composeUpdates(updates, max) {
  let count = Math.min(max, updates.length);
  for (;;) {
    let composed = updates[0].changes;
    for (let i = 1; i < count; i++) composed = composed.compose(updates[i].changes);
    const json = composed.toJSON();
    if (count === 1 || JSON.stringify(json).length <= MAX_PUSH_JSON) return {changes: json, count};
    count = Math.max(1, count >> 1);
  }
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
    conflictWait = 1000} = {}) {
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
    this.stats = {pushes: 0, conflicts: 0, conflictWaits: 0, pulls: 0, received: 0, rateLimited: 0};
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
    this.stopped = true;
    clearTimeout(this.cursorTimer);
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
      case "unsubscribed":
        this.stopped = true;
        this._setStatus("error", frame.reason || "unsubscribed");
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
    if (this.status === "readonly" || this.status === "error") return;
    const updates = sendableUpdates(this.host.state);
    if (!updates.length) {
      this._updateStatus();
      return;
    }
    this.pushing = true;
    const socket = this.socket;
    const revision = this.syncedVersion;
    const me = socket.welcome && socket.welcome.user;
    const {changes, count} = composeUpdates(updates, this.maxBatch);
    this.pushSeq += 1;
    const clientID = `${this.clientID}:${this.pushSeq}`;
    this.pushCounts.set(clientID, count);
    if (this.pushCounts.size > 64) this.pushCounts.delete(this.pushCounts.keys().next().value);
    const frame = {type: "doc.push", topic: this.topic, revision, changes, client_id: clientID};
    let retryAfter = 0;
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
      } else if (error.code !== "disconnected") {
        this._setStatus("error", `${error.code}: ${error.message}`);
      }
    } finally {
      this.pushing = false;
    }
    if (retryAfter) await sleep(retryAfter);
    if (socket.isOpen) this._queueFlush();
  }

  _updateStatus() {
    if (!this.host || this.status === "readonly" || this.status === "error") return;
    const unconfirmed = sendableUpdates(this.host.state).length;
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

// --- editors --------------------------------------------------------------------------------

/** An editor without a DOM: `state`, `dispatch(...specs | tr)`. For tests and scripts. */
export class HeadlessEditor {
  constructor(sync, text, extensions = []) {
    this.sync = sync;
    this.state = EditorState.create({doc: text, extensions: [sync.extension(), extensions]});
    sync.attach(this);
  }

  dispatch(...specs) {
    const tr = specs.length === 1 && specs[0] instanceof Transaction ? specs[0] : this.state.update(...specs);
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
  conflictWait, readOnly = false}) {
  const editable = new Compartment();
  const lock = (locked) => [EditorState.readOnly.of(locked), EditorView.editable.of(!locked)];
  let view = null;
  const sync = new DocSync(socket, topic, {
    clientID,
    cursorInterval,
    conflictWait,
    onStatus(status, detail) {
      if (status === "readonly" && view) view.dispatch({effects: editable.reconfigure(lock(true))});
      if (onStatus) onStatus(status, detail);
    },
  });
  const {text} = await sync.open();
  view = new EditorView({
    parent,
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
