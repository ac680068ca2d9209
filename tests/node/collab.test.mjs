// Unit tests of frontend/src/collab.js (node --test): headless editors over the real socket client
// against an in-process authority that speaks the doc frames of SPEC 9 and misbehaves on request
// (lost answers, rate limits, copied client ids, dropped connections). The live server is covered
// by converge.mjs / test_convergence.py; this covers the failure paths deterministically.
import assert from "node:assert/strict";
import {test} from "node:test";

import {MythlineSocket} from "../../frontend/src/socket.js";
// (collab.js re-exports @codemirror/state: a bare import from tests/ would not find frontend/node_modules.)
import {ChangeSet, changeCount, composeUpdates, EditorSelection, EditorState, insertedLength, openHeadlessEditor,
  remoteCursors, SPLIT_INSERT, splitLargeInsert, splitLocalEdit} from "../../frontend/src/collab.js";

const TOPIC = "doc:s/main";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function mulberry32(a) {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Authority {
  constructor({text = "", faults = {}, maxChanges = null, advertise = true} = {}) {
    this.doc = EditorState.create({doc: text}).doc;
    this.maxChanges = maxChanges; // the server's cap on changed ranges per push (null: none)
    this.advertise = advertise; // whether doc.state tells it
    this.refusedTooLarge = 0;
    this.log = []; // {revision, changes, client_id, author}
    this.conns = new Set();
    this.faults = {rateLimitEvery: 0, loseAnswerEvery: 0, ...faults};
    this.pushes = 0;
    this.pulls = 0; // doc.pull frames received
    this.held = []; // pushes not processed yet (faults.hold)
    this.pageSize = 1000; // changes per doc.pull answer, as the server
    this.refuse = new Set(); // users whose connections fail
    const authority = this;
    this.WebSocket = class {
      constructor(url, {headers}) {
        this.user = headers.Authorization.replace("Bearer ", "");
        this.queue = Promise.resolve();
        this.subscribed = false;
        this.open = true;
        if (authority.refuse.has(this.user)) {
          this.open = false;
          setTimeout(() => this.onclose && this.onclose({code: 1006, reason: ""}), 1);
          return;
        }
        authority.conns.add(this);
        this.out({type: "welcome", user: {username: this.user, display_name: this.user.toUpperCase()}, heartbeat_seconds: 15});
      }

      out(frame) {
        // Asynchronous, in order, with a little random latency.
        this.queue = this.queue.then(() => sleep(Math.random() * 3)).then(() => {
          if (this.open && this.onmessage) this.onmessage({data: JSON.stringify(frame)});
        });
      }

      send(text) {
        if (this.open) authority.receive(this, JSON.parse(text));
      }

      close() {
        this.drop(1000);
      }

      drop(code = 1006) {
        if (!this.open) return;
        this.open = false;
        authority.conns.delete(this);
        setTimeout(() => this.onclose && this.onclose({code, reason: ""}), 1);
      }
    };
  }

  release() {
    this.faults.hold = false;
    for (const [conn, frame] of this.held.splice(0)) this.receive(conn, frame);
  }

  get revision() {
    return this.log.length;
  }

  apply(changesJSON, clientID, author, except = null) {
    const changes = ChangeSet.fromJSON(changesJSON);
    this.doc = changes.apply(this.doc);
    const entry = {revision: this.revision + 1, changes: changesJSON, client_id: clientID, author};
    this.log.push(entry);
    for (const c of this.conns) if (c.subscribed && c !== except) c.out({type: "doc.change", topic: TOPIC, ...entry});
    return entry;
  }

  receive(conn, frame) {
    const reply = (f) => conn.out(frame.ref ? {...f, ref: frame.ref} : f);
    switch (frame.type) {
      case "heartbeat":
        return reply({type: "heartbeat_ack"});
      case "subscribe":
        conn.subscribed = true;
        reply({type: "subscribed", topic: TOPIC, revision: this.revision});
        return conn.out({type: "doc.state", topic: TOPIC, revision: this.revision, text: this.doc.toString(),
          ...(this.maxChanges && this.advertise ? {max_changes: this.maxChanges} : {})});
      case "doc.pull":
        this.pulls += 1;
        return reply({type: "doc.changes", topic: TOPIC, changes: this.log.slice(frame.after, frame.after + this.pageSize)});
      case "cursor":
        for (const c of this.conns) {
          if (c !== conn && c.subscribed) {
            c.out({type: "cursor", topic: TOPIC, user: {username: conn.user, display_name: conn.user.toUpperCase()},
              anchor: frame.anchor, head: frame.head, revision: this.revision});
          }
        }
        return undefined;
      case "doc.push": {
        if (this.faults.hold) {
          this.held.push([conn, frame]);
          return undefined;
        }
        this.pushes += 1;
        const {rateLimitEvery, loseAnswerEvery} = this.faults;
        if (rateLimitEvery && this.pushes % rateLimitEvery === 0) {
          return reply({type: "error", code: "rate_limited", message: "slow down", details: {retry_after: 0.01}});
        }
        if (frame.revision !== this.revision) {
          return reply({type: "error", code: "conflict", message: "pull", revision: this.revision});
        }
        const ranges = frame.changes.filter((part) => Array.isArray(part)).length; // as stories/documents.py
        if (this.maxChanges && ranges > this.maxChanges) {
          this.refusedTooLarge += 1;
          return reply({type: "error", code: "payload_too_large", message: "Too many changed ranges.",
            details: {changes: ranges, max_changes: this.maxChanges}});
        }
        const lose = loseAnswerEvery && this.pushes % loseAnswerEvery === 0;
        // A lost answer: applied, but the sender never hears of it (it times out and pulls).
        this.apply(frame.changes, frame.client_id, conn.user, lose ? conn : null);
        return undefined;
      }
      default:
        return reply({type: "error", code: "invalid", message: `unknown ${frame.type}`});
    }
  }
}

async function client(authority, user, options = {}) {
  const socket = new MythlineSocket({url: "ws://x/ws/", WebSocket: authority.WebSocket, headers: {Authorization: `Bearer ${user}`},
    backoffBase: 5, backoffMax: 20});
  const editor = await openHeadlessEditor({socket, topic: TOPIC, cursorInterval: 5, ...options});
  editor.sync.pushTimeout = 150;
  return {socket, editor, user};
}

async function settle(clients) {
  for (let round = 0; round < 3; round++) {
    await Promise.all(clients.map((c) => c.editor.sync.whenSynced()));
    for (const c of clients) await c.editor.sync.catchUp();
  }
}

function randomEdit(rng, state) {
  const len = state.doc.length;
  const from = Math.floor(rng() * (len + 1));
  const to = Math.min(len, from + Math.floor(rng() * 4));
  const r = rng();
  if (r < 0.5 || !len) return {changes: {from, insert: ["a", "bc", "\n", "é", "xyz"][Math.floor(rng() * 5)]}};
  if (r < 0.75) return {changes: {from, to}};
  return {changes: {from, to, insert: "R"}};
}

test("three editors converge through conflicts, rate limits and lost answers", async () => {
  const authority = new Authority({text: "Once upon a time\nthere was a lighthouse.", faults: {rateLimitEvery: 7, loseAnswerEvery: 5}});
  const clients = await Promise.all(["ann", "bob", "cy"].map((u) => client(authority, u)));
  const rngs = clients.map((_, i) => mulberry32(42 + i));
  let changed = 0;
  await Promise.all(clients.map(async (c, i) => {
    for (let n = 0; n < 40; n++) {
      if (c.editor.dispatch(randomEdit(rngs[i], c.editor.state)).docChanged) changed += 1;
      await sleep(rngs[i]() * 6);
    }
  }));
  await settle(clients);
  const text = authority.doc.toString();
  for (const c of clients) assert.equal(c.editor.text, text, `${c.user} diverged`);
  for (const c of clients) assert.equal(c.editor.sync.syncedVersion, authority.revision);
  // Pushes compose what piled up: at most one revision per local change.
  assert.ok(authority.log.length <= changed && authority.log.length > 0, `${authority.log.length} / ${changed}`);
  const stats = clients.map((c) => c.editor.sync.stats);
  assert.ok(stats.some((s) => s.conflicts > 0) && stats.some((s) => s.rateLimited > 0));
  for (const c of clients) c.socket.close();
});

test("edits made while offline are pushed after the reconnect, rebased over what others did", async () => {
  const authority = new Authority({text: "abc"});
  const [ann, bob] = await Promise.all([client(authority, "ann"), client(authority, "bob")]);
  [...authority.conns].find((c) => c.user === "ann").drop();
  await sleep(2);
  ann.editor.dispatch({changes: {from: 0, insert: "A"}});
  ann.editor.dispatch({changes: {from: 4, insert: "Z"}});
  bob.editor.dispatch({changes: {from: 1, to: 2, insert: "B"}});
  await settle([ann, bob]);
  assert.equal(authority.doc.toString(), "AaBcZ");
  assert.equal(ann.editor.text, "AaBcZ");
  assert.equal(bob.editor.text, "AaBcZ");
  ann.socket.close();
  bob.socket.close();
});

test("a change carrying our client_id from another author is theirs, not a confirmation of ours", async () => {
  const authority = new Authority({text: "hello"});
  const ann = await client(authority, "ann");
  authority.faults.hold = true; // ann's push waits while mallory copies its client_id
  ann.editor.dispatch({changes: {from: 5, insert: "!"}});
  await sleep(5);
  const [[, held]] = authority.held;
  authority.apply([[0, "X"], 5], held.client_id, "mallory");
  authority.release(); // ann's push is now stale: conflict, pull, rebase, push again
  await settle([ann]);
  assert.equal(authority.doc.toString(), "Xhello!");
  assert.equal(ann.editor.text, "Xhello!");
  ann.socket.close();
});

test("others' cursors show with their names at the right place, mapped through later changes", async () => {
  const authority = new Authority({text: "0123456789"});
  const [ann, bob] = await Promise.all([client(authority, "ann"), client(authority, "bob")]);
  ann.editor.dispatch({selection: EditorSelection.single(4, 7)});
  await sleep(40);
  assert.deepEqual(remoteCursors(bob.editor.state), {ann: {name: "ANN", anchor: 4, head: 7}});
  bob.editor.dispatch({changes: {from: 0, insert: "ab"}, selection: {anchor: 2}}); // before ann's selection
  await settle([ann, bob]);
  assert.deepEqual(remoteCursors(bob.editor.state).ann, {name: "ANN", anchor: 6, head: 9});
  assert.deepEqual(remoteCursors(ann.editor.state), {bob: {name: "BOB", anchor: 2, head: 2}});
  ann.socket.close();
  bob.socket.close();
});

test("every insert lands exactly once, through lost answers, dropped connections and composed pushes", async () => {
  const authority = new Authority({faults: {loseAnswerEvery: 3, rateLimitEvery: 11}});
  const clients = await Promise.all(["ann", "bob", "cy"].map((u) => client(authority, u)));
  const tokens = [];
  await Promise.all(clients.map(async (c, i) => {
    const rng = mulberry32(7 + i);
    for (let n = 0; n < 30; n++) {
      const token = `<${c.user}${n}>`;
      tokens.push(token);
      // Insert between tokens only, so that no token is split by another.
      const text = c.editor.text;
      const cuts = [0, ...[...text.matchAll(/>/g)].map((m) => m.index + 1)];
      c.editor.dispatch({changes: {from: cuts[Math.floor(rng() * cuts.length)], insert: token}});
      if (n % 10 === 9) [...authority.conns].find((conn) => conn.user === c.user)?.drop();
      await sleep(rng() * 4);
    }
  }));
  await settle(clients);
  const text = authority.doc.toString();
  for (const token of tokens) assert.equal(text.split(token).length - 1, 1, `${token} in ${text}`);
  assert.equal(text.length, tokens.join("").length);
  for (const c of clients) assert.equal(c.editor.text, text);
  assert.ok(authority.log.length < tokens.length, "some pushes carried several updates");
  for (const c of clients) c.socket.close();
});

test("after a reconnect the editor pulls page after page until it has everything", async () => {
  const authority = new Authority({text: ""});
  authority.pageSize = 10;
  const [ann, bob] = await Promise.all([client(authority, "ann"), client(authority, "bob")]);
  authority.refuse.add("ann");
  [...authority.conns].find((c) => c.user === "ann").drop();
  for (let i = 0; i < 35; i++) {
    bob.editor.dispatch({changes: {from: 0, insert: `${i},`}});
    await sleep(1);
    await bob.editor.sync.whenSynced();
  }
  assert.equal(ann.editor.sync.syncedVersion, 0);
  authority.refuse.delete("ann");
  for (let waited = 0; waited < 2000 && ann.editor.sync.syncedVersion !== authority.revision; waited += 10) await sleep(10);
  assert.equal(authority.revision, 35);
  assert.equal(ann.editor.sync.syncedVersion, 35);
  assert.equal(ann.editor.text, authority.doc.toString());
  ann.socket.close();
  bob.socket.close();
});

/** Waits (polling) until `condition()` holds; fails after `timeout` ms. */
async function until(condition, what, timeout = 3000) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

test("a refused push is rebased on the changes that arrive over the subscription, with no doc.pull", async () => {
  const authority = new Authority({text: "0123456789"});
  const [ann, bob] = await Promise.all([client(authority, "ann"), client(authority, "bob")]);
  ann.editor.sync.conflictWait = 10000; // the fallback pull must not be what lets bob in
  bob.editor.sync.conflictWait = 10000;
  authority.faults.hold = true; // both push at revision 0; the first one processed wins
  ann.editor.dispatch({changes: {from: 0, insert: "A"}});
  bob.editor.dispatch({changes: {from: 10, insert: "B"}});
  await until(() => authority.held.length === 2, "both pushes");
  authority.release();
  await until(() => authority.revision === 2 && [ann, bob].every((c) => c.editor.sync.syncedVersion === 2 &&
    !c.editor.sync.pushing), "both changes applied everywhere");
  assert.equal(authority.doc.toString(), "A0123456789B");
  for (const c of [ann, bob]) assert.equal(c.editor.text, "A0123456789B");
  const stats = [ann, bob].map((c) => c.editor.sync.stats);
  assert.equal(stats.reduce((n, s) => n + s.conflicts, 0), 1);
  assert.equal(stats.reduce((n, s) => n + s.conflictWaits, 0), 1);
  assert.equal(authority.pulls, 0, "the conflict cost no doc.pull");
  ann.socket.close();
  bob.socket.close();
});

test("several editors converge through conflicts without pulling when no change is lost", async () => {
  const authority = new Authority({text: "Once upon a time."});
  const clients = await Promise.all(["ann", "bob", "cy", "dee"].map((u) => client(authority, u)));
  for (const c of clients) c.editor.sync.conflictWait = 10000;
  const rngs = clients.map((_, i) => mulberry32(99 + i));
  await Promise.all(clients.map(async (c, i) => {
    for (let n = 0; n < 30; n++) {
      c.editor.dispatch(randomEdit(rngs[i], c.editor.state));
      await sleep(rngs[i]() * 4);
    }
  }));
  await Promise.all(clients.map((c) => c.editor.sync.whenSynced()));
  await until(() => clients.every((c) => c.editor.sync.syncedVersion === authority.revision), "everyone at the last revision");
  const text = authority.doc.toString();
  for (const c of clients) assert.equal(c.editor.text, text, `${c.user} diverged`);
  assert.ok(clients.some((c) => c.editor.sync.stats.conflicts > 0), "the test made conflicts");
  assert.equal(authority.pulls, 0);
  for (const c of clients) c.socket.close();
});

test("a conflict whose missing change never arrives falls back to a doc.pull", async () => {
  const authority = new Authority({text: "abc"});
  const ann = await client(authority, "annie", {conflictWait: 30});
  const conn = [...authority.conns].find((c) => c.user === "annie");
  authority.apply([[0, "X"], 3], "m:1", "mallory", conn); // committed, but its doc.change never reaches ann
  ann.editor.dispatch({changes: {from: 3, insert: "!"}}); // pushed at 0: conflict at revision 1
  await until(() => authority.revision === 2 && ann.editor.sync.syncedVersion === 2 && !ann.editor.sync.pushing,
    "ann's change applied after the pull");
  assert.equal(authority.doc.toString(), "Xabc!");
  assert.equal(ann.editor.text, "Xabc!");
  assert.equal(ann.editor.sync.stats.conflicts, 1);
  assert.equal(ann.editor.sync.stats.conflictWaits, 0);
  assert.ok(authority.pulls >= 1, "the fallback pulled");
  ann.socket.close();
});

// --- large edits: split so that every push is one the server takes ----------------------------

test("a 200,000-character paste splits into pieces that rebuild it exactly, never inside a surrogate pair", () => {
  const text = ("Mara 🌊 counted the turns.\n").repeat(8000).slice(0, 200000);
  const state = EditorState.create({doc: "Before after."});
  const tr = state.update({changes: {from: 7, to: 12, insert: text}, userEvent: "input.paste"});
  const specs = splitLargeInsert(tr);
  assert.ok(specs.length >= Math.ceil(200000 / SPLIT_INSERT));
  let s = state;
  for (const spec of specs) {
    const piece = s.update(spec);
    assert.ok(insertedLength(piece.changes) <= SPLIT_INSERT);
    piece.changes.iterChanges((fromA, toA, fromB, toB, inserted) => {
      const str = inserted.toString();
      if (str.length) assert.ok(!(str.charCodeAt(str.length - 1) >= 0xd800 && str.charCodeAt(str.length - 1) <= 0xdbff));
    });
    s = piece.state;
  }
  assert.equal(s.doc.toString(), tr.newDoc.toString());
  assert.equal(s.selection.main.head, tr.newSelection.main.head);
  assert.equal(splitLargeInsert(state.update({changes: {from: 0, insert: "small"}})), null);
});

test("a multi-range large edit splits too, from the last range to the first", () => {
  const state = EditorState.create({doc: "a|b|c"});
  const big = "x".repeat(40000);
  const tr = state.update({changes: [{from: 1, to: 2, insert: big}, {from: 3, to: 4, insert: big}]});
  let s = state;
  for (const spec of splitLargeInsert(tr, 10000)) s = s.update(spec).state;
  assert.equal(s.doc.toString(), tr.newDoc.toString());
});

test("composed pushes stay within the server's insert limit", () => {
  let state = EditorState.create({doc: ""});
  const updates = [];
  for (let i = 0; i < 10; i++) {
    const tr = state.update({changes: {from: state.doc.length, insert: "y".repeat(16000)}});
    updates.push({changes: tr.changes});
    state = tr.state;
  }
  const {changes, count} = composeUpdates(updates, 100, 65536);
  assert.ok(count >= 1 && count <= 4, String(count));
  assert.ok(insertedLength(ChangeSet.fromJSON(changes)) <= 65536);
});

// --- many changed ranges: never more in one push than the server takes -----------------------

function replaceAll(state, word, by) {
  const text = state.doc.toString();
  const changes = [];
  for (let i = text.indexOf(word); i >= 0; i = text.indexOf(word, i + word.length)) {
    changes.push({from: i, to: i + word.length, insert: by});
  }
  return {changes, userEvent: "input.replace.all"};
}

test("an edit changing more ranges than the cap splits into edits within it that rebuild it exactly", () => {
  const state = EditorState.create({doc: "the cat and the cat\n".repeat(40)});
  const tr = state.update(replaceAll(state, "cat", "dog"));
  assert.equal(changeCount(tr.changes), 80);
  assert.equal(splitLocalEdit(tr, {maxChanges: 80}), null);
  const specs = splitLocalEdit(tr, {maxChanges: 7});
  assert.equal(specs.length, Math.ceil(80 / 7));
  let s = state;
  for (const spec of specs) {
    const piece = s.update(spec);
    assert.ok(changeCount(piece.changes) <= 7, String(changeCount(piece.changes)));
    assert.ok(piece.isUserEvent("input.replace.all"));
    s = piece.state;
  }
  assert.equal(s.doc.toString(), tr.newDoc.toString());
  // Deletions, adjacent ranges and a long insert among them, with both limits at once.
  const mixed = state.update({changes: [{from: 0, to: 3}, {from: 3, to: 4, insert: "X"}, {from: 8, insert: "é".repeat(50)},
    {from: 20, to: 30}, {from: 40, insert: "y"}, {from: 41, to: 42, insert: "z"}]});
  let m = state;
  for (const spec of splitLocalEdit(mixed, {maxInsert: 16, maxChanges: 2})) {
    const piece = m.update(spec);
    assert.ok(changeCount(piece.changes) <= 2 && insertedLength(piece.changes) <= 16);
    m = piece.state;
  }
  assert.equal(m.doc.toString(), mixed.newDoc.toString());
});

test("composed pushes stay within the server's cap on changed ranges", () => {
  let state = EditorState.create({doc: "abcdefghijklmnopqrstuvwxyz"});
  const updates = [];
  for (let i = 0; i < 12; i++) {
    const tr = state.update({changes: {from: 2 * i, to: 2 * i + 1, insert: "_"}});
    updates.push({changes: tr.changes});
    state = tr.state;
  }
  const {changes, count} = composeUpdates(updates, 100, 65536, 5);
  assert.ok(count >= 1 && count <= 5, String(count));
  assert.ok(changes.filter((part) => Array.isArray(part)).length <= 5);
});

test("a replace-all over more occurrences than the push cap is saved whole, with no refusal", {timeout: 15000}, async () => {
  const text = "Mara saw the sea. The sea was grey.\n".repeat(30);
  const authority = new Authority({text, maxChanges: 7});
  const ann = await client(authority, "ann");
  const bob = await client(authority, "bob");
  assert.equal(ann.editor.sync.limits.maxChanges, 7, "doc.state told the cap");
  ann.editor.dispatch(replaceAll(ann.editor.state, "sea", "ocean")); // 60 ranges
  bob.editor.dispatch({changes: {from: 0, insert: "Chapter one.\n"}}); // meanwhile: a conflict to rebase over
  await settle([ann, bob]);
  const expected = "Chapter one.\n" + text.replaceAll("sea", "ocean");
  assert.equal(authority.doc.toString(), expected);
  assert.equal(ann.editor.text, expected);
  assert.equal(bob.editor.text, expected);
  assert.equal(authority.refusedTooLarge, 0);
  assert.equal(ann.editor.sync.stats.refused, 0);
  for (const entry of authority.log) assert.ok(entry.changes.filter((p) => Array.isArray(p)).length <= 7);
  assert.ok(authority.log.length >= Math.ceil(60 / 7) + 1);
  ann.socket.close();
  bob.socket.close();
});

test("piled-up edits compose only up to a cap the server names in its refusal", {timeout: 15000}, async () => {
  const authority = new Authority({text: "abcdefghijklmnopqrstuvwxyz", maxChanges: 4, advertise: false});
  const ann = await client(authority, "ann");
  assert.equal(ann.editor.sync.limits.maxChanges, 10000, "no max_changes in doc.state: the default");
  authority.faults.hold = true;
  ann.editor.dispatch({changes: {from: 0, to: 1, insert: "A"}});
  await sleep(5);
  for (let i = 1; i < 13; i++) ann.editor.dispatch({changes: {from: 2 * i, to: 2 * i + 1, insert: "_"}});
  const expected = ann.editor.text;
  authority.release();
  await settle([ann]);
  assert.equal(authority.doc.toString(), expected);
  assert.equal(ann.editor.sync.limits.maxChanges, 4, "learnt from the refusal");
  assert.ok(authority.refusedTooLarge >= 1 && authority.refusedTooLarge <= 2, String(authority.refusedTooLarge));
  assert.equal(ann.editor.sync.stats.refused, 0, "no \"Not saved yet\"");
  ann.socket.close();
});
