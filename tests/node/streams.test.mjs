// Streaming messages in the room (frontend/src/streams.js, issue #17): chunks merged by their
// offset (in code points, as the server counts), duplicates dropped, a gap kept aside until the
// text reaches it, the final message replacing its stream, and a late frame of a stream that is
// over never drawing it again. tests/browser/test_streaming.py covers the drawing.
import assert from "node:assert/strict";
import {test} from "node:test";

import {cpLength, cpSliceFrom, mergeChunk, StreamSet, streamMessage} from "../../frontend/src/streams.js";

const AGENT = {username: "narrator", display_name: "Narrator", kind: "agent"};

function started(set, extra = {}) {
  return set.started({id: "s1", sender: AGENT, msg_type: "narration", payload: {}, field: "text", text: "",
    started_at: "2026-12-06T10:00:00Z", ...extra});
}

test("code points, not UTF-16 units, as Python counts them", () => {
  assert.equal(cpLength("abc"), 3);
  assert.equal(cpLength("a🌊b"), 3); // "🌊" is two units in JS, one character on the server
  assert.equal(cpSliceFrom("a🌊bc", 2), "bc");
  assert.equal(cpSliceFrom("a🌊bc", 1), "🌊bc");
  assert.equal(cpSliceFrom("abc", 5), "");
  assert.equal(cpLength("\ud800x"), 2); // a lone surrogate counts as one
});

test("mergeChunk appends what is new, drops what is held, reports a gap", () => {
  assert.deepEqual(mergeChunk("The ", 4, 4, "sea"), {text: "The sea", length: 7, added: "sea"});
  assert.deepEqual(mergeChunk("The sea", 7, 4, "sea"), {text: "The sea", length: 7, added: ""}); // a repeat
  assert.deepEqual(mergeChunk("The se", 6, 4, "sea"), {text: "The sea", length: 7, added: "a"}); // overlaps
  assert.equal(mergeChunk("The", 3, 5, "x").added, null); // past the end
  assert.deepEqual(mergeChunk("🌊", 1, 1, "🌊!"), {text: "🌊🌊!", length: 3, added: "🌊!"});
  assert.deepEqual(mergeChunk("🌊🌊", 2, 1, "🌊!"), {text: "🌊🌊!", length: 3, added: "!"});
});

test("chunks grow the text in order; a snapshot followed by chunks it already holds adds each once", () => {
  const set = new StreamSet();
  assert.equal(started(set).isNew, true);
  assert.equal(set.chunk({id: "s1", offset: 0, text: "The tide "}).changed, true);
  assert.equal(set.chunk({id: "s1", offset: 9, text: "turned."}).stream.text, "The tide turned.");
  // A resubscribe's snapshot (with the text so far) and the chunks that raced it.
  const again = started(set, {text: "The tide turned. Gulls"});
  assert.equal(again.isNew, false);
  assert.equal(again.changed, true);
  assert.equal(set.chunk({id: "s1", offset: 17, text: "Gulls"}).changed, false);
  assert.equal(set.chunk({id: "s1", offset: 22, text: " wheeled."}).stream.text, "The tide turned. Gulls wheeled.");
  // An older snapshot never shortens the text.
  assert.equal(started(set, {text: "The tide"}).changed, false);
  assert.equal(set.get("s1").text, "The tide turned. Gulls wheeled.");
});

test("a gap waits aside, then joins when the text reaches it (from a refetch or the missing chunk)", () => {
  const set = new StreamSet();
  started(set);
  set.chunk({id: "s1", offset: 0, text: "One, "});
  const gap = set.chunk({id: "s1", offset: 10, text: "three."});
  assert.equal(gap.gap, true);
  assert.equal(gap.changed, false);
  assert.equal(set.get("s1").text, "One, "); // what it has is shown
  const more = set.chunk({id: "s1", offset: 16, text: " Four."});
  assert.equal(more.gap, true);
  // The missing chunk arrives: everything kept joins, in order.
  const filled = set.chunk({id: "s1", offset: 5, text: "two, "});
  assert.equal(filled.changed, true);
  assert.equal(filled.gap, false);
  assert.equal(set.get("s1").text, "One, two, three. Four.");

  // Or the text so far is read again (REST): the kept chunks past it join.
  const other = new StreamSet();
  started(other);
  other.chunk({id: "s1", offset: 8, text: "gamma"});
  const fetched = started(other, {text: "alpha, b"});
  assert.equal(fetched.changed, true);
  assert.equal(other.get("s1").text, "alpha, bgamma");
  assert.equal(other.get("s1").gap, false);
});

test("the final message replaces its stream; nothing of the stream comes back after", () => {
  const set = new StreamSet();
  started(set, {text: "Dusk."});
  assert.equal(set.ended({id: "s1", status: "completed"}).status, "completed");
  assert.equal(set.has("s1"), true); // still shown until its message comes
  assert.equal(set.settle("s1").text, "Dusk.");
  assert.equal(set.has("s1"), false);
  assert.equal(set.settle("other"), null); // an ordinary message: no stream
  assert.equal(started(set, {text: "Dusk."}), null); // a late snapshot of it
  assert.equal(set.chunk({id: "s1", offset: 5, text: "!"}), null);
  assert.equal(set.size, 0);
});

test("a cancelled stream is over", () => {
  const set = new StreamSet();
  started(set, {text: "Half a"});
  assert.equal(set.ended({id: "s1", status: "cancelled"}).status, "cancelled");
  assert.equal(set.has("s1"), false);
  assert.equal(started(set), null);
  assert.equal(set.ended({id: "nope", status: "completed"}), null);
});

test("after a resubscribe, a stream that ended while away goes; one still open or started again stays", () => {
  const set = new StreamSet();
  started(set, {id: "a"});
  started(set, {id: "b"});
  started(set, {id: "c"});
  const token = set.beginResync();
  started(set, {id: "b", text: "so far"}); // the snapshot after the replay
  started(set, {id: "d"}); // a new one: never dropped
  assert.deepEqual(set.endResync(["c", "d"], token), ["a"]);
  assert.deepEqual(set.list().map((s) => s.id), ["b", "c", "d"]);
  assert.deepEqual(set.endResync([], null), []);
});

test("a stream's card is the message it becomes: its payload with the text in its field", () => {
  const set = new StreamSet();
  const {stream} = set.started({id: "s2", sender: AGENT, msg_type: "dialogue", payload: {character: "Mara"}, field: "line",
    text: "Not yet", started_at: "2026-12-06T10:00:00Z"});
  const m = streamMessage(stream, "general");
  assert.deepEqual(m.payload, {character: "Mara", line: "Not yet"});
  assert.equal(m.seq, Infinity);
  assert.equal(m.channel, "general");
  assert.equal(m.id, "s2");
  assert.equal(started(new StreamSet(), {id: 5}), null); // malformed
});
