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
// or all of one author's at once. Everything is built from text nodes; nothing uses innerHTML.

import {sendableUpdates} from "@codemirror/collab";
import {StateEffect, StateField, Transaction} from "@codemirror/state";
import {Decoration, EditorView, WidgetType} from "@codemirror/view";
import {describeError} from "./compose.js";
import {api, clear, h} from "./ui.js";

const REFETCH_MS = 150; // coalesces a burst of events and remote changes into one read
const SNIPPET = 120;

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
        if (deco.size) {
          let touched = false;
          deco.between(0, tr.startState.doc.length, (from, to) => {
            if (tr.changes.touchesRange(from, to)) touched = true;
            return touched ? false : undefined;
          });
          if (touched && tr.annotation(Transaction.remote)) store.scheduleLoad();
          else if (touched) store.touched = true;
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

/** The changes to map a position read at server `revision` into `editor`'s text: those received
 * since, then this editor's unconfirmed ones. null while the editor lacks that revision (its changes
 * are on their way), false when too far behind to map (read again). Shared with comments.js. */
export function changesSince(editor, revision) {
  const sync = editor.sync;
  const synced = sync.syncedVersion;
  if (synced == null || synced < revision) return null;
  const since = (sync.history || []).filter((c) => c.revision > revision).map((c) => c.changes);
  if (since.length !== synced - revision) return false;
  return since.concat(sendableUpdates(editor.view.state).map((u) => u.changes));
}

/** [from, to] mapped through `maps` (from changesSince): text typed at either edge stays outside. */
export function mapRange(maps, from, to) {
  let a = from;
  let b = to;
  for (const changes of maps) {
    a = changes.mapPos(Math.min(a, changes.length), 1);
    b = Math.max(a, changes.mapPos(Math.min(b, changes.length), -1));
  }
  return [a, b];
}

/** Whether a change among `maps` (from changesSince) touches [from, to] as mapRange carries it through
 * them: a change at either edge counts, as on the server, where it makes a suggestion stale. */
export function touchedSince(maps, from, to) {
  let a = from;
  let b = to;
  for (const changes of maps) {
    if (changes.touchesRange(Math.min(a, changes.length), Math.min(b, changes.length))) return true;
    [a, b] = mapRange([changes], a, b);
  }
  return false;
}

export function snippet(text) {
  const chars = [...String(text || "")];
  return chars.length > SNIPPET ? `${chars.slice(0, SNIPPET).join("")}…` : chars.join("");
}

export class SuggestionsPanel {
  constructor({slug, canWrite, me}) {
    this.slug = slug;
    this.canWrite = canWrite;
    this.me = me || {};
    this.editor = null; // {view, sync} of the open document
    this.name = null;
    this.list = []; // every suggestion of the open document, oldest first
    this.pending = null; // {revision, open} read from the server, to be placed in the editor
    this.loading = null;
    this.again = false;
    this.timer = null;
    this.touched = false; // this editor changed marked text: read again once the change is on the server
    this.buttons = new Set();
    this.errorEl = h("p.form-error.small", {id: "suggest-error", role: "alert", hidden: true});
    this.statusEl = h("p.muted.small", {id: "suggest-count", role: "status"});
    this.listEl = h("div.suggest-list", {id: "suggest-list"});
    this.titleEl = h("h2", {id: "suggest-title"}, "Suggestions");
    this.el = h("dialog.members-dialog.suggest-dialog", {id: "suggest-dialog", "aria-labelledby": "suggest-title"},
      h("div.dialog-head", null, this.titleEl,
        h("button.icon-btn", {type: "button", "aria-label": "Close", onclick: () => this.close()}, "×")),
      h("p.muted.small", null, "Changes proposed to this document, marked in the text: struck through is what goes, " +
        "underlined what comes. People who write the story accept or reject them; agents only suggest."),
      this.errorEl, this.statusEl, this.listEl);
    this.el.addEventListener("close", () => {
      if (this.opener && document.contains(this.opener)) this.opener.focus();
    });
    document.body.appendChild(this.el);
  }

  /** People who write the story decide; agents never (the server refuses them too). */
  get canDecide() {
    return Boolean(this.canWrite) && this.me.kind !== "agent";
  }

  setCanWrite(canWrite) {
    this.canWrite = canWrite;
    this.render();
  }

  base() {
    return `/api/stories/${encodeURIComponent(this.slug)}/documents/${encodeURIComponent(this.name)}/suggestions`;
  }

  // --- the document -------------------------------------------------------------------------

  attach(editor, name) {
    this.editor = editor;
    this.name = editor ? name : null;
    this.list = [];
    this.pending = null;
    this.touched = false;
    this.render();
    if (editor) this.load();
  }

  onEvent(event, data) {
    if (!data || !this.editor || data.document !== this.name) return;
    if (event === "suggestion.created" || event === "suggestion.updated") this.scheduleLoad();
  }

  scheduleLoad() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load();
    }, REFETCH_MS);
  }

  /** Reads the document's suggestions (one read at a time; a read asked for meanwhile follows it). */
  async load() {
    if (!this.editor) return;
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    const name = this.name;
    this.loading = (async () => {
      try {
        const reply = await api("GET", this.base());
        if (name !== this.name || !this.editor) return;
        this.list = reply.results || [];
        this.pending = {revision: reply.revision, open: this.list.filter((s) => s.status === "open")};
        if (this.loadFailed) this.showError(null); // a decision's error stays until the next decision
        this.loadFailed = false;
        this.place();
      } catch (error) {
        if (name === this.name) {
          this.loadFailed = true;
          this.showError(error);
        }
      } finally {
        this.loading = null;
        this.render();
      }
    })();
    await this.loading;
    if (this.again) {
      this.again = false;
      await this.load();
    }
  }

  editorUpdated() {
    if (this.pending) queueMicrotask(() => this.place());
    if (this.touched && this.editor && !sendableUpdates(this.editor.view.state).length) {
      this.touched = false;
      this.scheduleLoad();
    }
  }

  /** Places the list read at `pending.revision` in the editor once it has that revision: mapped
   * through the changes received since, then through our own unconfirmed ones. */
  place() {
    const pending = this.pending;
    const editor = this.editor;
    if (!pending || !editor) return;
    const maps = changesSince(editor, pending.revision);
    if (maps === null) return; // its changes are on their way
    if (maps === false) {
      this.pending = null;
      this.scheduleLoad(); // too far behind to map: read again, at a revision close to ours
      return;
    }
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
    this.pending = null;
    editor.view.dispatch({effects: setSuggestions.of(items)});
    if (staleNow) this.scheduleLoad();
  }

  // --- the head action and the dialog -------------------------------------------------------

  openOnes() {
    return this.list.filter((s) => s.status === "open");
  }

  button() {
    const button = h("button.btn.ghost.sm", {type: "button", id: "doc-suggestions",
      title: "Suggestions: changes proposed to this document", onclick: (e) => this.open(e.currentTarget)});
    for (const b of [...this.buttons]) if (!document.contains(b)) this.buttons.delete(b);
    this.buttons.add(button);
    this.renderButton(button);
    return button;
  }

  renderButton(button) {
    const n = this.openOnes().length;
    button.textContent = `Suggestions (${n})`;
    button.dataset.count = String(n);
  }

  async open(opener = document.activeElement) {
    this.opener = opener;
    if (!this.el.open) this.el.showModal();
    this.render();
    await this.load();
  }

  close() {
    if (this.el.open) this.el.close();
  }

  showError(error) {
    this.errorEl.textContent = error ? describeError(error) : "";
    this.errorEl.hidden = !error;
  }

  render() {
    for (const b of this.buttons) this.renderButton(b);
    this.titleEl.textContent = this.name ? `Suggestions on ${this.name}` : "Suggestions";
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

  async decide(s, decision, button) {
    if (button) button.disabled = true;
    try {
      await api("POST", `${this.base()}/${s.id}/${decision}`, {version: s.version});
      this.showError(null);
    } catch (error) {
      this.showError(error);
    } finally {
      if (button) button.disabled = false;
      await this.load();
    }
  }

  async decideAll(decision, author, button) {
    if (button) button.disabled = true;
    try {
      const reply = await api("POST", `${this.base()}/decide`, {decision, author});
      const skipped = reply.skipped || [];
      if (skipped.length) {
        this.showError({message: `${skipped.length} of @${author}'s suggestions could not be ${decision}ed ` +
          `(${skipped.map((id) => `#${id}`).join(", ")}): the text they were about has changed.`});
      } else {
        this.showError(null);
      }
    } catch (error) {
      this.showError(error);
    } finally {
      if (button) button.disabled = false;
      await this.load();
    }
  }
}
