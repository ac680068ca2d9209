#!/usr/bin/env node
// frontend/src/socket.js against a live server: a channel subscription survives a dropped
// connection and an explicit close/connect, resuming from its last seq, each message exactly once
// and in order; heartbeats are acknowledged; a bad topic rejects `ready()` with the server's code.
//
//   SOCKET_TOKENS=<reader>,<writer> node tests/node/socket_live.mjs --url http://127.0.0.1:8000 --story tale
// Prints a JSON summary; exits 1 (with the reason on stderr) when a check fails.
import assert from "node:assert/strict";
import {createRequire} from "node:module";
import {parseArgs} from "node:util";

import {MythlineSocket} from "../../frontend/src/socket.js";

const require = createRequire(new URL("../../frontend/package.json", import.meta.url));
const WebSocket = require("ws");

const {values: args} = parseArgs({options: {url: {type: "string"}, story: {type: "string", default: "tale"}}});
const [reader, writer] = (process.env.SOCKET_TOKENS || "").split(",");
const base = args.url.replace(/\/$/, "");
const topic = `channel:${args.story}/general`;

// Distinct texts: the server refuses near-identical posts in a row as an agent loop.
const LINES = ["The tide turned.", "A gull cried over the rocks.", "Lanterns swung in the wind.",
  "Someone knocked twice.", "The map was wrong.", "Rain hid the harbour.", "She kept the key.",
  "The bell rang at noon.", "Nobody saw the ship leave."];
let lineNo = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(text) {
  const r = await fetch(`${base}/api/stories/${args.story}/channels/general/messages`, {
    method: "POST",
    headers: {"Authorization": `Bearer ${writer}`, "Content-Type": "application/json"},
    body: JSON.stringify({msg_type: "narration", payload: {text: `${LINES[lineNo++ % LINES.length]} (${text})`}}),
  });
  const body = await r.text();
  assert.equal(r.status, 201, body);
  return JSON.parse(body).seq;
}

async function until(predicate, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function main() {
  const socket = new MythlineSocket({url: base.replace(/^http/, "ws") + "/ws/", WebSocket,
    headers: {Authorization: `Bearer ${reader}`}, backoffBase: 100, backoffMax: 1000});
  const states = [];
  socket.onState((s) => states.push(s));
  let acks = 0;
  socket.onFrame((f) => {
    if (f.type === "heartbeat_ack") acks += 1;
  });

  const seqs = [];
  let replayed = 0;
  const sub = socket.subscribe(topic, {}, (frame) => {
    if (frame.type !== "message") return;
    seqs.push(frame.message.seq);
    if (frame.replay) replayed += 1;
  });
  const first = await sub.ready();
  const start = first.last_seq;

  const posted = [];
  for (let i = 0; i < 3; i++) posted.push(await post(`live ${i}`));
  await until(() => seqs.length >= 3, "3 live messages");

  socket.drop(); // as if the network failed: reconnects by itself
  for (let i = 0; i < 3; i++) posted.push(await post(`while reconnecting ${i}`));
  await until(() => seqs.length >= 6, "6 messages after a drop");

  socket.close();
  for (let i = 0; i < 3; i++) posted.push(await post(`while closed ${i}`));
  await sleep(200);
  assert.equal(seqs.length, 6, "nothing arrives while closed");
  socket.connect();
  await until(() => seqs.length >= 9, "9 messages after close/connect");
  await sleep(300); // any duplicate would arrive now

  const expected = Array.from({length: 9}, (_, i) => start + 1 + i);
  assert.deepEqual(posted, expected);
  assert.deepEqual(seqs, expected, "each message once, in order");
  assert.ok(replayed >= 3, `the messages posted while closed come as a replay (${replayed})`);
  assert.ok(acks >= 2, `heartbeats are acknowledged (${acks})`);
  for (const s of ["connecting", "open", "reconnecting", "closed"]) assert.ok(states.includes(s), states.join());

  const missing = socket.subscribe(`channel:${args.story}/no-such-channel`, {}, () => {});
  await assert.rejects(missing.ready(), (e) => e.code === "not_found");

  socket.close();
  process.stdout.write(JSON.stringify({seqs, replayed, acks, states}) + "\n");
}

main().then(() => process.exit(0), (error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});
