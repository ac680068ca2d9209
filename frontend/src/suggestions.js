// Suggestions in the room (suggestions/ on the server): changes proposed to a document instead of
// made, by an agent or a person, shown in the text and decided by a person.
//
//   const suggestions = new SuggestionsPanel({slug, canWrite, me});
//   suggestionMarks(suggestions)     // the editor extension: each open suggestion marked in the text
//   suggestions.attach(editor, name) // the document panel opened `name` (null when it closed one)
//   suggestions.button()             // the "Suggestions (N)" head action
//   suggestions.onEvent(event, data) // a suggestion.* story event: the marks and the list follow
//   suggestions.load()               // read them again (after a reconnect)
//
// In the text: what an edit replaces is struck through (.cm-suggest-delete) and what it inserts
// shown after it as a widget (.cm-suggest-insert); the title says who suggested it and why. The
// marks are a StateField of decorations mapped through every transaction, so they stay on their
// text while anyone types. The list comes from the server at the revision it reports: the marks are
// placed once the editor has every change up to that revision, mapped through the changes received
// since and this editor's own unconfirmed ones (as others' cursors are). When a change from someone
// else touches a marked range, or a suggestion changes on the server, the list is read again.
//
// Deciding is for people who write the story (its owner and human editors): Accept / Reject each,
// or all of one author's at once; each decision is followed by a read that starts after it
// (PassagePanel in passages.js: the reads, the head button, the dialog). Everything is built from
// text nodes; nothing uses innerHTML.

import {StateEffect, StateField, Transaction} from "@codemirror/state";
import {Decoration, EditorView, WidgetType} from "@codemirror/view";
import {mapRange, PassagePanel, snippet, touchedSince, touchesMarks} from "./passages.js";
import {api, clear, h} from "./ui.js";

// Shared with comments.js and the Node tests; they live in passages.js.
export {changesSince, mapRange, snippet, touchedSince} from "./passages.js";

const setSuggestions = StateEffect.define();

function describe(s) {
  const who = `Suggested by @${s.author}${s.author_kind === "agent" ? " (agent)" : ""}`;
  return s.note ? `${who}: ${s.note}` : who;
}

class InsertWidget extends WidgetType {
  constructor(text, title, id) {
    super();
    this.text = text;
    this.title = title;
    this.id = id;
  }

  eq(other) {
    return other.text === this.text && other.title === this.title && other.id === this.id;
  }

  toDOM() {
    return h("span.cm-suggest-insert", {title: this.title, dataset: {suggestion: String(this.id)}}, this.text);
  }

  ignoreEvent() {
    return false;
  }
}

/** Decorations for `items` ([{suggestion, edits: [[from, to, insert]]}] in this document's positions). */
function buildDecorations(items, length) {
  const ranges = [];
  for (const {suggestion, edits} of items) {
    const title = describe(suggestion);
    const id = String(suggestion.id);
    for (const [rawFrom, rawTo, insert] of edits) {
      const from = Math.max(0, Math.min(rawFrom, length));
      const to = Math.max(from, Math.min(rawTo, length));
      if (to > from) {
        ranges.push(Decoration.mark({class: "cm-suggest-delete", attributes: {title, "data-suggestion": id}})
          .range(from, to));
      }
      if (insert) ranges.push(Decoration.widget({widget: new InsertWidget(insert, title, suggestion.id), side: 1}).range(to));
    }
  }
  return Decoration.set(ranges, true);
}

/** The editor extension: `store`'s open suggestions marked in the text. */
export function suggestionMarks(store) {
  const field = StateField.define({
    create: () => Decoration.none,
    update(deco, tr) {
      if (tr.docChanged) {
        // A change on a marked range may have made a suggestion stale: ask again (after our own
        // change reached the server, for one made here).
        if (touchesMarks(deco, tr)) {
          if (tr.annotation(Transaction.remote)) store.scheduleLoad();
          else store.touched = true;
        }
        deco = deco.map(tr.changes);
      }
      for (const effect of tr.effects) {
        if (effect.is(setSuggestions)) deco = buildDecorations(effect.value, tr.state.doc.length);
      }
      return deco;
    },
    provide: (f) => EditorView.decorations.from(f),
  });
  const theme = EditorView.baseTheme({
    ".cm-suggest-delete": {textDecoration: "line-through", textDecorationThickness: "2px",
      background: "#fbdada", color: "#5c0b0b", borderRadius: "2px"},
    ".cm-suggest-insert": {textDecoration: "underline", background: "#d3f2da", color: "#0b3d17", borderRadius: "2px",
      padding: "0 1px"},
  });
  return [field, theme, EditorView.updateListener.of((update) => {
    if (update.transactions.length) store.editorUpdated();
  })];
}

export class SuggestionsPanel extends PassagePanel {
  constructor({slug, canWrite, me}) {
    super({slug, canWrite, me, resource: "suggestions", id: "suggest", label: "Suggestions",
      buttonTitle: "Suggestions: changes proposed to this document",
      intro: "Changes proposed to this document, marked in the text: struck through is what goes, " +
        "underlined what comes. People who write the story accept or reject them; agents only suggest."});
    this.listEl = h("div.suggest-list", {id: "suggest-list"});
    this.el.append(this.errorEl, this.statusEl, this.listEl);
  }

  /** People who write the story decide; agents never (the server refuses them too). */
  get canDecide() {
    return Boolean(this.canWrite) && this.me.kind !== "agent";
  }

  onEvent(event, data) {
    if (!data || !this.editor || data.document !== this.name) return;
    if (event === "suggestion.created" || event === "suggestion.updated") this.scheduleLoad();
  }

  received(list, revision) {
    this.pending = {revision, open: list.filter((s) => s.status === "open")};
  }

  /** The open suggestions read at `pending.revision`, mapped through `maps` (changesSince) into marks. */
  placeItems(maps, pending) {
    const editor = this.editor;
    const items = pending.open.map((suggestion) => ({
      suggestion,
      edits: (suggestion.edits_utf16 || []).map(([from, to, insert]) => [...mapRange(maps, from, to), insert]),
    }));
    // A change since the read that touched a suggestion made it stale on the server: read again (once
    // our own change is there, for one of ours), as the marks do for changes made after they are placed.
    const received = maps.slice(0, editor.sync.syncedVersion - pending.revision);
    const edges = pending.open.flatMap((suggestion) => suggestion.edits_utf16 || []);
    const staleNow = edges.some(([from, to]) => touchedSince(received, from, to));
    if (!staleNow && edges.some(([from, to]) => touchedSince(maps, from, to))) this.touched = true;
    editor.view.dispatch({effects: setSuggestions.of(items)});
    if (staleNow) this.scheduleLoad();
  }

  // --- the head action and the dialog -------------------------------------------------------

  openOnes() {
    return this.list.filter((s) => s.status === "open");
  }

  count() {
    return this.openOnes().length;
  }

  render() {
    super.render();
    if (!this.el.open) return;
    clear(this.listEl);
    const shown = this.list.filter((s) => s.status === "open" || s.status === "stale");
    const decided = this.list.filter((s) => s.status === "accepted" || s.status === "rejected");
    const open = shown.filter((s) => s.status === "open").length;
    const stale = shown.length - open;
    this.statusEl.textContent = shown.length
      ? `${open} open${stale ? `, ${stale} stale (the text they were about has changed)` : ""}.`
      : "No open suggestions.";
    const byAuthor = new Map();
    for (const s of shown) {
      if (!byAuthor.has(s.author)) byAuthor.set(s.author, []);
      byAuthor.get(s.author).push(s);
    }
    for (const [author, items] of byAuthor) {
      const kind = items[0].author_kind === "agent" ? " (agent)" : "";
      const head = h("div.suggest-author-head", {style: {display: "flex", "flex-wrap": "wrap", gap: "6px",
        "align-items": "center", margin: "14px 0 4px"}}, h("h3", {style: {margin: "0", "margin-right": "auto"}},
        `@${author}${kind}`));
      if (this.canDecide && items.some((s) => s.status === "open")) {
        head.append(
          h("button.btn.sm", {type: "button", dataset: {action: "accept-all", author},
            onclick: (e) => this.decideAll("accept", author, e.currentTarget)}, `Accept all of @${author}`),
          h("button.btn.ghost.sm", {type: "button", dataset: {action: "reject-all", author},
            onclick: (e) => this.decideAll("reject", author, e.currentTarget)}, `Reject all of @${author}`));
      }
      this.listEl.append(h("section.suggest-group", {dataset: {author}, "aria-label": `Suggestions of @${author}`},
        head, h("ul.suggest-items", {style: {"list-style": "none", padding: "0", margin: "0"}},
          items.map((s) => this.renderItem(s)))));
    }
    if (decided.length) {
      this.listEl.append(h("details.suggest-decided", {style: {"margin-top": "14px"}},
        h("summary.small", null, `Decided (${decided.length})`),
        h("ul.suggest-items", {style: {"list-style": "none", padding: "0", margin: "0"}},
          decided.slice(-50).reverse().map((s) => this.renderItem(s)))));
    }
  }

  renderItem(s) {
    const changes = (s.edits_utf16 || []).map(([, , insert], i) => {
      const replaced = (s.replaced || [])[i] || "";
      return h("div.suggest-change", {style: {margin: "4px 0", "overflow-wrap": "anywhere"}},
        replaced ? h("del", {style: {background: "#fbdada", color: "#5c0b0b"}}, snippet(replaced)) : null,
        replaced && insert ? " → " : null,
        insert ? h("ins", {style: {background: "#d3f2da", color: "#0b3d17"}}, snippet(insert)) : null,
        !replaced && !insert ? h("span.muted", null, "(nothing)") : null);
    });
    const statusText = {
      open: "open", stale: "stale: the text changed, it can only be rejected",
      accepted: `accepted by @${s.decided_by}`, rejected: `rejected by @${s.decided_by}`,
    }[s.status] || s.status;
    const item = h("li.suggest-item", {dataset: {id: String(s.id), status: s.status, author: s.author},
      style: {border: "1px solid var(--line)", "border-radius": "8px", padding: "8px 10px", margin: "6px 0"}},
    h("div.small", null, h("strong", null, `#${s.id}`), " ", h("span.pill.small.suggest-status", null, statusText)),
    s.note ? h("p.suggest-note", {style: {margin: "4px 0", "overflow-wrap": "anywhere"}}, s.note) : null,
    changes);
    if (this.canDecide && (s.status === "open" || s.status === "stale")) {
      const actions = h("div.suggest-actions", {style: {display: "flex", gap: "6px", "margin-top": "6px"}});
      if (s.status === "open") {
        actions.append(h("button.btn.sm", {type: "button", dataset: {action: "accept"},
          "aria-label": `Accept suggestion ${s.id}`, onclick: (e) => this.decide(s, "accept", e.currentTarget)}, "Accept"));
      }
      actions.append(h("button.btn.ghost.sm", {type: "button", dataset: {action: "reject"},
        "aria-label": `Reject suggestion ${s.id}`, onclick: (e) => this.decide(s, "reject", e.currentTarget)}, "Reject"));
      item.append(actions);
    }
    return item;
  }

  decide(s, decision, button) {
    return this.act(() => api("POST", `${this.base()}/${s.id}/${decision}`, {version: s.version}), button);
  }

  decideAll(decision, author, button) {
    return this.act(async () => {
      const reply = await api("POST", `${this.base()}/decide`, {decision, author});
      const skipped = reply.skipped || [];
      if (skipped.length) {
        throw {message: `${skipped.length} of @${author}'s suggestions could not be ${decision}ed ` +
          `(${skipped.map((id) => `#${id}`).join(", ")}): the text they were about has changed.`};
      }
      return reply;
    }, button);
  }
}
