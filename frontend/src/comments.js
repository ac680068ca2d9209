// Comments in the room (comments/ on the server): threads of comments on a passage of a document,
// highlighted in the text, shown as cards in a margin beside it (wide screens) and listed in a dialog.
//
//   const comments = new CommentsPanel({slug, canWrite, me});
//   commentMarks(comments)          // the editor extension: each open thread's passage highlighted
//   comments.attach(editor, name)   // the document panel opened `name` (null when it closed one);
//                                   // the margin goes in beside its editor (#comment-margin)
//   comments.button()               // the "Comments (N)" head action
//   comments.onEvent(event, data)   // a comment.* story event: the marks and the list follow
//   comments.load()                 // read them again (after a reconnect)
//
// In the text: the passage of each unresolved thread whose text still exists is marked
// (.cm-comment, data-thread), its title saying who opened it and what they wrote. As suggestions.js
// does (PassagePanel, passages.js), the marks are a StateField of decorations mapped through every
// transaction and placed once the editor has the revision the server read them at (changesSince,
// mapRange); a change from someone else touching a marked passage, or a comment event, reads the
// list again (the server re-anchors the threads on every read, and orphans a thread whose text was
// all deleted).
//
// The margin (see "the margin" below): a card a thread level with its passage's line, pushed so
// that none overlap, following the text as it scrolls and changes; the caret in a highlight makes
// its card the active one (and the highlight .cm-comment-active); a card's passage selects it.
// Below MARGIN_MEDIA the room shows one pane at a time and the margin folds away (base.css).
//
// Writing (opening a thread on the selection, replying, resolving and reopening) is for people who
// write the story; readers see the marks and the threads. The selection is in UTF-16 units of the
// editor's text; the REST API counts characters (code points), so each end is converted by counting
// the code points of the text before it, once this editor's own changes have reached the server.
// Everything is built from text nodes; nothing uses innerHTML.

import {sendableUpdates} from "@codemirror/collab";
import {EditorSelection, StateEffect, StateField, Transaction} from "@codemirror/state";
import {Decoration, EditorView} from "@codemirror/view";
import {mapRange, PassagePanel, snippet, touchesMarks} from "./passages.js";
import {api, clear, h, labelled} from "./ui.js";

const CONFIRM_MS = 10000; // how long "Comment" waits for this editor's own changes to reach the server
const CARD_GAP = 8; // px between two cards in the margin
const MARGIN_MEDIA = "(min-width: 1000px)"; // below it the room shows one pane at a time: no margin

const setThreads = StateEffect.define();
const setActive = StateEffect.define();

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


function markFor(thread, title, active) {
  return Decoration.mark({class: active ? "cm-comment cm-comment-active" : "cm-comment",
    attributes: {title, "data-thread": String(thread)}});
}

function buildDecorations(items, length, active) {
  const ranges = [];
  for (const {thread, from: rawFrom, to: rawTo} of items) {
    const from = Math.max(0, Math.min(rawFrom, length));
    const to = Math.max(from, Math.min(rawTo, length));
    if (to > from) ranges.push(markFor(thread.id, describe(thread), thread.id === active).range(from, to));
  }
  return Decoration.set(ranges, true);
}

/** The same marks, the active thread's (the one whose card is active in the margin) set apart. */
function restyle(deco, active) {
  const ranges = [];
  for (const it = deco.iter(); it.value; it.next()) {
    const {title, "data-thread": id} = it.value.spec.attributes;
    ranges.push(markFor(id, title, Number(id) === active).range(it.from, it.to));
  }
  return Decoration.set(ranges, true);
}

/** The editor extension: `store`'s open threads highlighted in the text. */
export function commentMarks(store) {
  const field = StateField.define({
    create: () => ({deco: Decoration.none, active: null}),
    update(value, tr) {
      let {deco, active} = value;
      if (tr.docChanged) {
        if (touchesMarks(deco, tr)) {
          if (tr.annotation(Transaction.remote)) store.scheduleLoad();
          else store.touched = true;
        }
        deco = deco.map(tr.changes);
      }
      for (const effect of tr.effects) {
        if (effect.is(setThreads)) deco = buildDecorations(effect.value, tr.state.doc.length, active);
        if (effect.is(setActive) && effect.value !== active) {
          active = effect.value;
          deco = restyle(deco, active);
        }
      }
      return deco === value.deco && active === value.active ? value : {deco, active};
    },
    provide: (f) => EditorView.decorations.from(f, (value) => value.deco),
  });
  store.marksField = field;
  const theme = EditorView.baseTheme({
    ".cm-comment": {background: "#fff1b8", color: "#3d2f00", borderBottom: "2px solid #c99a00"},
    ".cm-comment-active": {background: "#ffd966", borderBottomColor: "#7a5c00"},
  });
  return [field, theme, EditorView.updateListener.of((update) => {
    if (update.transactions.length) store.editorUpdated(update);
  })];
}

export class CommentsPanel extends PassagePanel {
  constructor({slug, canWrite, me}) {
    super({slug, canWrite, me, resource: "comments", id: "comment", label: "Comments",
      buttonTitle: "Comments: threads on passages of this document",
      intro: "Threads of comments on passages of this document, in the order of the text; " +
        "open ones are highlighted in it. People who write the story comment, reply and resolve."});
    this.details = new Map(); // thread id -> every comment of it, read when the dialog shows it
    this.fetching = new Set();
    this.selection = null; // [from, to] in the editor's text (UTF-16) for the new thread, mapped as it changes
    this.confirmWaiters = [];
    this.items = new Map(); // thread id -> {el, body, replyBox} (kept across renders: a reply being typed stays)
    this.listEl = h("ol.comment-threads", {id: "comment-list", style: {"list-style": "none", padding: "0", margin: "0"}});
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
    this.el.append(this.writeEl, this.errorEl, this.statusEl, this.listEl);
    this.initMargin();
  }

  /** People who write the story comment (agents too, over REST and MCP; they do not use the browser). */
  get canComment() {
    return Boolean(this.canWrite) && this.me.kind !== "agent";
  }

  setCanWrite(canWrite) {
    this.canWrite = canWrite;
    this.items.clear(); // rebuilt with or without their controls
    clear(this.listEl);
    this.cards.clear();
    clear(this.cardsEl);
    this.render();
  }

  // --- the document -------------------------------------------------------------------------

  reset() {
    this.details.clear();
    this.items.clear();
    clear(this.listEl);
    this.cancelNew();
    this.mountMargin();
  }

  onEvent(event, data) {
    if (!data || !this.editor || data.document !== this.name) return;
    if (event === "comment.created" && data.thread != null) this.details.delete(data.thread);
    if (event === "comment.thread.created" || event === "comment.thread.updated" || event === "comment.created") {
      this.scheduleLoad();
    }
  }

  received(list, revision) {
    this.pending = {revision, threads: list.filter(marked), all: list};
  }

  editorUpdated(update) {
    if (update && update.docChanged) {
      if (this.selection) this.selection = mapRange([update.changes], ...this.selection);
      for (const [id, range] of this.anchors) this.anchors.set(id, mapRange([update.changes], ...range));
    }
    super.editorUpdated();
    if (this.confirmWaiters.length && this.editor && !sendableUpdates(this.editor.view.state).length) {
      for (const resolve of this.confirmWaiters.splice(0)) resolve(true);
    }
    if (update && update.selectionSet) this.followSelection(update.state);
    if (update && (update.docChanged || update.geometryChanged || update.viewportChanged || update.heightChanged)) {
      this.scheduleLayout();
    }
  }

  /** The threads read at `pending.revision`, mapped through `maps` (changesSince) into marks; every
   * thread's passage (orphaned ones where their text was) kept for the margin. */
  placeItems(maps, pending) {
    const items = pending.threads.map((thread) => {
      const [from, to] = mapRange(maps, thread.anchor_utf16.from, thread.anchor_utf16.to);
      return {thread, from, to};
    });
    this.anchors = new Map((pending.all || pending.threads).map((thread) => {
      const a = thread.anchor_utf16 || {from: 0, to: 0};
      return [thread.id, mapRange(maps, a.from, a.to)];
    }));
    this.editor.view.dispatch({effects: setThreads.of(items)});
    if (this.margin) this.scheduleLayout();
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
    await this.act(async () => {
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
    }, submit);
  }

  // --- the head action and the dialog -------------------------------------------------------

  unresolved() {
    return this.list.filter((t) => !t.resolved);
  }

  count() {
    return this.unresolved().length;
  }

  /** The threads in the order of the text (orphaned ones where their text was), then oldest first. */
  ordered() {
    const at = (t) => (t.anchor ? t.anchor.from : (t.anchor_utf16 || {}).from || 0);
    return [...this.list].sort((a, b) => at(a) - at(b) || a.id - b.id);
  }

  render() {
    super.render();
    this.writeEl.hidden = !this.canComment || !this.editor;
    this.renderMargin();
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
    if (item.resolveButton) labelResolve(item.resolveButton, t);
    const comments = this.details.get(t.id) || (t.first_comment ? [t.first_comment] : []);
    clear(item.body).append(
      h("div.small", null, h("strong", null, `#${t.id}`), " ", h("span.pill.small.comment-status", null, statusText(t))),
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

  reply(id, box, button) {
    const body = box.value.trim();
    if (!body) {
      box.focus();
      return Promise.resolve();
    }
    return this.act(async () => {
      await api("POST", `${this.base()}/${id}/replies`, {body});
      box.value = "";
      this.details.delete(id);
    }, button);
  }

  resolve(id, button) {
    const t = this.list.find((x) => x.id === id);
    if (!t) return Promise.resolve();
    return this.act(() => api("POST", `${this.base()}/${id}/resolve`, {resolved: !t.resolved, version: t.version}),
      button);
  }

  // --- the margin -----------------------------------------------------------------------------
  // A column beside the text (wide screens only: below MARGIN_MEDIA the dialog is the way in) with a
  // card a thread, each level with its passage's line and pushed down so that none overlap; the
  // active thread's card (the caret is in its passage, or its card was used) stands exactly level
  // with it and the others make room around it. The cards move as the text scrolls and changes.

  initMargin() {
    this.anchors = new Map(); // thread id -> [from, to] in the editor's text, mapped as it changes
    this.cards = new Map(); // thread id -> {el, body, form, box, send, resolveButton}
    this.active = null;
    this.layoutFrame = 0;
    this.cardsEl = h("div.comment-margin-cards");
    this.margin = h("section.comment-margin", {id: "comment-margin", "aria-label": "Comments in the margin", hidden: true},
      this.cardsEl);
    this.media = window.matchMedia ? window.matchMedia(MARGIN_MEDIA) : null;
    const relayout = () => this.scheduleLayout();
    window.addEventListener("resize", relayout);
    if (this.media && this.media.addEventListener) this.media.addEventListener("change", relayout);
    this.onScroll = relayout;
  }

  /** Puts the margin beside the open document's editor (the document panel clears its host on every
   * open, so it goes back in each time). */
  mountMargin() {
    if (this.scroller) this.scroller.removeEventListener("scroll", this.onScroll);
    this.scroller = null;
    this.anchors = new Map();
    this.active = null;
    this.cards.clear();
    clear(this.cardsEl);
    const host = this.editor && this.editor.view.dom.parentElement;
    if (!host) {
      this.margin.remove();
      return;
    }
    host.classList.add("has-comment-margin");
    host.append(this.margin);
    this.scroller = this.editor.view.scrollDOM;
    this.scroller.addEventListener("scroll", this.onScroll, {passive: true});
  }

  /** The margin's cards: the unresolved threads in the order of the text, and the resolved ones
   * used from the margin since (they fold to a line with "Reopen"). */
  renderMargin() {
    if (!this.margin) return;
    const threads = this.ordered().filter((t) => !t.resolved || this.cards.has(t.id));
    const ids = new Set(threads.map((t) => t.id));
    for (const [id, card] of [...this.cards]) {
      if (!ids.has(id)) {
        card.el.remove();
        this.cards.delete(id);
      }
    }
    const els = threads.map((t) => this.renderCard(t));
    const current = [...this.cardsEl.children];
    if (current.length !== els.length || current.some((el, i) => el !== els[i])) {
      for (const el of els) this.cardsEl.appendChild(el);
    }
    this.margin.hidden = !this.editor || !els.length;
    this.scheduleLayout();
  }

  renderCard(t) {
    let card = this.cards.get(t.id);
    if (!card) {
      const body = h("div.comment-card-body");
      const el = h("article.comment-card", {dataset: {id: String(t.id)}, tabindex: "-1",
        "aria-label": `Thread ${t.id}`, onclick: (e) => {
          if (!e.target.closest("button, textarea, a, form")) this.selectPassage(t.id);
        }, onfocusin: () => this.reveal(t.id)}, body);
      card = {el, body};
      if (this.canComment) {
        const box = h("textarea.comment-reply-body", {rows: 2, maxlength: 5000, required: true});
        const send = h("button.btn.sm", {type: "submit", dataset: {action: "send-reply"}}, "Send");
        const form = h("form.comment-card-reply", {hidden: true,
          onsubmit: (e) => { e.preventDefault(); this.reply(t.id, box, send).then(() => this.closeReply(t.id)); }},
        labelled(`Reply to thread ${t.id}`, box),
        h("div.comment-card-actions", null, send, h("button.btn.ghost.sm", {type: "button",
          onclick: () => this.closeReply(t.id, true)}, "Cancel")));
        const replyButton = h("button.btn.ghost.sm", {type: "button", dataset: {action: "reply"},
          "aria-expanded": "false", onclick: () => this.openReply(t.id)}, "Reply");
        const resolveButton = h("button.btn.ghost.sm", {type: "button", dataset: {action: "resolve"},
          onclick: (e) => this.resolve(t.id, e.currentTarget)});
        el.append(h("div.comment-card-actions", null, replyButton, resolveButton), form);
        Object.assign(card, {form, box, send, replyButton, resolveButton});
      }
      this.cards.set(t.id, card);
    }
    const state = t.resolved ? "resolved" : t.orphaned ? "orphaned" : "open";
    card.el.dataset.state = state;
    card.el.classList.toggle("active", t.id === this.active);
    if (card.resolveButton) labelResolve(card.resolveButton, t);
    if (card.replyButton) card.replyButton.hidden = t.resolved;
    if (t.resolved && card.form) card.form.hidden = true;
    const first = t.first_comment;
    const replies = Math.max(0, (t.comment_count || (first ? 1 : 0)) - 1);
    const quote = t.orphaned
      ? h("span.comment-card-quote", {title: "Its text was deleted"}, snippet(t.quote))
      : h("button.comment-card-quote", {type: "button", title: "Select this passage in the text",
        onclick: () => this.selectPassage(t.id)}, snippet(t.quote));
    clear(card.body).append(
      h("div.comment-card-head", null,
        h("strong.comment-card-author", null, first ? who(first.author, first.author_kind) : who(t.created_by, t.created_by_kind)),
        state !== "open" ? h("span.pill.small.comment-status", null, statusText(t)) : null),
      quote,
      first && !t.resolved ? h("p.comment-card-first", null, first.body) : null,
      t.resolved ? null : h("p.comment-card-replies.muted.small", null,
        replies ? `${replies} ${replies === 1 ? "reply" : "replies"}` : "No replies"));
    return card.el;
  }

  openReply(id) {
    const card = this.cards.get(id);
    if (!card || !card.form) return;
    this.activate(id);
    card.form.hidden = false;
    card.replyButton.setAttribute("aria-expanded", "true");
    card.box.focus();
    this.scheduleLayout();
  }

  closeReply(id, focus = false) {
    const card = this.cards.get(id);
    if (!card || !card.form) return;
    if (card.box.value.trim()) return; // a reply not sent (an error) stays
    card.form.hidden = true;
    card.replyButton.setAttribute("aria-expanded", "false");
    if (focus) card.replyButton.focus();
    this.scheduleLayout();
  }

  /** Makes `id` the active thread: its card set apart and level with its passage, its highlight too. */
  activate(id) {
    if (id === this.active) return;
    this.active = id;
    for (const [cardId, card] of this.cards) card.el.classList.toggle("active", cardId === id);
    for (const [cardId, card] of this.cards) {
      if (cardId === id) card.el.setAttribute("aria-current", "true");
      else card.el.removeAttribute("aria-current");
    }
    if (this.editor) this.editor.view.dispatch({effects: setActive.of(id)});
    this.scheduleLayout();
  }

  /** A card used: its passage selected in the text (and shown), its thread active. */
  selectPassage(id) {
    const range = this.anchors.get(id);
    const t = this.list.find((x) => x.id === id);
    if (!range || !this.editor || !t || t.orphaned) {
      this.activate(id);
      return;
    }
    const view = this.editor.view;
    const length = view.state.doc.length;
    const [from, to] = [Math.min(range[0], length), Math.min(range[1], length)];
    this.active = null; // set again below, with the highlight
    this.activate(id);
    view.dispatch({selection: EditorSelection.single(from, to), effects: EditorView.scrollIntoView(from, {y: "center"})});
    view.focus();
  }

  /** A card got the focus (Tab): when it stands outside the margin's height, the text scrolls to
   * its passage, and the card with it. */
  reveal(id) {
    const card = this.cards.get(id);
    const range = this.anchors.get(id);
    if (!card || !range || !this.editor) return;
    const box = card.el.getBoundingClientRect();
    const frame = this.margin.getBoundingClientRect();
    if (box.top >= frame.top && box.bottom <= frame.bottom) return;
    const pos = Math.min(range[0], this.editor.view.state.doc.length);
    this.editor.view.dispatch({effects: EditorView.scrollIntoView(pos, {y: "start", yMargin: 20})});
  }

  /** The caret moved: the thread whose highlighted passage it is in becomes the active one. */
  followSelection(state) {
    if (!this.marksField) return;
    const {deco} = state.field(this.marksField, false) || {};
    if (!deco) return;
    const head = state.selection.main.head;
    let found = null;
    deco.between(head, head, (from, to, value) => {
      if (from <= head && head <= to) found = Number(value.spec.attributes["data-thread"]);
    });
    if (found !== null && found !== this.active) queueMicrotask(() => this.activate(found));
  }

  scheduleLayout() {
    if (!this.margin || this.layoutFrame || typeof requestAnimationFrame === "undefined") return;
    this.layoutFrame = requestAnimationFrame(() => {
      this.layoutFrame = 0;
      this.layout();
    });
  }

  /** Each card level with its passage's line, pushed down (or, above the active card, up) so that
   * none overlap. Cards of lines out of sight are cut off; focusing one scrolls to its passage. */
  layout() {
    const editor = this.editor;
    if (!editor || this.margin.hidden || !this.margin.isConnected || !this.margin.offsetParent) return;
    if (this.media && !this.media.matches) return;
    const view = editor.view;
    const length = view.state.doc.length;
    const top = this.margin.getBoundingClientRect().top;
    const docTop = view.documentTop;
    const cards = [];
    const byId = new Map(this.list.map((t) => [t.id, t]));
    for (const el of this.cardsEl.children) {
      const id = Number(el.dataset.id);
      const t = byId.get(id);
      const range = this.anchors.get(id) || (t && t.anchor_utf16 ? [t.anchor_utf16.from, t.anchor_utf16.to] : [0, 0]);
      const pos = Math.max(0, Math.min(range[0], length));
      cards.push({id, el, want: view.lineBlockAt(pos).top + docTop - top, height: el.offsetHeight});
    }
    cards.sort((a, b) => a.want - b.want || a.id - b.id);
    const at = cards.findIndex((c) => c.id === this.active);
    const start = at >= 0 ? at : 0;
    let next = -Infinity;
    for (let i = start; i < cards.length; i++) {
      cards[i].y = Math.max(cards[i].want, next);
      next = cards[i].y + cards[i].height + CARD_GAP;
    }
    let limit = at >= 0 ? cards[at].y - CARD_GAP : Infinity;
    for (let i = start - 1; i >= 0; i--) {
      cards[i].y = Math.min(cards[i].want, limit - cards[i].height);
      limit = cards[i].y - CARD_GAP;
    }
    // A card whose line shows but which would stand past the bottom moves up (and those above it
    // with it, where they would overlap), so that it can be read; cards of lines below stay below.
    const height = this.margin.clientHeight;
    limit = height;
    for (let i = cards.length - 1; i >= 0; i--) {
      if (cards[i].want >= height) continue;
      cards[i].y = Math.min(cards[i].y, limit - cards[i].height);
      limit = cards[i].y - CARD_GAP;
    }
    for (const c of cards) {
      c.el.style.transform = `translateY(${Math.round(c.y)}px)`;
      c.el.dataset.top = String(Math.round(c.y));
    }
  }
}

function statusText(t) {
  return [
    t.resolved ? `resolved by @${t.resolved_by}` : "open",
    t.orphaned ? "orphaned: its text was deleted" : null,
  ].filter(Boolean).join(", ");
}

function labelResolve(button, t) {
  button.textContent = t.resolved ? "Reopen" : "Resolve";
  button.setAttribute("aria-label", `${t.resolved ? "Reopen" : "Resolve"} thread ${t.id}`);
  button.dataset.action = t.resolved ? "reopen" : "resolve";
}
