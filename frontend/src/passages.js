// What the two passage panels share (suggestions.js and comments.js): things the server keeps on
// passages of a document, read over REST, marked in the editor and listed in a dialog.
//
//   class XPanel extends PassagePanel {
//     constructor(options) { super({...options, resource: "x", id: "x", label: "X", intro: "…"}); }
//     count()                     // the number in the head button: "X (N)"
//     received(list, revision)    // a read arrived: keep what to place (this.pending) from it
//     placeItems(maps, pending)   // dispatch the marks of `pending`, mapped through `maps` (changesSince)
//     render()                    // the dialog (call super.render() first: buttons and title)
//   }
//
// The base keeps a registry of the head buttons (one per render of the document head), opens and
// closes the dialog (the focus goes back to what opened it), shows errors, and reads the list:
// one read at a time, a burst of asks coalesced (scheduleLoad), and `await load()` resolves only
// once a read that *started after the call* has finished, so that a decision made here is always
// seen (a read already on its way when the decision committed does not count). A read that fails
// is tried again with a growing delay until one succeeds or the document changes. The list is read
// at a revision: it is placed once the editor has that revision, mapped through the changes
// received since and this editor's own unconfirmed ones (changesSince, mapRange).

import {sendableUpdates} from "@codemirror/collab";
import {describeError} from "./compose.js";
import {api, h} from "./ui.js";

const REFETCH_MS = 150; // coalesces a burst of events and remote changes into one read
const RETRY_MS = [500, 1000, 2000, 4000, 8000, 15000]; // a failed read is tried again after these
const SNIPPET = 120;

/** The changes to map a position read at server `revision` into `editor`'s text: those received
 * since, then this editor's unconfirmed ones. null while the editor lacks that revision (its changes
 * are on their way), false when too far behind to map (read again). */
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

/** Whether a transaction changed text under a marked range of `deco` (the marks fields use it). */
export function touchesMarks(deco, tr) {
  if (!deco.size) return false;
  let touched = false;
  deco.between(0, tr.startState.doc.length, (from, to) => {
    if (tr.changes.touchesRange(from, to)) touched = true;
    return touched ? false : undefined;
  });
  return touched;
}

export class PassagePanel {
  /** resource: the REST collection under the document ("suggestions", "comments"); id: the prefix of
   * the elements' ids; label: the head button's word; title/intro: the dialog's; body: its content. */
  constructor({slug, canWrite, me, resource, id, label, buttonTitle, intro, body = []}) {
    this.slug = slug;
    this.canWrite = canWrite;
    this.me = me || {};
    this.resource = resource;
    this.idPrefix = id;
    this.label = label;
    this.buttonTitle = buttonTitle;
    this.editor = null; // {view, sync} of the open document
    this.name = null;
    this.list = []; // everything of the open document, oldest first
    this.pending = null; // read from the server at pending.revision, to be placed in the editor
    this.loading = null; // the read on its way
    this.asked = 0; // how many reads were asked for
    this.covered = 0; // the reads asked for that a finished read started after
    this.failures = 0;
    this.timer = null;
    this.retryTimer = null;
    this.touched = false; // this editor changed marked text: read again once the change is on the server
    this.buttons = new Set();
    this.errorEl = h("p.form-error.small", {id: `${id}-error`, role: "alert", hidden: true});
    this.statusEl = h("p.muted.small", {id: `${id}-count`, role: "status"});
    this.titleEl = h("h2", {id: `${id}-title`}, label);
    this.el = h(`dialog.members-dialog.${id}-dialog`, {id: `${id}-dialog`, "aria-labelledby": `${id}-title`},
      h("div.dialog-head", null, this.titleEl,
        h("button.icon-btn", {type: "button", "aria-label": "Close", onclick: () => this.close()}, "×")),
      h("p.muted.small", null, intro), ...body);
    this.el.addEventListener("close", () => {
      if (this.opener && document.contains(this.opener)) this.opener.focus();
    });
    document.body.appendChild(this.el);
  }

  setCanWrite(canWrite) {
    this.canWrite = canWrite;
    this.render();
  }

  base() {
    return `/api/stories/${encodeURIComponent(this.slug)}/documents/${encodeURIComponent(this.name)}/${this.resource}`;
  }

  // --- the document -------------------------------------------------------------------------

  /** The document panel opened `name` in `editor` (null, null when it closed one). */
  attach(editor, name) {
    this.editor = editor;
    this.name = editor ? name : null;
    this.list = [];
    this.pending = null;
    this.touched = false;
    this.failures = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.reset();
    this.render();
    if (editor) this.load();
  }

  /** What a subclass forgets when the document changes. */
  reset() {}

  scheduleLoad() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load();
    }, REFETCH_MS);
  }

  /** Reads the list again. Resolves once a read that started after this call has finished (or
   * failed: it is then tried again later), or at once without a document. */
  async load() {
    const wanted = ++this.asked;
    while (this.editor && this.covered < wanted) {
      if (!this.loading) this.loading = this.read();
      await this.loading;
    }
  }

  /** One read: it covers every ask made before it started. */
  async read() {
    const name = this.name;
    const covers = this.asked;
    try {
      const reply = await api("GET", this.base());
      if (name !== this.name || !this.editor) return;
      this.covered = Math.max(this.covered, covers);
      this.failures = 0;
      this.list = reply.results || [];
      this.received(this.list, reply.revision);
      if (this.loadFailed) this.showError(null); // a decision's error stays until the next decision
      this.loadFailed = false;
      this.place();
    } catch (error) {
      if (name !== this.name) return;
      this.covered = Math.max(this.covered, covers); // the callers go on; the retry reads again
      this.loadFailed = true;
      this.showError(error);
      this.retry();
    } finally {
      this.loading = null;
      this.render();
    }
  }

  /** Tries a failed read again, later each time, while the same document is open. */
  retry() {
    if (this.retryTimer) return;
    const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    const name = this.name;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.editor && this.name === name && this.loadFailed) this.load();
    }, delay);
  }

  /** A read arrived (the whole list, at server `revision`): keep in this.pending what to place. */
  received(list, revision) {
    this.pending = {revision, items: list};
  }

  editorUpdated() {
    if (this.pending) queueMicrotask(() => this.place());
    if (this.touched && this.editor && !sendableUpdates(this.editor.view.state).length) {
      this.touched = false;
      this.scheduleLoad();
    }
  }

  /** Places what was read at `pending.revision` in the editor once it has that revision: mapped
   * through the changes received since, then through our own unconfirmed ones. */
  place() {
    const pending = this.pending;
    const editor = this.editor;
    if (!pending || !editor) return;
    const maps = changesSince(editor, pending.revision);
    if (maps === null) return; // its changes are on their way
    this.pending = null;
    if (maps === false) {
      this.scheduleLoad(); // too far behind to map: read again, at a revision close to ours
      return;
    }
    this.placeItems(maps, pending);
  }

  /** Dispatches the marks of `pending`, mapped through `maps`. */
  placeItems() {}

  // --- the head action and the dialog -------------------------------------------------------

  /** The number in the head button. */
  count() {
    return this.list.length;
  }

  button() {
    const button = h("button.btn.ghost.sm", {type: "button", id: `doc-${this.resource}`, title: this.buttonTitle,
      onclick: (e) => this.open(e.currentTarget)});
    for (const b of [...this.buttons]) if (!document.contains(b)) this.buttons.delete(b);
    this.buttons.add(button);
    this.renderButton(button);
    return button;
  }

  renderButton(button) {
    const n = this.count();
    button.textContent = `${this.label} (${n})`;
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

  /** The head buttons and the title; a subclass draws the rest of the dialog while it is open. */
  render() {
    for (const b of this.buttons) this.renderButton(b);
    this.titleEl.textContent = this.name ? `${this.label} on ${this.name}` : this.label;
  }

  /** Sends a decision (`request`: () => a promise), says its error, then reads the list again (a
   * read that starts after it). `button` is disabled meanwhile. Returns the request's answer. */
  async act(request, button = null) {
    if (button) button.disabled = true;
    let reply = null;
    try {
      reply = await request();
      this.showError(null);
    } catch (error) {
      this.showError(error);
    } finally {
      if (button) button.disabled = false;
      await this.load();
    }
    return reply;
  }
}
