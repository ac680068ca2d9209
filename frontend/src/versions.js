// Versions of the open document (versions/ on the server): named revisions, a readable comparison
// with the current text, and restoring an old revision, in a dialog opened from "Versions" in the
// document's head.
//
//   const versions = new VersionsDialog({slug, canWrite, current: () => ({name, revision, forkedFrom})});
//   versions.open(opener);         // a modal <dialog>: Esc closes it, focus returns to the opener
//   versions.onEvent(event, data); // a document.version.* story event: the list follows at once
//
// A restore is one ordinary change on the server: every open editor, this one included, receives
// it over its subscription like anyone's typing. The comparison is built from text nodes inside
// <ins> and <del> elements; nothing here uses innerHTML.

import {describeError} from "./compose.js";
import {api, clear, h, labelled, toast} from "./ui.js";

const KEEP = 160; // characters of unchanged text shown on each side of a change
const INS_STYLE = {background: "#d3f2da", color: "#0b3d17", "text-decoration": "underline", "border-radius": "3px"};
const DEL_STYLE = {background: "#fbdada", color: "#5c0b0b", "text-decoration": "line-through", "border-radius": "3px"};
const SR_ONLY = {position: "absolute", width: "1px", height: "1px", overflow: "hidden", clip: "rect(0 0 0 0)",
  "white-space": "nowrap"};

function plural(n, one, many) {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** The diff as DOM nodes: unchanged text (long runs shortened), <ins> and <del>, all text nodes. */
export function renderDiff(ops) {
  const out = [];
  ops.forEach((op, i) => {
    if (op.op === "insert") {
      out.push(h("ins", {style: INS_STYLE}, h("span", {style: SR_ONLY}, "[inserted: "), op.text,
        h("span", {style: SR_ONLY}, "]")));
    } else if (op.op === "delete") {
      out.push(h("del", {style: DEL_STYLE}, h("span", {style: SR_ONLY}, "[deleted: "), op.text,
        h("span", {style: SR_ONLY}, "]")));
    } else {
      const chars = [...op.text]; // by code point: an emoji is never cut in half
      const first = i === 0;
      const last = i === ops.length - 1;
      const head = first ? 0 : KEEP;
      const tail = last ? 0 : KEEP;
      if (chars.length <= head + tail + 40) {
        out.push(op.text);
      } else {
        const skipped = chars.length - head - tail;
        if (head) out.push(chars.slice(0, head).join(""));
        out.push(h("span.diff-skip.muted.small", {style: {display: "block", margin: "6px 0", "font-style": "italic"}},
          `… ${plural(skipped, "character", "characters")} unchanged …`));
        if (tail) out.push(chars.slice(chars.length - tail).join(""));
      }
    }
  });
  return out;
}

export class VersionsDialog {
  constructor({slug, canWrite, current}) {
    this.slug = slug;
    this.canWrite = canWrite;
    this.current = current; // () => {name, revision, forkedFrom} of the open document
    this.versions = [];
    this.docName = null;
    this.titleEl = h("h2", {id: "versions-title"}, "Versions");
    this.errorEl = h("p.form-error.small", {id: "versions-error", role: "alert", hidden: true});
    this.countEl = h("p.muted.small", {id: "versions-count", role: "status"});
    this.listEl = h("ul.versions-list", {id: "versions-list", style: {"list-style": "none", padding: "0", margin: "4px 0 12px"}});
    this.formHost = h("div", {id: "versions-form-host"});
    this.parentHost = h("div", {id: "versions-parent-host"});
    this.diffEl = h("section.versions-diff", {id: "versions-diff", "aria-label": "Comparison", hidden: true});
    this.el = h("dialog.bible-dialog.versions-dialog", {id: "versions-dialog", "aria-labelledby": "versions-title"},
      h("div.dialog-head", null, this.titleEl,
        h("button.icon-btn", {type: "button", "aria-label": "Close", onclick: () => this.close()}, "×")),
      h("p.muted.small", null, "Name a revision to come back to it: compare it with the current text, or restore it. " +
        "A restore is a new change; the history keeps every revision."),
      this.errorEl, this.formHost, this.parentHost, this.countEl, this.listEl, this.diffEl);
    this.el.addEventListener("close", () => {
      if (this.opener && document.contains(this.opener)) this.opener.focus();
    });
    document.body.appendChild(this.el);
  }

  setCanWrite(canWrite) {
    this.canWrite = canWrite;
    if (this.el.open) this.render();
  }

  async open(opener = document.activeElement) {
    this.opener = opener;
    const doc = this.current();
    if (doc.name !== this.docName) {
      this.versions = [];
      this.loaded = false;
      this.hideDiff();
    }
    this.docName = doc.name;
    if (!this.el.open) this.el.showModal();
    this.render();
    await this.load();
  }

  close() {
    if (this.el.open) this.el.close();
  }

  base() {
    return `/api/stories/${this.slug}/documents/${encodeURIComponent(this.docName)}`;
  }

  async load() {
    try {
      const out = [];
      let url = `${this.base()}/versions?limit=200`;
      while (url) {
        const page = await api("GET", url);
        out.push(...page.results);
        const next = page.next ? new URL(page.next, location.origin) : null;
        url = next ? next.pathname + next.search : null;
      }
      this.versions = out;
      this.loaded = true;
      this.showError(null);
    } catch (error) {
      this.showError(error);
    }
    this.renderList();
  }

  /** A `document.version.*` story event: the list of the shown document follows. */
  onEvent(event, data) {
    if (!data || data.document !== this.docName) return;
    if (event === "document.version.deleted") {
      this.versions = this.versions.filter((v) => v.id !== data.id);
    } else {
      this.versions = [...this.versions.filter((v) => v.id !== data.id), data]
        .sort((a, b) => b.revision - a.revision || b.id - a.id);
    }
    if (this.el.open) this.renderList();
  }

  showError(error) {
    this.errorEl.textContent = error ? describeError(error) : "";
    this.errorEl.hidden = !error;
  }

  render() {
    const doc = this.current();
    this.titleEl.textContent = `Versions of “${this.docName}”`;
    clear(this.formHost);
    if (this.canWrite) this.formHost.append(this.form(doc));
    clear(this.parentHost);
    if (doc.forkedFrom) {
      this.parentHost.append(h("button.btn.ghost.sm", {type: "button", id: "versions-compare-parent",
        onclick: () => this.compare({parent: true})}, `Compare with “${doc.forkedFrom}” (its parent)`));
      if (this.canWrite) {
        this.parentHost.append(" ", h("button.btn.ghost.sm", {type: "button", id: "versions-merge",
          onclick: () => this.merge(doc.forkedFrom)}, `Merge into “${doc.forkedFrom}” as suggestions`));
      }
    }
    this.renderList();
  }

  async merge(parent) {
    // The fork's changed passages become suggestions on its parent: people accept or reject them there.
    try {
      const out = await api("POST", `${this.base()}/merge`, {});
      this.showError(null);
      const made = Array.isArray(out.suggestions) ? out.suggestions.length : 0;
      const left = Array.isArray(out.conflicts) ? out.conflicts.length : 0;
      toast(`${made} suggestion${made === 1 ? "" : "s"} made in “${parent}”` +
        (left ? `; ${left} passage${left === 1 ? "" : "s"} changed there too, to merge by hand.` : "."));
    } catch (error) {
      this.showError(error);
    }
  }

  form(doc) {
    const name = h("input", {name: "name", id: "versions-name", required: true, maxlength: "100", autocomplete: "off",
      placeholder: "e.g. before the storm scene"});
    const note = h("input", {name: "note", id: "versions-note", maxlength: "2000", autocomplete: "off", placeholder: "optional"});
    const error = h("p.form-error.small", {role: "alert", hidden: true});
    const submit = h("button.btn.sm", {type: "submit", id: "versions-save"}, "Name this revision");
    const revisionEl = h("span.muted.small", {id: "versions-revision"}, `r${doc.revision}`);
    return h("form.bible-form", {id: "versions-form", onsubmit: async (e) => {
      e.preventDefault();
      const revision = this.current().revision;
      if (!name.value.trim()) {
        error.textContent = "Give the revision a name.";
        error.hidden = false;
        name.focus();
        return;
      }
      submit.disabled = true;
      try {
        const body = {name: name.value.trim(), revision};
        if (note.value.trim()) body.note = note.value.trim();
        const version = await api("POST", `${this.base()}/versions`, body);
        this.onEvent("document.version.created", version);
        name.value = "";
        note.value = "";
        error.hidden = true;
        toast(`Named r${version.revision} “${version.name}”.`);
      } catch (err) {
        error.textContent = describeError(err);
        error.hidden = false;
      } finally {
        submit.disabled = false;
        revisionEl.textContent = `r${this.current().revision}`;
      }
    }}, h("div.bible-form-grid", null, labelled("Name this revision", name), labelled("Note", note)),
    h("div.row", null, submit, revisionEl), error);
  }

  renderList() {
    clear(this.listEl);
    const n = this.versions.length;
    this.countEl.textContent = !this.loaded && !n ? "Loading…" : !n ? "No named versions yet." :
      plural(n, "named version", "named versions");
    for (const v of this.versions) {
      this.listEl.append(h("li.versions-item", {dataset: {id: String(v.id), revision: String(v.revision)},
        style: {padding: "8px 0", "border-bottom": "1px solid var(--line-2, #eee)"}},
      h("div", null, h("strong.versions-name", null, v.name), " ", h("span.pill", null, `r${v.revision}`),
        h("span.muted.small", null, ` by @${v.created_by}`)),
      v.note ? h("p.muted.small", {style: {margin: "2px 0"}}, v.note) : null,
      h("div.row.bible-actions", null,
        h("button.btn.ghost.sm.versions-compare", {type: "button",
          "aria-label": `Compare with current: “${v.name}”`,
          onclick: () => this.compare({from: v.revision, label: v.name})}, "Compare with current"),
        this.canWrite ? h("button.btn.ghost.sm.versions-restore", {type: "button",
          "aria-label": `Restore: “${v.name}”`, onclick: () => this.restore(v)}, "Restore") : null)));
    }
  }

  hideDiff() {
    clear(this.diffEl);
    this.diffEl.hidden = true;
  }

  async compare({from = null, parent = false, label = ""}) {
    const query = parent ? "parent=1" : `from=${from}`;
    try {
      const result = await api("GET", `${this.base()}/compare?${query}`);
      this.showDiff(result, parent ? `“${result.from.document}” (its parent)` : `“${label}” (r${result.from.revision})`);
    } catch (err) {
      this.showError(err);
    }
  }

  showDiff(result, fromLabel) {
    clear(this.diffEl);
    const s = result.stats;
    const same = !result.diff.some((op) => op.op !== "equal");
    const heading = h("h3", {tabindex: "-1", id: "versions-diff-title", style: {margin: "8px 0 4px", "font-size": "16px"}},
      `${fromLabel} → current (r${result.to.revision})`);
    this.diffEl.append(heading,
      h("p.muted.small", {id: "versions-diff-stats"}, same ? "No difference: the texts are the same." :
        `${plural(s.inserted_words, "word", "words")} inserted, ${plural(s.deleted_words, "word", "words")} deleted ` +
        `(+${s.inserted.toLocaleString()} / −${s.deleted.toLocaleString()} characters).`),
      h("div.versions-diff-text", {id: "versions-diff-text", style: {"white-space": "pre-wrap", "overflow-wrap": "anywhere",
        "font-family": "var(--font-serif)", "font-size": "15px", "line-height": "1.6", "max-height": "45vh", overflow: "auto",
        border: "1px solid var(--line, #ddd)", "border-radius": "8px", padding: "10px 12px"}}, renderDiff(result.diff)),
      h("button.btn.ghost.sm", {type: "button", id: "versions-diff-close", onclick: () => this.hideDiff()}, "Hide comparison"));
    this.diffEl.hidden = false;
    heading.focus();
  }

  async restore(v) {
    if (!this.canWrite) return;
    if (!window.confirm(`Restore “${v.name}” (r${v.revision})? Its text replaces the current text as a new change; ` +
      "the current text stays in the history.")) return;
    try {
      const out = await api("POST", `${this.base()}/restore`, {version: v.id});
      this.showError(null);
      toast(out.changed ? `Restored “${v.name}” as r${out.revision}.` : `The text already is “${v.name}”.`);
      this.hideDiff();
    } catch (err) {
      this.showError(err);
    }
  }
}
