// Unit tests of frontend/src/socket.js against a scripted fake WebSocket (node --test).
// The live behaviour (a real Daphne) is covered by socket_live.mjs and test_convergence.py.
import assert from "node:assert/strict";
import {afterEach, beforeEach, test} from "node:test";

import {MythlineSocket, SocketError} from "../../frontend/src/socket.js";

class FakeWebSocket {
  static instances = [];

  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.sent = [];
    this.closed = null;
    FakeWebSocket.instances.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code) {
    this.closed = code;
  }

  // server side
  deliver(frame) {
    this.onmessage?.({data: JSON.stringify(frame)});
  }

  welcome(heartbeat = 15) {
    this.deliver({type: "welcome", user: {username: "ann"}, heartbeat_seconds: heartbeat, max_frame_bytes: 262144});
  }

  serverClose(code = 1006) {
    this.onclose?.({code, reason: ""});
  }

  frames(type) {
    return this.sent.filter((f) => f.type === type);
  }

  reply(type, extra = {}) {
    const frame = this.sent.filter((f) => f.type === type).at(-1);
    this.deliver({...extra, ref: frame.ref});
    return frame;
  }
}

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));
let sockets = [];

function open(options = {}) {
  const socket = new MythlineSocket({url: "ws://test/ws/", WebSocket: FakeWebSocket, backoffBase: 10, backoffMax: 80,
    headers: {Authorization: "Bearer t"}, ...options});
  sockets.push(socket);
  return socket;
}

const last = () => FakeWebSocket.instances.at(-1);

beforeEach(() => {
  FakeWebSocket.instances = [];
  sockets = [];
});

afterEach(() => {
  for (const s of sockets) s.close();
  delete globalThis.document;
});

test("connects with the headers, is open on welcome, heartbeats at once with its state", () => {
  const socket = open();
  const states = [];
  socket.onState((s) => states.push(s));
  assert.deepEqual(last().options, {headers: {Authorization: "Bearer t"}});
  assert.equal(socket.isOpen, false);
  last().welcome();
  assert.equal(socket.isOpen, true);
  assert.deepEqual(states, ["connecting", "open"]);
  assert.deepEqual(last().frames("heartbeat"), [{type: "heartbeat", state: "active"}]);
});

test("request resolves with the reply echoing its ref, rejects with the server's error code", async () => {
  const socket = open();
  last().welcome();
  const ok = socket.request({type: "ping"});
  last().reply("ping", {type: "pong"});
  assert.equal((await ok).type, "pong");
  const bad = socket.request({type: "publish", topic: "channel:s/c"});
  last().reply("publish", {type: "error", code: "forbidden", message: "no"});
  await assert.rejects(bad, (e) => e instanceof SocketError && e.code === "forbidden");
  const refs = last().sent.filter((f) => f.ref).map((f) => f.ref);
  assert.equal(new Set(refs).size, refs.length, "every request has its own ref");
});

test("a request made while offline waits for the connection; a lost connection rejects it", async () => {
  const socket = open();
  const early = socket.request({type: "ping"});
  assert.equal(last().sent.length, 0);
  last().welcome();
  assert.equal(last().frames("ping").length, 1);
  last().reply("ping", {type: "pong"});
  await early;
  const lost = socket.request({type: "ping"});
  last().serverClose(1006);
  await assert.rejects(lost, (e) => e.code === "disconnected");
});

test("match resolves a request with a broadcast that carries no ref", async () => {
  const socket = open();
  last().welcome();
  const seen = [];
  socket.subscribe("doc:s/main", {}, (f) => seen.push(f.type));
  const push = socket.request({type: "doc.push", topic: "doc:s/main"}, {match: (f) => f.type === "doc.change" && f.client_id === "me"});
  last().deliver({type: "doc.change", topic: "doc:s/main", revision: 1, client_id: "other"});
  last().deliver({type: "doc.change", topic: "doc:s/main", revision: 2, client_id: "me"});
  assert.equal((await push).revision, 2);
  assert.deepEqual(seen, ["doc.change", "doc.change"], "the subscription still sees both");
});

test("messages reach the subscription once each: duplicates by seq and by id are dropped", () => {
  const socket = open();
  last().welcome();
  const got = [];
  socket.subscribe("channel:s/general", {after: 0}, (f) => f.type === "message" && got.push(f.message.seq));
  assert.deepEqual(last().frames("subscribe").at(-1), {type: "subscribe", topic: "channel:s/general", after: 0,
    ref: last().frames("subscribe").at(-1).ref});
  const msg = (seq, id = `m${seq}`) => ({type: "message", topic: "channel:s/general", message: {id, seq}});
  last().reply("subscribe", {type: "subscribed", topic: "channel:s/general", last_seq: 2});
  for (const f of [msg(1), msg(2), msg(2), msg(1), msg(3), msg(4, "m3")]) last().deliver(f);
  assert.deepEqual(got, [1, 2, 3]);
});

test("reconnects with backoff and resumes each channel from its last seq; doc topics re-subscribe", async () => {
  let r = 0.5;
  const socket = open({random: () => r});
  last().welcome();
  const seqs = [];
  socket.subscribe("channel:s/general", {}, (f) => f.type === "message" && seqs.push(f.message.seq));
  socket.subscribe("doc:s/main", {}, () => {});
  socket.subscribe("story:s", {}, () => {});
  last().reply("subscribe", {type: "subscribed", topic: "story:s"});
  const general = last().frames("subscribe").find((f) => f.topic === "channel:s/general");
  last().deliver({type: "subscribed", topic: "channel:s/general", last_seq: 10, ref: general.ref});
  last().deliver({type: "message", topic: "channel:s/general", message: {id: "a", seq: 11}});

  const states = [];
  socket.onState((s) => states.push(s));
  r = 0.999;
  last().serverClose(1006);
  assert.equal(socket.state, "reconnecting");
  assert.ok(socket.reconnectDelay >= 0 && socket.reconnectDelay < 10);
  await tick(20);
  assert.equal(FakeWebSocket.instances.length, 2);
  // Each failure before a welcome doubles the bound (full jitter: uniform below it), up to the max.
  const delays = [];
  for (let i = 0; i < 5; i++) {
    last().serverClose(1006);
    delays.push(socket.reconnectDelay);
    await tick(socket.reconnectDelay + 5);
  }
  assert.deepEqual(delays, [19, 39, 79, 79, 79]);
  last().welcome();
  const subs = Object.fromEntries(last().frames("subscribe").map((f) => [f.topic, f]));
  assert.equal(subs["channel:s/general"].after, 11);
  assert.equal("after" in subs["doc:s/main"], false);
  assert.ok(subs["story:s"]);
  assert.equal(states.at(-1), "open");
  // The replay from 11 on; 11 itself would be a duplicate.
  last().deliver({type: "message", topic: "channel:s/general", replay: true, message: {id: "a", seq: 11}});
  last().deliver({type: "message", topic: "channel:s/general", replay: true, message: {id: "b", seq: 12}});
  assert.deepEqual(seqs, [11, 12]);
});

test("subscriptions go out before listeners hear 'open', so nothing overtakes them", () => {
  const socket = open();
  socket.subscribe("doc:s/main", {}, () => {});
  socket.onState((s) => {
    if (s === "open") socket.send({type: "doc.push", topic: "doc:s/main"});
  });
  last().welcome();
  const types = last().sent.map((f) => f.type);
  assert.ok(types.indexOf("subscribe") < types.indexOf("doc.push"), types.join());
});

test("4401 closes for good; close() stops reconnecting", async () => {
  const socket = open();
  last().welcome();
  last().serverClose(4401);
  assert.equal(socket.state, "closed");
  await tick(30);
  assert.equal(FakeWebSocket.instances.length, 1);
  const other = open();
  other.close();
  assert.equal(other.state, "closed");
  await tick(30);
  assert.equal(FakeWebSocket.instances.length, 2);
});

test("presence: idle after the idle time without input, away while hidden, active on input", async () => {
  globalThis.document = {visibilityState: "visible"};
  const socket = open({idleAfter: 30});
  last().welcome();
  assert.equal(socket.presenceState(), "active");
  await tick(40);
  assert.equal(socket.presenceState(), "idle");
  socket._heartbeatIfChanged();
  globalThis.document.visibilityState = "hidden";
  socket._heartbeatIfChanged();
  globalThis.document.visibilityState = "visible";
  socket.activity();
  assert.deepEqual(last().frames("heartbeat").map((f) => f.state), ["active", "idle", "away", "active"]);
});

test("heartbeats repeat every heartbeat_seconds; a silent server is dropped", async () => {
  const socket = open();
  last().welcome(1);
  await tick(1100);
  assert.equal(last().frames("heartbeat").length, 2);
  last().deliver({type: "heartbeat_ack"});
  socket.lastFrameAt = Date.now() - 10000; // nothing heard for over three intervals
  await tick(1000);
  assert.equal(socket.state, "reconnecting");
});
