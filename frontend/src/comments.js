// Comments in the room (comments/ on the server): threads of comments on a passage of a document,
// highlighted in the text and listed in a dialog beside it (the "margin").
//
//   const comments = new CommentsPanel({slug, canWrite, me});
//   commentMarks(comments)          // the editor extension: each open thread's passage highlighted
//   comments.attach(editor, name)   // the document panel opened `name` (null when it closed one)
//   comments.button()               // the "Comments (N)" head action
//   comments.onEvent(event, data)   // a comment.* story event: the marks and the list follow
//   comments.load()                 // read them again (after a reconnect)
//
// In the text: the passage of each unresolved thread whose text still exists is marked
// (.cm-comment, data-thread), its title saying who opened it and what they wrote. As suggestions.js
// does, the marks are a StateField of decorations mapped through every transaction and placed once
// the editor has the revision the server read them at (changesSince, mapRange); a change from
// someone else touching a marked passage, or a comment event, reads the list again (the server
// re-anchors the threads on every read, and orphans a thread whose text was all deleted).
//
// Writing (opening a thread on the selection, replying, resolving and reopening) is for people who
// write the story; readers see the marks and the threads. The selection is in UTF-16 units of the
// editor's text; the REST API counts characters (code points), so each end is converted by counting
// the code points of the text before it, once this editor's own changes have reached the server.
// Everything is built from text nodes; nothing uses innerHTML.

import {sendableUpdates} from "@codemirror/collab";
import {StateEffect, StateField, Transaction} from "@codemirror/state";
import {Decoration, EditorView} from "@codemirror/view";
import {describeError} from "./compose.js";
import {changesSince, mapRange, snippet} from "./suggestions.js";
import {api, clear, h, labelled} from "./ui.js";

const REFETCH_MS = 150; // coalesces a burst of events and remote changes into one read
const CONFIRM_MS = 10000; // how long "Comment" waits for this editor's own changes to reach the server

const setThreads = StateEffect.define();

function who(author, kind) {
  return `@${author}${kind === "agent" ? " (agent)" : ""}`;
}

function describe(thread) {
  const first = thread.first_comment || (thread.comments || [])[0];
  if (!first) return `Comment by ${who(thread.created_by, thread.created_by_kind)}`;
  return `${who(first.author, first.author_kind)}: ${snippet(first.body)}`;
}

/** Is the thread's passage highlighted in the text? */
function marked(thread) {
  const a = thread.anchor_utf16;
  return !thread.resolved && !thread.orphaned && a && a.to > a.from;
}

function buildDecorations(items, length) {
  const ranges = [];
  for (const {thread, from: rawFrom, to: rawTo} of items) {
    const from = Math.max(0, Math.min(rawFrom, length));
    const to = Math.max(from, Math.min(rawTo, length));
    if (to > from) {
      ranges.push(Decoration.mark({class: "cm-comment", attributes: {title: describe(thread),
        "data-thread": String(thread.id)}}).range(from, to));
    }
  }
  return Decoration.set(ranges, true);
}

/** The editor extension: `store`'s open threads highlighted in the text. */
export function commentMarks(store) {
  const field = StateField.define({
    create: () => Decoration.none,
    update(deco, tr) {
      if (tr.docChanged) {
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
        if (effect.is(setThreads)) deco = buildDecorations(effect.value, tr.state.doc.length);
      }
      return deco;
    },
    provide: (f) => EditorView.decorations.from(f),
  });
  const theme = EditorView.baseTheme({
    ".cm-comment": {background: "#fff1b8", color: "#3d2f00", borderBottom: "2px solid #c99a00"},
  });
  return [field, theme, EditorView.updateListener.of((update) => {
    if (update.transactions.length) store.editorUpdated(update);
  })];
}

export class CommentsPanel {
  constructor({slug, canWrite, me}) {
    this.slug = slug;
    this.canWrite = canWrite;
    this.me = me || {};
    this.editor = null;
    this.name = null;
    this.list = []; // every thread of the open document (with first_comment), oldest first
    this.details = new Map(); // thread id -> every comment of it, read when the dialog shows it
    this.fetching = new Set();
    this.pending = null; // {revision, threads} read from the server, to be placed in the editor
    this.loading = null;
    this.again = false;
    this.timer = null;
    this.touched = false;
    this.selection = null; // [from, to] in the editor's text (UTF-16) for the new thread, mapped as it changes
    this.confirmWaiters = [];
    this.buttons = new Set();
    this.items = new Map(); // thread id -> {el, body, replyBox} (kept across renders: a reply being typed stays)
    this.errorEl = h("p.form-error.small", {id: "comment-error", role: "alert", hidden: true});
    this.statusEl = h("p.muted.small", {id: "comment-count", role: "status"});
    this.listEl = h("ol.comment-threads", {id: "comment-list", style: {"list-style": "none", padding: "0", margin: "0"}});
    this.titleEl = h("h2", {id: "comment-title"}, "Comments");
    this.newButton = h("button.btn.sm", {type: "button", id: "comment-new",
      onclick: () => this.startNew()}, "Comment on the selection");
    this.quoteEl = h("blockquote.comment-quote", {id: "comment-new-quote", style: {margin: "4px 0",
      "overflow-wrap": "anywhere", "border-left": "3px solid #c99a00", "padding-left": "8px"}});
    this.bodyInput = h("textarea", {id: "comment-new-body", rows: 3, maxlength: 5000, required: true,
      style: {width: "100%", "box-sizing": "border-box"}});
    this.newForm = h("form.comment-new-form", {id: "comment-new-form", hidden: true,
      onsubmit: (e) => { e.preventDefault(); this.submitNew(); }},
    this.quoteEl, labelled("Your comment", this.bodyInput),
    h("div", {style: {display: "flex", gap: "6px", "margin-top": "6px"}},
      h("button.btn.sm", {type: "submit", id: "comment-new-submit"}, "Comment"),
      h("button.btn.ghost.sm", {type: "button", onclick: () => this.cancelNew()}, "Cancel")));
    this.writeEl = h("div.comment-write", {style: {margin: "8px 0"}}, this.newButton, this.newForm);
    this.el = h("dialog.members-dialog.comment-dialog", {id: "comment-dialog", "aria-labelledby": "comment-title"},
      h("div.dialog-head", null, this.titleEl,
        h("button.icon-btn", {type: "button", "aria-label": "Close", onclick: () => this.close()}, "×")),
      h("p.muted.small", null, "Threads of comments on passages of this document, in the order of the text; " +
        "open ones are highlighted in it. People who write the story comment, reply and resolve."),
      this.writeEl, this.errorEl, this.statusEl, this.listEl);
    this.el.addEventListener("close", () => {
      if (this.opener && document.contains(this.opener)) this.opener.focus();
    });
    document.body.appendChild(this.el);
  }

  /** People who write the story comment (agents too, over REST and MCP; they do not use the browser). */
  get canComment() {
    return Boolean(this.canWrite) && this.me.kind !== "agent";
  }

  setCanWrite(canWrite) {
    this.canWrite = canWrite;
    this.items.clear(); // rebuilt with or without their controls
    clear(this.listEl);
    this.render();
  }

  base() {
    return `/api/stories/${encodeURIComponent(this.slug)}/documents/${encodeURIComponent(this.name)}/comments`;
  }

  // --- the document -------------------------------------------------------------------------

  attach(editor, name) {
    this.editor = editor;
    this.name = editor ? name : null;
    this.list = [];
    this.details.clear();
    this.items.clear();
    clear(this.listEl);
    this.pending = null;
    this.touched = false;
    this.cancelNew();
    this.render();
    if (editor) this.load();
  }

  onEvent(event, data) {
    if (!data || !this.editor || data.document !== this.name) return;
    if (event === "comment.created" && data.thread != null) this.details.delete(data.thread);
    if (event === "comment.thread.created" || event === "comment.thread.updated" || event === "comment.created") {
      this.scheduleLoad();
    }
  }

  scheduleLoad() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load();
    }, REFETCH_MS);
  }

  /** Reads the document's threads (one read at a time; a read asked for meanwhile follows it). */
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
        this.pending = {revision: reply.revision, threads: this.list.filter(marked)};
        if (this.loadFailed) this.showError(null);
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

  editorUpdated(update) {
    if (this.selection && update && update.docChanged) {
      this.selection = mapRange([update.changes], ...this.selection);
    }
    if (this.pending) queueMicrotask(() => this.place());
    const confirmed = this.editor && !sendableUpdates(this.editor.view.state).length;
    if (this.touched && confirmed) {
      this.touched = false;
      this.scheduleLoad();
    }
    if (confirmed && this.confirmWaiters.length) {
      for (const resolve of this.confirmWaiters.splice(0)) resolve(true);
    }
  }

  /** Places the threads read at `pending.revision` in the editor once it has that revision. */
  place() {
    const pending = this.pending;
    const editor = this.editor;
    if (!pending || !editor) return;
    const maps = changesSince(editor, pending.revision);
    if (maps === null) return; // its changes are on their way
    if (maps === false) {
      this.pending = null;
      this.scheduleLoad();
      return;
    }
    const items = pending.threads.map((thread) => {
      const [from, to] = mapRange(maps, thread.anchor_utf16.from, thread.anchor_utf16.to);
      return {thread, from, to};
    });
    this.pending = null;
    editor.view.dispatch({effects: setThreads.of(items)});
  }

  // --- opening a thread on the selection ----------------------------------------------------

  startNew() {
    this.showError(null);
    if (!this.editor) return;
    const {from, to} = this.editor.view.state.selection.main;
    if (from === to) {
      this.showError({message: "Select the passage to comment on in the text first."});
      return;
    }
    this.selection = [from, to];
    this.quoteEl.textContent = snippet(this.editor.view.state.sliceDoc(from, to));
    this.newForm.hidden = false;
    this.newButton.hidden = true;
    this.bodyInput.focus();
  }

  cancelNew() {
    this.selection = null;
    this.newForm.hidden = true;
    this.newButton.hidden = false;
    this.bodyInput.value = "";
  }

  /** Resolves once this editor's own changes are all on the server (false after CONFIRM_MS). */
  confirmed() {
    if (!this.editor || !sendableUpdates(this.editor.view.state).length) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.confirmWaiters.push(resolve);
      setTimeout(() => resolve(false), CONFIRM_MS);
    });
  }

  async submitNew() {
    const body = this.bodyInput.value.trim();
    if (!body) {
      this.showError({message: "Write a comment first."});
      this.bodyInput.focus();
      return;
    }
    if (!this.selection || !this.editor) return;
    const submit = this.newForm.querySelector("#comment-new-submit");
    submit.disabled = true;
    try {
      if (!(await this.confirmed())) throw new Error("Your latest changes are not saved yet: try again in a moment.");
      const editor = this.editor;
      if (!editor || !this.selection) return;
      const [from, to] = this.selection;
      if (to <= from) throw new Error("The selected passage was deleted meanwhile.");
      const doc = editor.view.state.doc;
      // The REST API counts characters (code points); the editor UTF-16 units.
      const cpFrom = [...doc.sliceString(0, from)].length;
      const cpTo = cpFrom + [...doc.sliceString(from, to)].length;
      await api("POST", this.base(), {from: cpFrom, to: cpTo, revision: editor.sync.syncedVersion, body});
      this.cancelNew();
      this.showError(null);
    } catch (error) {
      this.showError(error);
    } finally {
      submit.disabled = false;
      await this.load();
    }
  }

  // --- the head action and the dialog -------------------------------------------------------

  unresolved() {
    return this.list.filter((t) => !t.resolved);
  }

  button() {
    const button = h("button.btn.ghost.sm", {type: "button", id: "doc-comments",
      title: "Comments: threads on passages of this document", onclick: (e) => this.open(e.currentTarget)});
    for (const b of [...this.buttons]) if (!document.contains(b)) this.buttons.delete(b);
    this.buttons.add(button);
    this.renderButton(button);
    return button;
  }

  renderButton(button) {
    const n = this.unresolved().length;
    button.textContent = `Comments (${n})`;
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

  /** The threads in the order of the text (orphaned ones where their text was), then oldest first. */
  ordered() {
    const at = (t) => (t.anchor ? t.anchor.from : (t.anchor_utf16 || {}).from || 0);
    return [...this.list].sort((a, b) => at(a) - at(b) || a.id - b.id);
  }

  render() {
    for (const b of this.buttons) this.renderButton(b);
    this.titleEl.textContent = this.name ? `Comments on ${this.name}` : "Comments";
    this.writeEl.hidden = !this.canComment || !this.editor;
    if (!this.el.open) return;
    const open = this.unresolved().length;
    const resolved = this.list.length - open;
    this.statusEl.textContent = this.list.length
      ? `${open} open, ${resolved} resolved.` : "No comments yet.";
    const threads = this.ordered();
    const ids = new Set(threads.map((t) => t.id));
    for (const id of [...this.items.keys()]) {
      if (!ids.has(id)) {
        this.items.get(id).el.remove();
        this.items.delete(id);
      }
    }
    const els = threads.map((t) => this.renderThread(t));
    // Reorder only when the order changed (moving an element would take the focus from a reply box).
    const current = [...this.listEl.children];
    if (current.length !== els.length || current.some((el, i) => el !== els[i])) {
      for (const el of els) this.listEl.appendChild(el);
    }
    for (const t of threads) {
      const known = this.details.get(t.id);
      if (t.comment_count > 1 && (!known || known.length < t.comment_count)) this.fetchDetail(t.id);
    }
  }

  async fetchDetail(id) {
    if (this.fetching.has(id)) return;
    this.fetching.add(id);
    const name = this.name;
    try {
      const thread = await api("GET", `${this.base()}/${id}`);
      if (name !== this.name) return;
      this.details.set(id, thread.comments || []);
      const i = this.list.findIndex((t) => t.id === id);
      if (i >= 0 && thread.comment_count !== this.list[i].comment_count) {
        this.list[i] = {...this.list[i], comment_count: thread.comment_count};
      }
      this.render();
    } catch (error) {
      if (name === this.name) this.showError(error);
    } finally {
      this.fetching.delete(id);
    }
  }

  renderThread(t) {
    let item = this.items.get(t.id);
    if (!item) {
      const body = h("div.comment-thread-body");
      const el = h("li.comment-thread", {dataset: {id: String(t.id)}, "aria-label": `Thread ${t.id}`,
        style: {border: "1px solid var(--line)", "border-radius": "8px", padding: "8px 10px", margin: "6px 0"}}, body);
      item = {el, body, replyBox: null, resolveButton: null};
      if (this.canComment) {
        const replyBox = h("textarea.comment-reply-body", {rows: 2, maxlength: 5000, required: true,
          style: {width: "100%", "box-sizing": "border-box"}});
        const replyButton = h("button.btn.sm", {type: "submit", dataset: {action: "reply"}}, "Reply");
        const resolveButton = h("button.btn.ghost.sm", {type: "button", dataset: {action: "resolve"},
          onclick: (e) => this.resolve(t.id, e.currentTarget)});
        const form = h("form.comment-reply", {style: {"margin-top": "6px"},
          onsubmit: (e) => { e.preventDefault(); this.reply(t.id, replyBox, replyButton); }},
        labelled(`Reply to thread ${t.id}`, replyBox),
        h("div", {style: {display: "flex", gap: "6px", "margin-top": "6px"}}, replyButton, resolveButton));
        el.append(form);
        Object.assign(item, {replyBox, resolveButton});
      }
      this.items.set(t.id, item);
    }
    const state = t.resolved ? "resolved" : t.orphaned ? "orphaned" : "open";
    item.el.dataset.state = state;
    item.el.dataset.orphaned = String(Boolean(t.orphaned));
    if (item.resolveButton) {
      item.resolveButton.textContent = t.resolved ? "Reopen" : "Resolve";
      item.resolveButton.setAttribute("aria-label", `${t.resolved ? "Reopen" : "Resolve"} thread ${t.id}`);
      item.resolveButton.dataset.action = t.resolved ? "reopen" : "resolve";
    }
    const statusText = [
      t.resolved ? `resolved by @${t.resolved_by}` : "open",
      t.orphaned ? "orphaned: its text was deleted" : null,
    ].filter(Boolean).join(", ");
    const comments = this.details.get(t.id) || (t.first_comment ? [t.first_comment] : []);
    clear(item.body).append(
      h("div.small", null, h("strong", null, `#${t.id}`), " ", h("span.pill.small.comment-status", null, statusText)),
      h("blockquote.comment-quote", {style: {margin: "6px 0", "overflow-wrap": "anywhere",
        "border-left": "3px solid #c99a00", "padding-left": "8px", "text-decoration": t.orphaned ? "line-through" : null}},
      snippet(t.quote)),
      h("ul.comment-items", {style: {"list-style": "none", padding: "0", margin: "0"}}, comments.map((c) =>
        h("li.comment-item", {dataset: {id: String(c.id), author: c.author}, style: {margin: "4px 0"}},
          h("strong.small", null, who(c.author, c.author_kind)),
          h("p.comment-body", {style: {margin: "2px 0", "overflow-wrap": "anywhere", "white-space": "pre-wrap"}},
            c.body)))),
      t.comment_count > comments.length
        ? h("p.muted.small", null, `${t.comment_count - comments.length} more…`) : null);
    return item.el;
  }

  async reply(id, box, button) {
    const body = box.value.trim();
    if (!body) {
      box.focus();
      return;
    }
    button.disabled = true;
    try {
      await api("POST", `${this.base()}/${id}/replies`, {body});
      box.value = "";
      this.details.delete(id);
      this.showError(null);
    } catch (error) {
      this.showError(error);
    } finally {
      button.disabled = false;
      await this.load();
    }
  }

  async resolve(id, button) {
    const t = this.list.find((x) => x.id === id);
    if (!t) return;
    if (button) button.disabled = true;
    try {
      await api("POST", `${this.base()}/${id}/resolve`, {resolved: !t.resolved, version: t.version});
      this.showError(null);
    } catch (error) {
      this.showError(error);
    } finally {
      if (button) button.disabled = false;
      await this.load();
    }
  }
}
