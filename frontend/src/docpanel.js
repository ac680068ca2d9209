// The co-edited document beside the feed: a switcher over the story's documents, fork and new,
// the sync status, and the CodeMirror editor from collab.js (others' named cursors included).

import {EditorView, keymap, placeholder} from "@codemirror/view";
import {defaultKeymap, history, historyKeymap} from "@codemirror/commands";
import {findDrafts, forgetDraft, openCollabEditor} from "./collab.js";
import {describeError} from "./compose.js";
import {api, clear, h, icon, labelled, NAME_PATTERN, NAME_RE, NAME_RULE, toast} from "./ui.js";

const STATUS_TEXT = {
  loading: "Loading…",
  synced: "Saved",
  sending: "Saving…",
  offline: "Offline: edits wait",
  readonly: "Read only",
  error: "Not saved",
};

const editorTheme = EditorView.theme({
  "&": {height: "100%", fontSize: "15px"},
  ".cm-scroller": {fontFamily: "var(--font-serif)", lineHeight: "1.65", padding: "8px 0"},
  ".cm-content": {padding: "8px 18px 40px", caretColor: "var(--accent)"},
  "&.cm-focused": {outline: "none"},
  ".cm-line": {padding: "0"},
  ".cm-placeholder": {color: "var(--muted)"},
});

export class DocumentPanel {
  constructor({socket, slug, head, host, documents, canWrite, extensions = [], headActions = null, onEditor = null}) {
    this.socket = socket;
    this.onEditor = onEditor; // (editor, name) when a document opens, (null, null) when it closes (suggestions, comments)
    this.pageExtensions = extensions; // the room's own (the story bible's marks)
    this.headActions = headActions; // () => the room's own buttons in the head (the story bible)
    this.slug = slug;
    this.head = head;
    this.host = host;
    this.canWrite = canWrite;
    this.documents = new Map(documents.map((d) => [d.name, d]));
    this.editor = null;
    this.name = null;
    this.opening = null;
    this.statusEl = h("span.doc-status", {id: "doc-status", dataset: {status: "loading"}}, STATUS_TEXT.loading);
    // Every save problem and every kept draft is said here, in words, where the writer looks.
    this.banner = h("div.doc-banner", {id: "doc-banner", role: "alert", hidden: true});
    this.notice = null; // a one-off message (a refused paste) shown until dismissed
    window.addEventListener("beforeunload", (event) => {
      if (!this.editor || !this.editor.sync.hasUnsaved()) return;
      this.editor.sync.saveDraftNow();
      event.preventDefault();
      event.returnValue = ""; // the browser asks "Leave site? Changes you made may not be saved."
    });
    window.addEventListener("pagehide", () => {
      if (this.editor) this.editor.sync.saveDraftNow();
    });
    this.revisionEl = h("span.doc-rev.muted.small");
    this.select = h("select.doc-select", {id: "doc-select", "aria-label": "Document",
      onchange: () => this.open(this.select.value)});
    this.renderHead();
  }

  renderHead() {
    clear(this.head);
    this.renderOptions();
    const actions = h("div.doc-actions");
    if (this.headActions) actions.append(...this.headActions());
    actions.append(this.exportMenu());
    if (this.canWrite) {
      actions.append(
        h("button.btn.ghost.sm", {type: "button", id: "fork-doc", title: "Fork this document at its current revision",
          onclick: () => this.showCreate(true)}, "Fork"),
        h("button.btn.ghost.sm", {type: "button", id: "new-doc", title: "A new, empty document",
          onclick: () => this.showCreate(false)}, "New"));
    }
    this.formHost = h("div.doc-form-host");
    this.head.append(h("div.doc-head-row", null, h("span.doc-icon", null, icon("doc")), this.select,
      h("span.doc-meta", null, this.statusEl, this.revisionEl), actions), this.formHost, this.banner);
  }

  /** Export: the open document or the whole story as a file (REST, docs/export.md). Plain links:
   * the browser downloads with the session; they follow the open document (updateExportLinks). */
  exportMenu() {
    const menu = h("details.doc-export", {id: "doc-export", style: {position: "relative"},
      // It closes when the focus leaves it (a click elsewhere) and on Escape, as the panels do.
      onfocusout: (e) => { if (!menu.contains(e.relatedTarget)) menu.open = false; },
      onkeydown: (e) => {
        if (e.key === "Escape" && menu.open) {
          e.stopPropagation();
          menu.open = false;
          menu.querySelector("summary").focus();
        }
      }});
    const link = (scope, format, label) => h("a.doc-export-link", {download: "", dataset: {scope, format},
      style: {display: "block", padding: "4px 12px", "white-space": "nowrap"}, onclick: () => { menu.open = false; }},
    label);
    this.exportLinks = [
      link("doc", "md", "This document (Markdown)"), link("doc", "txt", "This document (plain text)"),
      link("doc", "epub", "This document (EPUB)"), link("book", "md", "The whole story (Markdown)"),
      link("book", "txt", "The whole story (plain text)"), link("book", "epub", "The whole story (EPUB)")];
    menu.append(
      h("summary.btn.ghost.sm", {title: "Download this document or the whole story"}, "Export"),
      h("div.doc-export-menu", {style: {position: "absolute", right: "0", top: "calc(100% + 4px)", "z-index": "5",
        background: "var(--surface)", border: "1px solid var(--line)", "border-radius": "8px", padding: "4px 0",
        "box-shadow": "0 6px 18px rgba(20,22,40,.12)", "font-size": "13px"}}, this.exportLinks));
    this.updateExportLinks();
    return menu;
  }

  updateExportLinks() {
    const story = `/api/stories/${encodeURIComponent(this.slug)}`;
    const doc = `${story}/documents/${encodeURIComponent(this.name || "main")}/export`;
    for (const a of this.exportLinks || []) {
      a.href = `${a.dataset.scope === "book" ? `${story}/export/book` : doc}?format=${a.dataset.format}`;
    }
  }

  renderOptions() {
    clear(this.select);
    for (const d of this.documents.values()) {
      // The option says "(fork)"; its title, and the select's when chosen, say of what and where.
      const full = d.forked_from ? `${d.name}, a fork of ${d.forked_from} at r${d.forked_at_revision ?? 0}` : d.name;
      this.select.append(h("option", {value: d.name, title: d.title ? `${full}: ${d.title}` : full},
        d.forked_from ? `${d.name} (fork)` : d.name));
    }
    if (this.name) this.select.value = this.name;
    const chosen = this.select.selectedOptions[0];
    this.select.title = chosen ? chosen.title : "";
  }

  add(doc) {
    if (!doc || !doc.name) return;
    this.documents.set(doc.name, {revision: 0, ...this.documents.get(doc.name), ...doc});
    this.renderOptions();
  }

  async open(name) {
    if (this.name === name && this.editor) return;
    const token = Symbol(name);
    this.opening = token;
    if (this.editor) {
      this.editor.destroy();
      this.editor = null;
      if (this.onEditor) this.onEditor(null, null);
    }
    this.name = name;
    this.updateExportLinks();
    this.select.value = name;
    this.select.title = this.select.selectedOptions[0] ? this.select.selectedOptions[0].title : "";
    clear(this.host);
    this.setStatus("loading");
    const extensions = [
      EditorView.lineWrapping,
      history(),
      keymap.of([...defaultKeymap, ...historyKeymap]),
      placeholder(this.canWrite ? "Start writing the story…" : "Nothing written yet."),
      // Prose: named for screen readers, and spell-checked like any writing tool.
      EditorView.contentAttributes.of({"aria-label": `Story text: ${name}`, spellcheck: "true", autocorrect: "on",
        autocapitalize: "sentences"}),
      editorTheme,
      this.pageExtensions,
      EditorView.updateListener.of((update) => {
        if (update.docChanged || update.transactions.length) this.showRevision();
      }),
    ];
    try {
      const editor = await openCollabEditor({
        socket: this.socket,
        topic: `doc:${this.slug}/${name}`,
        parent: this.host,
        extensions,
        readOnly: !this.canWrite,
        draftKey: "mythline.draft",
        onStatus: (status, detail) => this.setStatus(status, detail),
        onRefuse: (message) => this.showNotice(message),
      });
      if (this.opening !== token) {
        editor.destroy();
        return;
      }
      this.editor = editor;
      this.host.dataset.doc = name;
      this.setStatus(editor.sync.status === "loading" ? "synced" : editor.sync.status);
      this.showRevision();
      window.mythlineEditor = editor; // for the console and the browser tests
      if (this.onEditor) this.onEditor(editor, name);
      if (this.canWrite) this.offerDrafts();
    } catch (error) {
      if (this.opening !== token) return;
      this.setStatus("error", describeError(error));
      this.host.append(h("p.muted.doc-error", null, `This document cannot be opened: ${describeError(error)}`));
    }
  }

  /** Rights changed while the page is open: reopen the document editable or read-only (edits
   * not saved yet stay in this browser's draft). */
  setCanWrite(canWrite) {
    if (canWrite === this.canWrite) return;
    this.canWrite = canWrite;
    this.renderHead();
    const name = this.name;
    if (this.editor) {
      this.editor.destroy();
      this.editor = null;
      if (this.onEditor) this.onEditor(null, null);
    }
    this.name = null;
    if (name) this.open(name);
  }

  setStatus(status, detail = null) {
    if (!this.canWrite && (status === "synced" || status === "sending")) status = "readonly";
    this.statusEl.dataset.status = status;
    this.statusEl.textContent = STATUS_TEXT[status] || status;
    this.statusEl.title = detail || "";
    this.status = status;
    this.detail = detail;
    this.showRevision();
    this.renderBanner();
  }

  /** The banner says what is wrong with saving, if anything, in words; or offers kept drafts. */
  renderBanner() {
    if (!this.banner) return;
    if (this.drafts && this.drafts.length) return; // the draft offer stays until answered
    clear(this.banner);
    let text = null;
    let kind = "warn";
    if (this.notice) {
      text = this.notice;
    } else if (this.status === "offline") {
      text = "You are offline. Your edits are kept in this browser and saved when the connection is back.";
    } else if (this.status === "error") {
      text = `Not saved yet: ${this.detail || "the server refused a change."}`;
      kind = "error";
    } else if (this.status === "readonly" && this.canWrite) {
      text = `You can no longer edit this document${this.detail ? `: ${this.detail}` : "."}`;
    }
    this.banner.hidden = !text;
    this.banner.dataset.kind = kind;
    if (!text) return;
    this.banner.append(h("span.doc-banner-text", null, text));
    if (this.notice) {
      this.banner.append(h("button.btn.ghost.sm", {type: "button", onclick: () => this.showNotice(null)}, "Dismiss"));
    }
  }

  showNotice(message) {
    this.notice = message;
    this.renderBanner();
  }

  /** Drafts kept in this browser from an earlier page (a reload, a crash) that never reached the
   * server: offered back, to restore (rebased on what was written since) or discard. */
  offerDrafts() {
    const editor = this.editor;
    const base = editor.sync.draftBase();
    const mine = `${base}.${editor.sync.clientID}`;
    this.drafts = findDrafts(base).filter((d) => d.key !== mine);
    if (!this.drafts.length) return;
    const draft = this.drafts[0];
    const when = new Date(draft.savedAt).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
    clear(this.banner);
    this.banner.hidden = false;
    this.banner.dataset.kind = "draft";
    const done = () => {
      for (const d of this.drafts) forgetDraft(d);
      this.drafts = [];
      this.renderBanner();
    };
    this.banner.append(
      h("span.doc-banner-text", null,
        `Edits from ${when} were not saved to the server; they are kept in this browser.`),
      h("button.btn.sm", {type: "button", id: "draft-restore", onclick: async () => {
        try {
          const chars = await editor.sync.restoreDraft(draft);
          done();
          toast(`Restored ${chars.toLocaleString()} characters; saving them now.`);
        } catch (err) {
          this.banner.append(h("span.form-error.small", null, `Could not restore: ${describeError(err)}`));
        }
      }}, "Restore"),
      h("button.btn.ghost.sm", {type: "button", id: "draft-discard", onclick: done}, "Discard"));
  }

  showRevision() {
    if (!this.editor) {
      this.revisionEl.textContent = "";
      return;
    }
    const rev = this.editor.sync.syncedVersion;
    const chars = this.editor.view.state.doc.length;
    this.revisionEl.textContent = `r${rev} · ${chars.toLocaleString()} chars`;
  }

  showCreate(fork) {
    clear(this.formHost);
    const current = this.name;
    const revision = this.editor ? this.editor.sync.syncedVersion : undefined;
    const name = h("input", {name: "name", placeholder: fork ? `${current}-alt` : "name, e.g. scene-4-draft", required: true,
      autocomplete: "off", pattern: NAME_PATTERN, title: NAME_RULE});
    const title = h("input", {name: "title", placeholder: "optional", autocomplete: "off"});
    const error = h("div.form-error.small", {hidden: true});
    const form = h("form.doc-form", {id: "doc-form", onsubmit: async (e) => {
      e.preventDefault();
      const body = {name: name.value.trim().toLowerCase()};
      if (!NAME_RE.test(body.name)) {
        error.textContent = NAME_RULE;
        error.hidden = false;
        name.focus();
        return;
      }
      if (title.value.trim()) body.title = title.value.trim();
      if (fork) Object.assign(body, {fork_of: current, at_revision: revision});
      try {
        const doc = await api("POST", `/api/stories/${this.slug}/documents`, body);
        this.add(doc);
        clear(this.formHost);
        toast(fork ? `Forked ${current} at r${revision} as ${doc.name}.` : `Created ${doc.name}.`);
        this.open(doc.name);
      } catch (err) {
        error.textContent = describeError(err);
        error.hidden = false;
      }
    }}, h("span.small.muted", null, fork ? `Fork “${current}” at r${revision}` : "New document"),
    labelled("Name", name), labelled("Title", title),
    h("button.btn.sm", {type: "submit"}, fork ? "Fork" : "Create"),
    h("button.btn.ghost.sm", {type: "button", onclick: () => clear(this.formHost)}, "Cancel"), error);
    this.formHost.append(form);
    name.focus();
  }
}
