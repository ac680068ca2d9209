// Editing, deleting and reacting from the room, and its search results (frontend/src/msgtools.js,
// issue #17): who may do what to a card, the inline editor's fields and the payload it makes, and
// the server's highlight split into text and marks (never parsed as markup). The room's own log
// finds my reaction to take it back (roomstate.js myReaction), and a live frame that takes back my
// reaction clears "mine" even while others keep that key. tests/browser/test_message_actions.py and
// test_search.py cover the drawing.
import assert from "node:assert/strict";
import {test} from "node:test";

import {chipLabel, editableFields, editedPayload, highlightParts, messageRights, REACTIONS, searchPath}
  from "../../frontend/src/msgtools.js";
import {RoomState} from "../../frontend/src/roomstate.js";

const ME = {username: "ann", display_name: "Ann"};
const BOB = {username: "bob", display_name: "Bob"};

function message(extra = {}) {
  return {id: "m1", channel: "general", seq: 3, sender: ME, msg_type: "text", payload: {text: "The lamp went ot."},
    relates_to: null, deleted: false, reactions: [], ...extra};
}

test("the picker offers six keys, each with words for a screen reader", () => {
  assert.deepEqual(REACTIONS.map((r) => r.key), ["👍", "❤️", "😂", "🎉", "🤔", "👀"]);
  assert.ok(REACTIONS.every((r) => r.name && r.name !== r.key));
  assert.equal(chipLabel({key: "👍", count: 2, me: true}), "thumbs up: 2 reactions, yours; press to take it back");
  assert.equal(chipLabel({key: "🔥", count: 1, me: false}), "🔥: 1 reaction; press to add yours");
  assert.equal(chipLabel({key: "👀", count: 1, me: true}, {canReact: false}), "eyes: 1 reaction, yours");
});

test("rights: authors edit and delete their own, owners delete any, whoever writes reacts", () => {
  const room = {me: ME, canWrite: true, isOwner: false};
  assert.deepEqual(messageRights(message(), room), {react: true, edit: true, remove: true});
  assert.deepEqual(messageRights(message({sender: BOB}), room), {react: true, edit: false, remove: false});
  assert.deepEqual(messageRights(message({sender: BOB}), {...room, isOwner: true}), {react: true, edit: false, remove: true});
  // A viewer, a reader of a public story, an archived channel: nothing.
  const none = {react: false, edit: false, remove: false};
  assert.deepEqual(messageRights(message(), {...room, canWrite: false}), none);
  assert.deepEqual(messageRights(message(), {...room, archived: (c) => c === "general"}), none);
  // A deleted message, a relation: nothing either.
  assert.deepEqual(messageRights(message({deleted: true, payload: null}), {...room, isOwner: true}), none);
  assert.deepEqual(messageRights(message({msg_type: "reaction", relates_to: "m0", payload: {key: "👍"}}), room), none);
  // A vote is changed by voting again: no Edit, but Delete and React.
  assert.deepEqual(messageRights(message({msg_type: "vote", payload: {proposal: "p", choice: "yes"}}), room),
    {react: true, edit: false, remove: true});
});

test("the editor offers each type's text fields, with their current values", () => {
  assert.deepEqual(editableFields(message()).map((f) => [f.name, f.value, f.multiline]), [["text", "The lamp went ot.", true]]);
  const dialogue = message({msg_type: "dialogue", payload: {character: "Mara", line: "Who's there?"}});
  assert.deepEqual(editableFields(dialogue).map((f) => [f.name, f.value, f.optional]),
    [["character", "Mara", false], ["direction", "", true], ["line", "Who's there?", false]]);
  const plan = message({msg_type: "scene_plan", payload: {title: "Storm", beats: ["Rain", "Wind"]}});
  assert.deepEqual(editableFields(plan).map((f) => [f.name, f.value, f.lines]), [["title", "Storm", false], ["beats", "Rain\nWind", true]]);
  // Another type: its string fields.
  const custom = message({msg_type: "critique", payload: {note: "Too fast", score: 3}});
  assert.deepEqual(editableFields(custom).map((f) => [f.name, f.label]), [["note", "Note"]]);
  assert.deepEqual(editableFields(message({deleted: true, payload: null})), []);
});

test("the edited payload keeps the fields the editor does not show, and says whether anything changed", () => {
  const feedback = message({msg_type: "feedback", payload: {text: "Nice", rating: 4, target: "m0"}});
  assert.deepEqual(editedPayload(feedback, {text: "Nicer  \n"}), {payload: {text: "Nicer", rating: 4, target: "m0"}, changed: true});
  assert.equal(editedPayload(feedback, {text: "Nice"}).changed, false);
  assert.throws(() => editedPayload(message(), {text: "   "}), /Write something first/);
  const dialogue = message({msg_type: "dialogue", payload: {character: "Mara", direction: "softly", line: "Hush."}});
  assert.deepEqual(editedPayload(dialogue, {character: " Mara ", direction: "", line: "Hush now."}),
    {payload: {character: "Mara", line: "Hush now."}, changed: true});
  assert.throws(() => editedPayload(dialogue, {character: "", line: "x"}), /Character is required/);
  const plan = message({msg_type: "scene_plan", payload: {title: "Storm", beats: ["Rain"]}});
  assert.deepEqual(editedPayload(plan, {title: "Storm", beats: " Rain \n\n Wind "}).payload.beats, ["Rain", "Wind"]);
  assert.throws(() => editedPayload(plan, {title: "Storm", beats: "\n"}), /at least one line/);
});

test("the search path: trimmed, at most 200 characters, the story named; nothing for an empty query", () => {
  assert.equal(searchPath("  lamp  ", "tale"), "/api/search?q=lamp&story=tale&limit=20");
  assert.equal(searchPath("a&b=c", "tale", {offset: 20}), "/api/search?q=a%26b%3Dc&story=tale&limit=20&offset=20");
  assert.equal(new URL(searchPath("x".repeat(300), "tale"), "http://h").searchParams.get("q").length, 200);
  assert.equal(searchPath("   ", "tale"), null);
  assert.equal(searchPath(null, "tale"), null);
});

test("a highlight becomes text and marks; its escapes are text, never markup", () => {
  assert.deepEqual(highlightParts("the <mark>lamp</mark> went &lt;b&gt;out&lt;/b&gt; &amp; &quot;on&quot; &#x27;x&#39;"), [
    {text: "the ", mark: false}, {text: "lamp", mark: true},
    {text: " went <b>out</b> & \"on\" 'x'", mark: false}]);
  // Even markup the server would never send stays text: only <mark> and </mark> mean anything.
  assert.deepEqual(highlightParts("<img src=x onerror=alert(1)><mark>a</mark>"),
    [{text: "<img src=x onerror=alert(1)>", mark: false}, {text: "a", mark: true}]);
  assert.deepEqual(highlightParts(""), []);
  assert.deepEqual(highlightParts("&bogus; &#99999999;"), [{text: "&bogus; &#99999999;", mark: false}]);
});

test("my reaction is found in the room's log to take it back; a taken-back one is not", () => {
  const state = new RoomState({me: ME});
  state.loadChannels([{name: "general", kind: "public", topic: "", archived: false, readable: true, last_seq: 0}]);
  const ch = state.get("general");
  const line = {...message({sender: BOB}), seq: 1};
  state.addMessage(ch, line, {live: true});
  const mine = {id: "r1", channel: "general", seq: 2, sender: ME, msg_type: "reaction", rel_type: "annotate",
    relates_to: "m1", payload: {key: "👍"}};
  const bobs = {...mine, id: "r2", seq: 3, sender: BOB};
  state.addMessage(ch, mine, {live: true});
  state.addMessage(ch, bobs, {live: true});
  assert.equal(state.myReaction("m1", "👍").id, "r1");
  assert.equal(state.myReaction("m1", "🎉"), null);
  assert.deepEqual(line.reactions, [{key: "👍", count: 2, me: true}]);
  // Taken back, live: the frame's target has me null; mine is cleared though Bob's 👍 stays.
  state.addMessage(ch, {id: "d1", channel: "general", seq: 4, sender: ME, msg_type: "delete", rel_type: "redact",
    relates_to: "r1", payload: {}, target: {id: "m1", payload: line.payload, edited_at: null, deleted: false,
      reactions: [{key: "👍", count: 1, me: null}]}}, {live: true});
  assert.deepEqual(line.reactions, [{key: "👍", count: 1, me: false}]);
  assert.equal(state.myReaction("m1", "👍"), null);
  // Bob taking his back keeps mine as it was (none).
  state.addMessage(ch, {id: "d2", channel: "general", seq: 5, sender: BOB, msg_type: "delete", rel_type: "redact",
    relates_to: "r2", payload: {}, target: {id: "m1", payload: line.payload, edited_at: null, deleted: false, reactions: []}},
  {live: true});
  assert.deepEqual(line.reactions, []);
});

test("a reaction taken back that the room does not hold marks its message to be read again", () => {
  const state = new RoomState({me: ME});
  state.loadChannels([{name: "general", kind: "public", topic: "", archived: false, readable: true, last_seq: 0}]);
  const ch = state.get("general");
  const line = {...message({sender: BOB, reactions: [{key: "👍", count: 2, me: true}]}), seq: 7};
  state.addMessage(ch, line, {live: false});
  // Replayed, without a target: nothing to go on.
  state.addMessage(ch, {id: "d0", channel: "general", seq: 8, sender: ME, msg_type: "delete",
    rel_type: "redact", relates_to: "unknown", payload: {}}, {live: true});
  assert.deepEqual(state.takeStale(), []);
  // Live: the target is the (deleted) reaction, naming the message it was on.
  const change = state.addMessage(ch, {id: "d1", channel: "general", seq: 9, sender: ME, msg_type: "delete",
    rel_type: "redact", relates_to: "not-held", payload: {}, target: {id: "not-held", relates_to: "m1", payload: null,
      deleted: true, reactions: []}}, {live: true});
  assert.deepEqual(change.updated, []);
  assert.deepEqual(state.takeStale(), ["m1"]);
  assert.deepEqual(state.takeStale(), []);
  assert.ok(state.refreshView({id: "m1", payload: line.payload, edited_at: null, deleted: false,
    reactions: [{key: "👍", count: 1, me: false}]}));
  assert.deepEqual(line.reactions, [{key: "👍", count: 1, me: false}]);
  assert.equal(state.refreshView({id: "nope"}), false);
});
