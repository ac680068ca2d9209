// The room's state without a page or a socket (frontend/src/roomstate.js, issue #16): messages kept
// by seq whatever order they come in and however often, gaps, unread counts from the read cursor and
// the open channel, the read cursor's acks, votes per proposal and changed votes, typing notices
// that run out, who is in the room and the agents, the sidebar's groups, where a card goes in the
// feed and why the reader may not write. The views (room.js, feed.js, thread.js, people.js,
// sidebar.js, composebar.js) draw what these answer; tests/browser/ covers the drawing.
import assert from "node:assert/strict";
import {test} from "node:test";

import {composeBlock, insertionIndex, KIND_GROUPS, newBelowLabel, RoomState} from "../../frontend/src/roomstate.js";

const ME = {username: "ann", display_name: "Ann"};
const BOB = {username: "bob", display_name: "Bob"};
const CAT = {username: "cat", display_name: "Cat"};

function info(name, extra = {}) {
  return {name, kind: "public", topic: "", archived: false, readable: true, last_seq: 0, unread: 0, read_seq: 0, ...extra};
}

function room(channels = [info("general"), info("scene-1")]) {
  const state = new RoomState({me: ME});
  state.loadChannels(channels);
  return state;
}

let nextId = 0;
function msg(channel, seq, {sender = BOB, ...extra} = {}) {
  nextId += 1;
  return {id: `m-${channel}-${seq}-${nextId}`, channel, seq, sender, msg_type: "text", payload: {text: `#${seq}`},
    created_at: `2026-01-01T00:00:${String(seq).padStart(2, "0")}Z`, ...extra};
}

test("a message that arrives twice is kept once and counted once", () => {
  const state = room();
  const general = state.get("general");
  const m = msg("general", 1);
  assert.ok(state.addMessage(general, m, {live: true}));
  assert.equal(state.addMessage(general, m, {live: true}), null);
  // The same id again (a resumed subscription replays it): still once.
  assert.equal(state.addMessage(general, {...m}, {live: true}), null);
  assert.equal(general.messages.size, 1);
  assert.equal(general.unread, 1);
  assert.equal(state.lookup(m.id), m);
});

test("messages out of order come out in seq order; last_seq follows the newest", () => {
  const state = room();
  const general = state.get("general");
  for (const seq of [3, 1, 2]) state.addMessage(general, msg("general", seq), {live: true});
  assert.deepEqual(general.sorted().map((m) => m.seq), [1, 2, 3]);
  assert.equal(general.info.last_seq, 3);
  assert.deepEqual(general.gaps(), []);
});

test("a gap is known until the missing messages come", () => {
  const state = room();
  const general = state.get("general");
  state.addMessage(general, msg("general", 1), {live: true});
  state.addMessage(general, msg("general", 4), {live: true});
  state.addMessage(general, msg("general", 7), {live: true});
  assert.deepEqual(general.gaps(), [[2, 3], [5, 6]]);
  state.addMessage(general, msg("general", 2), {live: false});
  state.addMessage(general, msg("general", 3), {live: false});
  assert.deepEqual(general.gaps(), [[5, 6]]);
  // A channel known to be further along than what it holds: the tail is a gap too.
  general.info.last_seq = 9;
  assert.deepEqual(general.gaps(), [[5, 6], [8, 9]]);
});

test("history pages go down from the page's last_seq; older messages are not unread", () => {
  const state = room([info("general", {last_seq: 120, unread: 2, read_seq: 118})]);
  const general = state.get("general");
  assert.equal(general.historyBefore(), 121);
  assert.equal(general.hasMore, true);
  const rows = [];
  for (let seq = 120; seq > 70; seq--) rows.push(msg("general", seq));
  for (const m of rows) state.addMessage(general, m, {live: false});
  general.historyPage(rows, 71);
  assert.equal(general.historyBefore(), 71);
  assert.equal(general.hasMore, true);
  assert.equal(general.unread, 2, "history changes no unread count");
  general.historyPage([], null);
  assert.equal(general.hasMore, false);
  assert.equal(general.historyLoaded, true);
  // A replayed live message at or below the page's last_seq was already counted by the server.
  assert.equal(state.addMessage(general, msg("general", 119), {live: true}), null);
  assert.equal(state.addMessage(general, msg("general", 121), {live: true}).counted, true);
  assert.equal(general.unread, 3);
});

test("unread counts while another channel is open, not while reading the open one; an ack clears them", () => {
  const state = room();
  const general = state.get("general");
  const scene = state.get("scene-1");
  state.select("general");
  // Read in place: the reader is at the bottom of the open channel.
  assert.equal(state.addMessage(general, msg("general", 1), {live: true, reading: () => true}).counted, false);
  // The open channel, the reader scrolled up (or the tab hidden): it counts.
  assert.equal(state.addMessage(general, msg("general", 2), {live: true, reading: false}).counted, true);
  // Another channel: it counts, and whether the reader is at the bottom is not even asked.
  const change = state.addMessage(scene, msg("scene-1", 1), {live: true, reading: () => assert.fail("not asked")});
  assert.equal(change.counted, true);
  state.addMessage(scene, msg("scene-1", 2), {live: true, reading: true});
  assert.equal(scene.unread, 2);
  assert.equal(general.unread, 1);
  // My own messages never count.
  assert.equal(state.addMessage(scene, msg("scene-1", 3, {sender: ME}), {live: true}).counted, false);
  assert.equal(scene.unread, 2);

  // Opening scene-1 and seeing it: the count goes, the read cursor moves to the newest.
  state.select("scene-1");
  assert.equal(state.open, scene);
  assert.equal(state.markRead(scene), true);
  assert.equal(scene.unread, 0);
  assert.equal(state.markRead(scene), false);
  const seq = state.ackDue(scene);
  assert.equal(seq, 3);
  state.acked(scene, seq);
  assert.equal(scene.readSeq, 3);
  assert.equal(state.ackDue(scene), 0);
  // Back in general: a message in scene-1 below the cursor does not count; one above it does.
  state.select("general");
  assert.equal(state.addMessage(scene, msg("scene-1", 4), {live: true}).counted, true);
  assert.equal(scene.unread, 1);
  // An ack that failed puts the cursor back below it, so the next ack tries again.
  state.acked(scene, 4);
  state.ackFailed(scene, 4);
  assert.equal(scene.readSeq, 3);
  assert.equal(state.ackDue(scene), 4);
});

test("a message below the read cursor (read in another tab) is not unread", () => {
  const state = room([info("general", {last_seq: 0, read_seq: 0}), info("scene-1")]);
  state.select("scene-1");
  const general = state.get("general");
  general.readSeq = 5; // another tab acked up to 5
  assert.equal(state.addMessage(general, msg("general", 5), {live: true}).counted, false);
  assert.equal(state.addMessage(general, msg("general", 6), {live: true}).counted, true);
  assert.equal(general.unread, 1);
});

test("votes are tallied per proposal; a changed vote replaces the voter's earlier one", () => {
  const state = room();
  const general = state.get("general");
  const p1 = msg("general", 1, {msg_type: "proposal", payload: {text: "Kill the king"}});
  const p2 = msg("general", 2, {msg_type: "proposal", payload: {text: "Spare the king"}});
  state.addMessage(general, p1, {live: true});
  state.addMessage(general, p2, {live: true});
  const vote = (seq, sender, proposal, choice, created_at) => state.addMessage(general,
    msg("general", seq, {sender, msg_type: "vote", payload: {proposal: proposal.id, choice}, created_at}), {live: true});
  assert.equal(vote(3, BOB, p1, "yes", "2026-01-01T00:01:00Z").tally, p1.id);
  vote(4, CAT, p1, "no", "2026-01-01T00:02:00Z");
  vote(5, ME, p2, "yes", "2026-01-01T00:03:00Z");
  assert.deepEqual(state.tally(p1.id), {yes: 1, no: 1});
  assert.deepEqual(state.tally(p2.id), {yes: 1});
  // Bob changes his mind: one vote each still.
  vote(6, BOB, p1, "no", "2026-01-01T00:04:00Z");
  assert.deepEqual(state.tally(p1.id), {no: 2});
  assert.equal(state.votesFor(p1.id).get("bob").choice, "no");
  // An older vote arriving late (history below live) does not undo the newer one.
  vote(0.5, BOB, p1, "abstain", "2026-01-01T00:00:30Z");
  assert.equal(state.votesFor(p1.id).get("bob").choice, "no");
  assert.deepEqual(state.tally(p1.id), {no: 2});
  assert.deepEqual(state.tally("unknown"), {});
  // A decision closes the proposal.
  assert.equal(state.isDecided(p1.id), false);
  const decision = state.addMessage(general, msg("general", 7, {msg_type: "decision", payload: {proposal: p1.id, text: "No."}}), {live: true});
  assert.equal(decision.tally, p1.id);
  assert.equal(state.isDecided(p1.id), true);
  assert.equal(state.isDecided(p2.id), false);
});

test("replies are counted per parent, once each", () => {
  const state = room();
  const general = state.get("general");
  const root = msg("general", 1);
  state.addMessage(general, root, {live: true});
  const r1 = msg("general", 2, {reply_to: root.id});
  assert.deepEqual([state.addMessage(general, r1, {live: true}).replyTo, state.replyCount(root.id)], [root.id, 1]);
  state.addMessage(general, r1, {live: true});
  assert.equal(state.addMessage(general, msg("general", 3, {reply_to: root.id}), {live: true}).replyCount, 2);
  assert.equal(state.replyCount(root.id), 2);
  assert.equal(state.replyCount("nobody"), 0);
});

test("typing notices per channel run out, stop, and end when the typist's message comes", () => {
  const state = room();
  const t0 = 1_000_000;
  assert.equal(state.setTyping("general", BOB, true, {now: t0}), true);
  assert.equal(state.setTyping("general", CAT, true, {expiresIn: 2, now: t0}), true);
  assert.equal(state.setTyping("scene-1", CAT, true, {expiresIn: 20, now: t0}), true);
  assert.equal(state.setTyping("general", ME, true, {now: t0}), false, "my own notice is not shown");
  assert.deepEqual(state.typingIn("general").map((u) => u.username), ["bob", "cat"]);
  assert.deepEqual(state.typingIn("scene-1").map((u) => u.username), ["cat"]);
  assert.deepEqual(state.typingIn("elsewhere"), []);

  assert.equal(state.expireTyping(t0 + 1999), false);
  assert.equal(state.expireTyping(t0 + 2000), true); // Cat's 2 s in general ran out
  assert.deepEqual(state.typingIn("general").map((u) => u.username), ["bob"]);
  assert.deepEqual(state.typingIn("scene-1").map((u) => u.username), ["cat"]);
  // Bob types again: his notice lasts from now (6 s by default).
  state.setTyping("general", BOB, true, {now: t0 + 5000});
  assert.equal(state.expireTyping(t0 + 10_999), false);
  assert.equal(state.expireTyping(t0 + 11_000), true);
  assert.deepEqual(state.typingIn("general"), []);

  // "Stopped typing", and a message from the typist, end a notice at once.
  state.setTyping("general", BOB, true, {now: t0});
  assert.equal(state.setTyping("general", BOB, false, {now: t0}), true);
  assert.equal(state.setTyping("general", BOB, false, {now: t0}), false);
  assert.equal(state.clearTyping("scene-1", "cat"), true);
  assert.equal(state.clearTyping("scene-1", "cat"), false);
  assert.equal(state.clearTyping("scene-1", undefined), false);
  assert.deepEqual(state.typingIn("scene-1"), []);
});

test("channels: one born after the page starts empty; an update never moves last_seq back; removal", () => {
  const state = room([info("general", {last_seq: 40, unread: 3})]);
  const general = state.get("general");
  state.upsertChannel({name: "general", topic: "All of it", last_seq: 12});
  assert.equal(general.info.last_seq, 40);
  assert.equal(general.info.topic, "All of it");
  assert.equal(general.unread, 3);

  const fresh = state.upsertChannel({name: "scene-9", kind: "private", created_by: "ann", last_seq: 5});
  assert.equal(fresh.info.last_seq, 0);
  assert.equal(fresh.hasMore, false);
  assert.equal(fresh.historyLoaded, true);
  assert.equal(fresh.info.can_manage, true, "its creator manages it");
  assert.equal(state.upsertChannel({name: "scene-10", created_by: "bob"}).info.can_manage, false);
  assert.equal(state.upsertChannel({name: "scene-11", created_by: "bob"}, {isOwner: true}).info.can_manage, true);
  assert.equal(state.addMessage(fresh, msg("scene-9", 1), {live: true}).counted, true);

  state.select("scene-9");
  state.setTyping("scene-9", BOB, true);
  assert.equal(state.removeChannel("scene-9"), fresh);
  assert.equal(state.get("scene-9"), undefined);
  assert.deepEqual(state.typingIn("scene-9"), []);
  assert.equal(state.removeChannel("scene-9"), undefined);
  assert.equal(state.select("nope"), undefined);
  assert.equal(state.open, fresh, "the open channel stays until another is selected");
});

test("a message seen in a thread is known by id but still joins its channel when it arrives", () => {
  const state = room();
  const general = state.get("general");
  const m = msg("general", 1);
  state.remember(m);
  assert.equal(state.lookup(m.id), m);
  assert.equal(general.messages.size, 0);
  assert.ok(state.addMessage(general, {...m}, {live: true}));
  assert.equal(general.messages.size, 1);
});

// --- presence and agents -----------------------------------------------------------------------------

const AGENT = {username: "scribe", display_name: "Scribe", kind: "agent", status: "idle"};

test("the people list: humans by state then name, agents by name, agent connections from presence", () => {
  const state = new RoomState({me: ME, agents: [AGENT, {username: "archivist", display_name: "Archivist", kind: "agent"}]});
  assert.equal(state.presenceKnown, false);
  assert.deepEqual(state.people().agents.map((a) => [a.username, a.connections]), [["archivist", 0], ["scribe", 0]]);

  const changed = state.applyPresence({type: "presence.state", members: [
    {username: "zed", display_name: "Zed", kind: "human", state: "active", connections: 1},
    {username: "bob", display_name: "Bob", kind: "human", state: "away", connections: 1},
    {username: "ann", display_name: "Ann", kind: "human", state: "idle", connections: 2},
    {username: "al", display_name: "Al", kind: "human", connections: 1}, // no state: after the known ones
    {username: "scribe", display_name: "Scribe", kind: "agent", connections: 3},
  ], agents: [{username: "scribe", status: "working", task: "chapter 2"}]});
  assert.equal(changed, false, "a full state redraws the sidebar only through its own render");
  assert.equal(state.presenceKnown, true);
  const {humans, agents} = state.people();
  assert.deepEqual(humans.map((m) => m.username), ["zed", "ann", "bob", "al"]);
  assert.deepEqual(agents.map((a) => [a.username, a.connections, a.status || null]),
    [["archivist", 0, null], ["scribe", 3, "working"]]);
  assert.equal(agents[1].display_name, "Scribe", "the agent keeps what the page knew");

  // A diff: a join, a tab closed, one who leaves, an agent's new status.
  assert.equal(state.applyPresence({type: "presence.diff",
    joins: [{username: "cat", display_name: "Cat", kind: "human", state: "active", connections: 1}],
    updates: [{username: "ann", connections: 1}, {username: "scribe", display_name: "Scribe", kind: "agent", connections: 0,
      status: "idle", task: null, progress: null}],
    leaves: [{username: "zed"}]}), true);
  assert.deepEqual(state.people().humans.map((m) => [m.username, m.connections]), [["cat", 1], ["ann", 1], ["bob", 1], ["al", 1]]);
  const scribe = state.agents.get("scribe");
  assert.equal(scribe.status, "idle");
  assert.equal(scribe.task, null);
  assert.equal(scribe.connections, 0, "its last connection went");
  assert.equal(state.members.has("scribe"), false);

  // An update for someone not here and with no connection does not add them.
  state.applyPresence({type: "presence.diff", updates: [{username: "ghost", connections: 0}]});
  assert.equal(state.members.has("ghost"), false);
  // An agent's update without a status keeps the status it had.
  state.applyPresence({type: "presence.diff", updates: [{username: "scribe", kind: "agent", connections: 1}]});
  assert.equal(state.agents.get("scribe").status, "idle");
  assert.equal(state.agents.get("scribe").connections, 1);
});

test("an agent status event updates the agent or adds a new one; one without a username is refused", () => {
  const state = new RoomState({me: ME, agents: [AGENT]});
  assert.equal(state.updateAgent({username: "scribe", status: "working", progress: 0.5}), true);
  assert.deepEqual({...state.agents.get("scribe")}, {...AGENT, connections: 0, status: "working", progress: 0.5});
  assert.equal(state.updateAgent({username: "new-bot", display_name: "New"}), true);
  assert.deepEqual(state.agents.get("new-bot"), {username: "new-bot", kind: "agent", connections: 0, display_name: "New"});
  assert.equal(state.updateAgent({status: "working"}), false);
  assert.equal(state.updateAgent(null), false);
  assert.equal(state.agents.size, 2);
});

test("an inbox is shown by its agent's name and username; other channels by name", () => {
  const state = new RoomState({me: ME, agents: [AGENT, {username: "twin", display_name: "Scribe", kind: "agent"}]});
  state.loadChannels([info("general"), info("inbox.scribe", {kind: "inbox"}), info("inbox.twin", {kind: "inbox", inbox_of: "twin"}),
    info("inbox.gone", {kind: "inbox"})]);
  assert.equal(state.channelLabel(state.get("general")), "general");
  assert.equal(state.channelLabel(state.get("inbox.scribe")), "Scribe inbox (@scribe)");
  assert.equal(state.channelLabel(state.get("inbox.twin")), "Scribe inbox (@twin)", "two agents may share a display name");
  assert.equal(state.channelLabel(state.get("inbox.gone")), "inbox.gone", "no such agent: the channel's name");
  assert.equal(state.inboxAgent(state.get("inbox.gone")), undefined);
  state.updateAgent({username: "gone"});
  assert.equal(state.channelLabel(state.get("inbox.gone")), "gone inbox (@gone)", "an agent without a display name");
});

// --- the sidebar and the feed -------------------------------------------------------------------------

test("the sidebar groups channels by kind, by name, archived apart; the public group always shows", () => {
  const state = room([info("zeta"), info("alpha"), info("old", {archived: true}), info("inbox.scribe", {kind: "inbox"}),
    info("secret", {kind: "private", archived: true})]);
  const groups = state.channelGroups();
  assert.deepEqual(groups.map((g) => [g.kind, g.title, g.icon, g.channels.map((c) => c.name)]),
    [["public", "Channels", "hash", ["alpha", "zeta"]], ["inbox", "Agent inboxes", "inbox", ["inbox.scribe"]]]);
  assert.deepEqual(state.archivedChannels().map((c) => c.name), ["old", "secret"]);
  const empty = room([]);
  assert.deepEqual(empty.channelGroups().map((g) => [g.kind, g.channels.length]), [["public", 0]]);
  assert.deepEqual(KIND_GROUPS.map((g) => g.kind), ["public", "private", "presence", "inbox"]);
});

test("an unread badge shows for unread messages outside the open channel", () => {
  const state = room();
  const general = state.get("general");
  const scene = state.get("scene-1");
  assert.equal(state.showsUnread(general), false);
  state.addMessage(general, msg("general", 1), {live: true});
  assert.equal(state.showsUnread(general), true);
  state.select("general");
  assert.equal(state.showsUnread(general), false, "the open channel shows no badge");
  assert.equal(state.showsUnread(scene), false);
});

test("a card goes after every card with a lower seq", () => {
  const at = (seqs, seq) => insertionIndex(seqs.length, (i) => seqs[i], seq);
  assert.equal(at([], 5), 0);
  assert.equal(at([1, 2, 3], 4), 3, "the newest: appended");
  assert.equal(at([2, 3, 4], 1), 0, "the oldest: first");
  assert.equal(at([1, 3, 5, 7], 4), 2);
  assert.equal(at([1, 3, 5, 7], 6), 3);
  for (let n = 0; n < 40; n++) {
    const seqs = Array.from({length: n}, (_, i) => 2 * i + 1);
    for (let seq = 0; seq <= 2 * n + 2; seq += 2) assert.equal(at(seqs, seq), seqs.filter((s) => s < seq).length);
  }
});

test("the new-messages button counts in words", () => {
  assert.equal(newBelowLabel(1), "1 new message ↓");
  assert.equal(newBelowLabel(2), "2 new messages ↓");
  assert.equal(newBelowLabel(0), "0 new messages ↓");
});

test("who may write: a reader of a public story may join, a viewer may not write, nobody writes in an archive", () => {
  assert.deepEqual(composeBlock({role: null, visibility: "public", canWrite: false, archived: false}),
    {reason: "You are reading this story. Join it to write.", join: true});
  assert.deepEqual(composeBlock({role: "viewer", visibility: "public", canWrite: false, archived: false}),
    {reason: "Viewers read along; ask the owner to make you an editor to write.", join: false});
  assert.deepEqual(composeBlock({role: null, visibility: "private", canWrite: false, archived: false}).join, false);
  assert.deepEqual(composeBlock({role: "editor", visibility: "public", canWrite: true, archived: true}),
    {reason: "This channel is archived: it is read-only.", join: false});
  assert.deepEqual(composeBlock({role: "owner", visibility: "private", canWrite: true, archived: false}), {reason: "", join: false});
});

test("edits, deletions and reactions change the message they relate to, live (target) and replayed (worked out)", () => {
  const state = room();
  const ch = state.get("general");
  const line = msg("general", 1, {reactions: []});
  state.addMessage(ch, line, {live: true});
  const rel = (seq, sender, msg_type, rel_type, payload, extra = {}) =>
    msg("general", seq, {sender, msg_type, rel_type, relates_to: line.id, payload, ...extra});

  // Replayed (no target): worked out here. A relation is no unread message and has no card.
  const edit = rel(2, BOB, "edit", "replace", {payload: {text: "fixed"}});
  const change = state.addMessage(ch, edit, {live: true});
  assert.deepEqual(change.updated, [line.id]);
  assert.equal(ch.unread, 1); // the line only
  assert.equal(line.payload.text, "fixed");
  assert.equal(line.edited_at, edit.created_at);
  state.addMessage(ch, rel(3, ME, "reaction", "annotate", {key: "👍"}), {live: true});
  const bobs = rel(4, BOB, "reaction", "annotate", {key: "👍"});
  state.addMessage(ch, bobs, {live: true});
  assert.deepEqual(line.reactions, [{key: "👍", count: 2, me: true}]);
  assert.equal(state.addMessage(ch, bobs, {live: true}), null); // a repeat changes nothing

  // Bob takes his back: the reaction is deleted, the line counts one less, and I still reacted.
  state.addMessage(ch, msg("general", 5, {sender: BOB, msg_type: "delete", rel_type: "redact", relates_to: bobs.id, payload: {}}));
  assert.equal(bobs.deleted, true);
  assert.deepEqual(line.reactions, [{key: "👍", count: 1, me: true}]);

  // Live (with target): the server's view is taken, `me` (null there) kept from before or set by mine.
  state.addMessage(ch, rel(6, CAT, "reaction", "annotate", {key: "🔥"}, {target: {id: line.id, payload: {text: "fixed"},
    edited_at: edit.created_at, deleted: false, reactions: [{key: "👍", count: 1, me: null}, {key: "🔥", count: 1, me: null}]}}), {live: true});
  assert.deepEqual(line.reactions, [{key: "👍", count: 1, me: true}, {key: "🔥", count: 1, me: false}]);

  // Deleted: no text, for everyone; the log keeps it (the message stays, with its seq).
  state.addMessage(ch, rel(7, BOB, "delete", "redact", {}), {live: true});
  assert.equal(line.deleted, true);
  assert.equal(line.payload, null);
  assert.deepEqual(ch.sorted().map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(ch.gaps(), []);

  // A relation to a message not loaded (older history) changes nothing here.
  assert.deepEqual(state.addMessage(ch, msg("general", 8, {msg_type: "reaction", rel_type: "annotate", relates_to: "elsewhere",
    payload: {key: "👍"}})).updated, []);
});
