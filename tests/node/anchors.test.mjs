// Suggestions and comment anchors map through concurrent changes the same way in the browser as on
// the server (issue #16). The browser's answers come from the frontend's own code path: the panels'
// place() (changesSince + mapRange) and the marks StateFields (suggestionMarks, commentMarks), which
// map their decorations through each remote transaction and ask for a read again when a change
// touches one. The server's answers come from MYTHLINE_ANCHOR_CASES, a JSON file written by
// tests/suggestions/test_anchor_parity.py with the real server functions (shift_ranges as
// suggestions.services.refresh uses it; comments.services.map_anchors); without it, a few built-in
// cases with their server answers written out.
//
// Case: {text, changes: [ChangeSet JSON, ...] applied one after another,
//        suggestions: [{edits: [[from, to, insert]], stale: k | null, mapped: [[from, to, insert]] | null}],
//        comments: [{from, to, mapped: [from, to], orphaned}]}
// `stale` is the 1-based index of the first change that touched the suggestion (null: none did),
// `mapped` its edits after every change when it did not go stale. Positions are UTF-16 units.
import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import {test} from "node:test";

import {ChangeSet, EditorState} from "../../frontend/src/collab.js";
import {CommentsPanel, commentMarks} from "../../frontend/src/comments.js";
import {SuggestionsPanel, suggestionMarks} from "../../frontend/src/suggestions.js";
// The same module instances frontend/src resolves (a bare import from tests/ would not find them).
import {collab} from "../../frontend/node_modules/@codemirror/collab/dist/index.js";
import {Transaction} from "../../frontend/node_modules/@codemirror/state/dist/index.js";
import {EditorView} from "../../frontend/node_modules/@codemirror/view/dist/index.js";

const BUILT_IN = [
  // An insertion at the edge of a suggestion's text makes it stale; one well before it moves it.
  {text: "Once upon a time", changes: [[[0, "Oh, "], 16], [9, [0, "!"], 11]],
    suggestions: [{edits: [[5, 9, "across"]], stale: 2, mapped: null}, {edits: [[12, 16, "day"]], stale: null, mapped: [[17, 21, "day"]]}],
    comments: [{from: 5, to: 9, mapped: [10, 14], orphaned: false}, {from: 0, to: 4, mapped: [4, 8], orphaned: false}]},
  // An astral character before a range moves it by two units; deleting all of a comment's text orphans it.
  {text: "ab😀cd efg", changes: [[2, [0, "😀"], 8], [4, [4], 4]],
    suggestions: [{edits: [[4, 5, ""]], stale: 2, mapped: null}, {edits: [[10, 10, "!"]], stale: null, mapped: [[8, 8, "!"]]}],
    comments: [{from: 4, to: 6, mapped: [4, 4], orphaned: true}, {from: 7, to: 10, mapped: [5, 8], orphaned: false}]},
];

function loadCases() {
  const file = process.env.MYTHLINE_ANCHOR_CASES;
  if (!file) return {source: "built-in", cases: BUILT_IN};
  return {source: file, cases: JSON.parse(readFileSync(file, "utf8"))};
}

function fakeEditor(text, marks, {syncedVersion = 0, history = []} = {}) {
  const view = {
    state: EditorState.create({doc: text, extensions: [collab({startVersion: syncedVersion}), marks]}),
    dispatch(...specs) {
      this.state = this.state.update(...specs).state;
    },
  };
  return {view, sync: {syncedVersion, history}};
}

/** The decorations the marks field shows: [[from, to, kind]] in document order. */
function shown(state) {
  const out = [];
  for (const source of state.facet(EditorView.decorations)) {
    const set = typeof source === "function" ? null : source;
    if (!set) continue;
    set.between(0, state.doc.length, (from, to, value) => {
      out.push([from, to, value.spec.widget ? `insert:${value.spec.widget.text}` : "mark"]);
    });
  }
  return out.sort((a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0));
}

function suggestionDecorations(edits) {
  const out = [];
  for (const [from, to, insert] of edits) {
    if (to > from) out.push([from, to, "mark"]);
    if (insert) out.push([to, to, `insert:${insert}`]);
  }
  return out.sort((a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0));
}

/** A store the marks field and place() can use without a page: counts the reads asked for. */
function fakePanel(Panel) {
  const panel = Object.create(Panel.prototype);
  panel.loads = 0;
  panel.touched = false;
  panel.scheduleLoad = () => {
    panel.loads += 1;
  };
  panel.editorUpdated = () => {};
  return panel;
}

function suggestion(id, edits) {
  return {id, author: "agent", author_kind: "agent", note: "", status: "open", edits_utf16: edits};
}

function thread(id, from, to) {
  return {id, created_by: "ann", comments: [], resolved: false, orphaned: false, anchor_utf16: {from, to}};
}

function changeSets(text, changes) {
  let length = text.length;
  return changes.map((json) => {
    const cs = ChangeSet.fromJSON(json);
    assert.equal(cs.length, length, `change ${JSON.stringify(json)} does not fit a document of ${length}`);
    length = cs.newLength;
    return cs;
  });
}

/** Live: the marks placed at the case's revision, then each change arriving from someone else. */
function live(Panel, marks, text, sets, pending) {
  const panel = fakePanel(Panel);
  const editor = fakeEditor(text, marks(panel));
  panel.editor = editor;
  panel.pending = pending;
  panel.place();
  let firstLoad = null;
  sets.forEach((changes, i) => {
    editor.view.dispatch({changes, annotations: Transaction.remote.of(true)});
    if (panel.loads && firstLoad === null) firstLoad = i + 1;
  });
  return {decorations: shown(editor.view.state), firstLoad};
}

/** Read late: the list read at the case's revision, placed in an editor that has every change since,
 * the last `own` of them made in this editor and not yet confirmed by the server. */
function placedLate(Panel, marks, text, sets, pending, own = 0) {
  const panel = fakePanel(Panel);
  const received = sets.slice(0, sets.length - own);
  let doc = text;
  for (const cs of received) doc = cs.apply(EditorState.create({doc}).doc).toString();
  const history = received.map((changes, i) => ({revision: i + 1, changes}));
  const editor = fakeEditor(doc, marks(panel), {syncedVersion: received.length, history});
  for (const changes of sets.slice(received.length)) editor.view.dispatch({changes});
  panel.editor = editor;
  panel.pending = pending;
  panel.place();
  return {decorations: shown(editor.view.state), loads: panel.loads, touched: panel.touched};
}

const {source, cases} = loadCases();

test(`suggestions map as on the server (${cases.length} cases from ${source})`, () => {
  let checked = 0;
  cases.forEach((c, n) => {
    const sets = changeSets(c.text, c.changes);
    c.suggestions.forEach((s, k) => {
      const where = `case ${n} suggestion ${k}: ${JSON.stringify({text: c.text, changes: c.changes, edits: s.edits})}`;
      const pending = () => ({revision: 0, open: [suggestion(k + 1, s.edits)]});
      const got = live(SuggestionsPanel, suggestionMarks, c.text, sets, pending());
      // The browser reads the list again (where the server says stale) exactly at the change that
      // made it stale on the server.
      assert.equal(got.firstLoad, s.stale, `${where}: server stale at ${s.stale}, browser read again at ${got.firstLoad}`);
      if (s.stale === null) {
        assert.deepEqual(got.decorations, suggestionDecorations(s.mapped), `${where}: marks after the changes`);
      }
      // Read before the changes arrived, placed after (changesSince + mapRange), some of them this
      // editor's own: the same marks, and a read again when one of them made it stale.
      for (const own of new Set([0, n % (sets.length + 1)])) {
        const late = placedLate(SuggestionsPanel, suggestionMarks, c.text, sets, pending(), own);
        const at = `${where}, placed late with ${own} own change(s)`;
        if (s.stale === null) {
          assert.deepEqual(late.decorations, suggestionDecorations(s.mapped), `${at}: marks`);
          assert.deepEqual([late.loads, late.touched], [0, false], `${at}: no read again`);
        } else if (s.stale <= sets.length - own) {
          assert.deepEqual([late.loads, late.touched], [1, false], `${at}: stale at ${s.stale}, read again now`);
        } else {
          assert.deepEqual([late.loads, late.touched], [0, true], `${at}: stale at ${s.stale}, read again once ours is confirmed`);
        }
      }
      checked += 1;
    });
  });
  assert.ok(checked > 0);
});

test(`comment anchors map as on the server (${cases.length} cases from ${source})`, () => {
  let checked = 0;
  cases.forEach((c, n) => {
    const sets = changeSets(c.text, c.changes);
    c.comments.forEach((a, k) => {
      const where = `case ${n} comment ${k}: ${JSON.stringify({text: c.text, changes: c.changes, anchor: [a.from, a.to]})}`;
      const expected = a.orphaned ? [] : [[a.mapped[0], a.mapped[1], "mark"]];
      const pending = () => ({revision: 0, threads: [thread(k + 1, a.from, a.to)]});
      const got = live(CommentsPanel, commentMarks, c.text, sets, pending());
      assert.deepEqual(got.decorations, expected,
        `${where}: server ${a.orphaned ? "orphaned" : JSON.stringify(a.mapped)}, browser marks`);
      for (const own of new Set([0, n % (sets.length + 1)])) {
        assert.deepEqual(placedLate(CommentsPanel, commentMarks, c.text, sets, pending(), own).decorations, expected,
          `${where}: marks placed after the changes (changesSince + mapRange), ${own} of them own`);
      }
      checked += 1;
    });
  });
  assert.ok(checked > 0);
});
