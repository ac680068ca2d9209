#!/usr/bin/env node
// Convergence under concurrency, with CodeMirror's own OT: N headless @codemirror/collab clients
// (EditorState only, no DOM) on one `doc:` topic of a live Mythline server, each making random
// edits (inserts with emoji, astral characters and line breaks, deletions, replacements, several
// ranges at once) after random delays, some of them while their socket is down. The clients use
// the same socket and sync code the browser bundle ships (frontend/src/socket.js, collab.js).
//
//   node tests/node/converge.mjs --url http://127.0.0.1:8000 --topic doc:tale/main --seed 7 \
//        [--duration 3000] [--max-edits 200] [--drops 1] [--barrier]
//   with the bearer tokens, one per client, comma-separated in $CONVERGE_TOKENS. `--url` may list
//   several servers (comma-separated): client i connects to the (i mod n)-th.
//
// When the editing is over, every client sends what it has left, then (after a line on stdin with
// --barrier, so other writers can finish first) pulls until it is synced and shows its cursor to the
// others. Prints one JSON object on stdout: {seed, texts, server_revision, revisions, cursors,
// selections, users, stats, elapsed_ms}. Exit status 0 unless something failed outright.

import {createRequire} from "node:module";
import {parseArgs} from "node:util";
import readline from "node:readline";

import {MythlineSocket} from "../../frontend/src/socket.js";
import {EditorSelection, openHeadlessEditor, remoteCursors} from "../../frontend/src/collab.js";

const require = createRequire(new URL("../../frontend/package.json", import.meta.url));
const WebSocket = require("ws");

const {values: args} = parseArgs({
  options: {
    url: {type: "string"},
    topic: {type: "string"},
    seed: {type: "string", default: "1"},
    duration: {type: "string", default: "3000"},
    "max-edits": {type: "string", default: "200"},
    "min-delay": {type: "string", default: "20"},
    "max-delay": {type: "string", default: "200"},
    drops: {type: "string", default: "0"},
    barrier: {type: "boolean", default: false},
    "settle-timeout": {type: "string", default: "60000"},
    "conflict-wait": {type: "string"}, // ms a refused push waits for the announced changes (collab.js default if unset)
  },
});

const tokens = (process.env.CONVERGE_TOKENS || "").split(",").filter(Boolean);
if (!args.url || !args.topic || tokens.length < 1) {
  console.error("usage: CONVERGE_TOKENS=t1,t2,t3 converge.mjs --url http://host:port --topic doc:s/d --seed N");
  process.exit(2);
}
const seed = Number(args.seed);
const duration = Number(args.duration);
const maxEdits = Number(args["max-edits"]);
const minDelay = Number(args["min-delay"]);
const maxDelay = Number(args["max-delay"]);
const dropsPerClient = Number(args.drops);
const wsUrls = args.url.split(",").map((url) => url.trim().replace(/^http/, "ws").replace(/\/$/, "") + "/ws/");

// --- seeded randomness ----------------------------------------------------------------------

function mulberry32(a) {
  return function next() {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  "a", "b", "c", "e", "o", "s", "t", " ", " ", "the ", "dragon ", "\n", "\n\n", "\r\n", ",", ".",
  "é", "ß", "語", "Ω", "😀", "🐉", "𝔄", "👩‍🚀", "🏳️‍🌈", "\u0301", "\t",
];

function randomText(rng, maxPieces = 6) {
  let out = "";
  const n = 1 + Math.floor(rng() * maxPieces);
  for (let i = 0; i < n; i++) out += PIECES[Math.floor(rng() * PIECES.length)];
  return out;
}

/** A position in `doc` that does not split a surrogate pair. */
function boundary(doc, pos) {
  if (pos > 0 && pos < doc.length) {
    const pair = doc.sliceString(pos - 1, pos + 1);
    const hi = pair.charCodeAt(0);
    const lo = pair.charCodeAt(1);
    if (hi >= 0xd800 && hi <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) return pos - 1;
  }
  return pos;
}

function randomRange(rng, doc, maxLen = 12) {
  const from = boundary(doc, Math.floor(rng() * (doc.length + 1)));
  const to = boundary(doc, Math.min(doc.length, from + Math.floor(rng() * maxLen)));
  return [from, Math.max(from, to)];
}

/** One random local transaction spec for `state`. */
function randomEdit(rng, state) {
  const doc = state.doc;
  const big = doc.length > 3000;
  const r = rng();
  if (r < 0.05) {
    const [anchor, head] = randomRange(rng, doc, 30);
    return {selection: EditorSelection.single(anchor, head)};
  }
  if (r < (big ? 0.15 : 0.5) || doc.length === 0) {
    const at = boundary(doc, Math.floor(rng() * (doc.length + 1)));
    const insert = randomText(rng);
    return {changes: {from: at, insert}, selection: {anchor: at}, scrollIntoView: false};
  }
  if (r < (big ? 0.6 : 0.7)) {
    const [from, to] = randomRange(rng, doc, big ? 60 : doc.length < 300 ? 4 : 12);
    return {changes: {from, to}};
  }
  if (r < 0.9) {
    const [from, to] = randomRange(rng, doc);
    return {changes: {from, to, insert: randomText(rng, 3)}};
  }
  // Several short ranges in one transaction: sorted, non-overlapping (touching is fine).
  const cuts = [];
  for (let i = 0; i < 3; i++) cuts.push(boundary(doc, Math.floor(rng() * (doc.length + 1))));
  cuts.sort((x, y) => x - y);
  const end = (from, limit, max) => boundary(doc, Math.min(limit, from + Math.floor(rng() * max)));
  return {changes: [{from: cuts[0], to: end(cuts[0], cuts[1], 4), insert: randomText(rng, 2)},
    {from: cuts[1], to: end(cuts[1], cuts[2], 4)}, {from: cuts[2], insert: randomText(rng, 2)}]};
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

function waitOpen(socket) {
  if (socket.isOpen) return Promise.resolve();
  return new Promise((resolve) => {
    const off = socket.onState((state) => {
      if (state === "open") {
        queueMicrotask(() => off());
        resolve();
      }
    });
  });
}

// --- the run --------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  const clients = await Promise.all(tokens.map(async (token, index) => {
    const rng = mulberry32(seed * 1000003 + index * 7919 + 1);
    const socket = new MythlineSocket({
      url: wsUrls[index % wsUrls.length], WebSocket, headers: {Authorization: `Bearer ${token}`},
      backoffBase: 50, backoffMax: 1000, random: mulberry32(seed * 31 + index), requestTimeout: 20000,
    });
    const editor = await withTimeout(
      openHeadlessEditor({socket, topic: args.topic, clientID: `c${index}-${seed}`, cursorInterval: 50,
        conflictWait: args["conflict-wait"] ? Number(args["conflict-wait"]) : undefined}),
      20000, `client ${index} opening ${args.topic}`);
    return {index, socket, editor, rng, edits: 0, drops: 0, user: socket.welcome.user.username};
  }));

  const phases = {open_ms: Date.now() - started};
  // Everyone edits at once. Each client also loses its connection `--drops` times, at seeded
  // moments in the first 80% of the run: it keeps editing offline, then reconnects, pulls, rebases
  // and pushes again.
  const deadline = Date.now() + duration;
  const dropTimers = [];
  for (const client of clients) {
    const at = mulberry32(seed * 7 + client.index + 99);
    for (let i = 0; i < dropsPerClient; i++) {
      dropTimers.push(setTimeout(() => {
        if (!client.socket.isOpen) return;
        client.drops += 1;
        client.socket.drop();
      }, Math.floor(at() * duration * 0.8)));
    }
  }
  await Promise.all(clients.map(async (client) => {
    const {rng, editor} = client;
    while (Date.now() < deadline && client.edits < maxEdits) {
      await sleep(minDelay + rng() * (maxDelay - minDelay));
      editor.dispatch(randomEdit(rng, editor.state));
      client.edits += 1;
    }
  }));
  for (const timer of dropTimers) clearTimeout(timer);

  phases.edit_ms = Date.now() - started - phases.open_ms;
  // Everything local reaches the server.
  const settle = Number(args["settle-timeout"]);
  await Promise.all(clients.map(async (c) => {
    await withTimeout(waitOpen(c.socket), settle, `client ${c.index} reconnecting`);
    await withTimeout(c.editor.sync.whenSynced(), settle, `client ${c.index} sending its changes`);
  }));

  phases.settle_ms = Date.now() - started - phases.open_ms - phases.edit_ms;
  if (args.barrier) {
    // Other writers (REST agents) finish before the final pull.
    process.stderr.write("settled\n");
    const rl = readline.createInterface({input: process.stdin});
    await new Promise((resolve) => rl.once("line", resolve));
    rl.close();
  }

  for (const c of clients) await withTimeout(c.editor.sync.catchUp(), settle, `client ${c.index} pulling`);

  // Cursors: each client selects something and the others must show it at the same place.
  const selections = {};
  for (const c of clients) {
    const doc = c.editor.state.doc;
    const anchor = boundary(doc, Math.floor(c.rng() * (doc.length + 1)));
    const head = boundary(doc, Math.min(doc.length, anchor + Math.floor(c.rng() * 10)));
    c.editor.dispatch({selection: EditorSelection.single(anchor, head)});
    c.editor.sync.sendCursor();
    selections[c.user] = {anchor, head};
  }
  // Wait (up to 10 s) until every client shows every other's selection where it was made.
  const shown = () => clients.every((c) => Object.entries(selections).every(([user, sel]) => {
    if (user === c.user) return true;
    const cursor = remoteCursors(c.editor.state)[user];
    return cursor && cursor.anchor === sel.anchor && cursor.head === sel.head;
  }));
  for (let waited = 0; waited < 10000 && !shown(); waited += 50) await sleep(50);
  for (const c of clients) await c.editor.sync.catchUp();

  const result = {
    seed,
    users: clients.map((c) => c.user),
    texts: clients.map((c) => c.editor.text),
    revisions: clients.map((c) => c.editor.sync.syncedVersion),
    server_revision: Math.max(...clients.map((c) => c.editor.sync.serverRevision)),
    cursors: clients.map((c) => remoteCursors(c.editor.state)),
    selections,
    stats: clients.map((c) => ({edits: c.edits, drops: c.drops, ...c.editor.sync.stats})),
    phases,
    elapsed_ms: Date.now() - started,
  };
  for (const c of clients) {
    c.editor.sync.close();
    c.socket.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error && error.stack ? error.stack : error);
    process.exit(1);
  },
);
