// The story bible in the room: its characters, places, objects, lore and style notes (bible/ on the
// server), in a dialog opened from "Story bible" under the story's title, and marked in the text.
//
//   const bible = new BibleDialog({slug, canWrite});
//   bible.load();                  // every entry, through the REST API (again after a reconnect)
//   bible.open(opener);            // a modal <dialog>: Esc closes it, focus returns to the opener
//   bible.onEvent(event, data);    // a bible.entry.* story event: the list follows at once
//   bibleMarks(bible)              // the editor extension: names and aliases marked, a card on hover
//
// Writes go through the same endpoints as any client, with the entry's `version`, so a change made
// by someone else in between is refused with the server's words instead of being overwritten.

import {RangeSetBuilder, StateEffect} from "@codemirror/state";
import {Decoration, EditorView, hoverTooltip, ViewPlugin} from "@codemirror/view";
import {describeError} from "./compose.js";
import {api, clear, h, labelled, toast} from "./ui.js";

export const KINDS = [
  ["character", "Characters", "Character"],
  ["place", "Places", "Place"],
  ["object", "Objects", "Object"],
  ["lore", "Lore", "Lore"],
  ["style", "Style", "Style"],
];
const KIND_LABEL = Object.fromEntries(KINDS.map(([kind, , one]) => [kind, one]));
const CARD_LINES = 3;
const CARD_CHARS = 280;
// The server's whole word (Python's \w, bible/selectors.py): letters, digits, marks and "_".
const WORD = "[\\p{L}\\p{N}\\p{M}_]";

async function allPages(path) {
  const out = [];
  let url = path;
  while (url) {
    const page = await api("GET", url);
    out.push(...page.results);
    const next = page.next ? new URL(page.next, location.origin) : null;
    url = next ? next.pathname + next.search : null;
  }
  return out;
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** The first lines of a description, for the card shown on hover. */
export function firstLines(text, lines = CARD_LINES, chars = CARD_CHARS) {
  const all = String(text || "").split("\n").filter((line) => line.trim());
  let out = all.slice(0, lines).join("\n");
  const cut = out.length > chars || all.length > lines;
  if (out.length > chars) out = out.slice(0, chars).replace(/\s+\S*$/, "");
  return cut ? `${out}…` : out;
}

/** Many words as one regex shaped as a trie (bible/selectors.py does the same): at each character
 * the alternatives are few, so the time to scan a text hardly grows with the number of words. */
export function triePattern(words) {
  const root = new Map();
  for (const word of words) {
    let node = root;
    for (const char of word) {
      if (!node.has(char)) node.set(char, new Map());
      node = node.get(char);
    }
    node.set("", true);
  }
  const emit = (node) => {
    const branches = [...node.keys()].filter((c) => c !== "").sort().map((c) => escapeRegExp(c) + emit(node.get(c)));
    if (!branches.length) return "";
    const body = branches.length === 1 ? branches[0] : `(?:${branches.join("|")})`;
    return node.has("") ? `(?:${body})?` : body;
  };
  return emit(root);
}

/** Every name and alias of `entries` as one case-insensitive, whole-word regex (longest first), and
 * who each one names (two entries may share an alias). Null when there is nothing to find. */
export function buildMatcher(entries) {
  const terms = new Map(); // lowercased term -> [entry]
  for (const entry of entries) {
    for (const term of [entry.name, ...(entry.aliases || [])]) {
      const text = String(term || "").trim();
      if (!text) continue;
      const key = text.toLowerCase();
      if (!terms.has(key)) terms.set(key, []);
      if (!terms.get(key).includes(entry)) terms.get(key).push(entry);
    }
  }
  if (!terms.size) return null;
  const regex = new RegExp(`(?<!${WORD})(?:${triePattern([...terms.keys()])})(?!${WORD})`, "giu");
  return {
    regex,
    entriesFor(found) {
      const key = found.toLowerCase();
      if (terms.has(key)) return terms.get(key);
      // A case pair the regex folds and toLowerCase does not: compare one by one.
      for (const [term, list] of terms) if (new RegExp(`^${escapeRegExp(term)}$`, "iu").test(found)) return list;
      return [];
    },
  };
}

const WORD_BEFORE = new RegExp(`${WORD}$`, "u");
const WORD_AFTER = new RegExp(`^${WORD}`, "u");

/** The whole-word matches of `matcher` in the document between `from` and `to` (a match at an edge
 * is not taken when the word goes on past it). */
function* mentions(doc, matcher, from, to) {
  const text = doc.sliceString(from, to);
  for (const match of text.matchAll(matcher.regex)) {
    const a = from + match.index;
    const b = a + match[0].length;
    if (a === from && a > 0 && WORD_BEFORE.test(doc.sliceString(Math.max(0, a - 2), a))) continue;
    if (b === to && b < doc.length && WORD_AFTER.test(doc.sliceString(b, Math.min(doc.length, b + 2)))) continue;
    yield {from: a, to: b, text: match[0]};
  }
}

const bibleChanged = StateEffect.define();

function mentionCard(list) {
  return h("div.bible-card", {dataset: {entries: list.map((e) => e.slug).join(" ")}},
    list.map((entry) => h("div.bible-card-entry", null,
      h("div.bible-card-head", null, h("strong.bible-card-name", null, entry.name), " ",
        h("span.pill.small", null, KIND_LABEL[entry.kind] || entry.kind)),
      entry.aliases && entry.aliases.length ? h("div.muted.small", null, `Also: ${entry.aliases.join(", ")}`) : null,
      entry.description ? h("p.bible-card-text", null, firstLines(entry.description))
        : h("p.muted.small.bible-card-text", null, "No description yet."))));
}

/**
 * The editor extension: every name and alias of the bible's entries marked in the visible text
 * (whole words, any case), recomputed when the text, the viewport or the entries change; hovering a
 * mark shows a card with the entry's name, kind and the first lines of its description. Marks only
 * style the text: typing, the collab sync and the undo history do not see them.
 */
export function bibleMarks(bible) {
  const plugin = ViewPlugin.fromClass(class {
    constructor(view) {
      this.decorations = this.build(view);
      this.stop = bible.subscribe(() => {
        // Not inside an update: the store changes on network answers and socket events.
        view.dispatch({effects: bibleChanged.of(null)});
      });
    }

    update(update) {
      if (update.docChanged || update.viewportChanged ||
          update.transactions.some((tr) => tr.effects.some((e) => e.is(bibleChanged)))) {
        this.decorations = this.build(update.view);
      }
    }

    build(view) {
      const matcher = bible.matcher();
      if (!matcher) return Decoration.none;
      const builder = new RangeSetBuilder();
      let last = 0;
      const doc = view.state.doc;
      for (const {from, to} of view.visibleRanges) {
        // A little past the edges, so a word cut by the viewport is still seen whole.
        for (const m of mentions(doc, matcher, Math.max(last, from - 100), Math.min(doc.length, to + 100))) {
          if (m.from < last) continue;
          const slugs = matcher.entriesFor(m.text).map((e) => e.slug).join(" ");
          builder.add(m.from, m.to, Decoration.mark({class: "cm-bible-mention", attributes: {"data-bible": slugs}}));
          last = m.to;
        }
      }
      return builder.finish();
    }

    destroy() {
      this.stop();
    }
  }, {decorations: (v) => v.decorations});

  const hover = hoverTooltip((view, pos, side) => {
    const matcher = bible.matcher();
    if (!matcher) return null;
    const line = view.state.doc.lineAt(pos);
    const from = Math.max(line.from, pos - 200);
    const to = Math.min(line.to, pos + 200);
    for (const m of mentions(view.state.doc, matcher, from, to)) {
      if (m.from > pos || m.to < pos) continue;
      if ((m.from === pos && side < 0) || (m.to === pos && side > 0)) continue;
      const list = matcher.entriesFor(m.text);
      if (!list.length) return null;
      return {pos: m.from, end: m.to, above: true, create: () => ({dom: mentionCard(list)})};
    }
    return null;
  }, {hoverTime: 250});

  const theme = EditorView.baseTheme({
    ".cm-bible-mention": {textDecoration: "underline dotted var(--accent, #5b4bdb)", textUnderlineOffset: "3px",
      textDecorationThickness: "1.5px"},
    ".cm-tooltip.cm-tooltip-hover:has(.bible-card)": {border: "1px solid var(--line, #e5e7ee)", borderRadius: "10px",
      background: "var(--surface, #fff)", boxShadow: "var(--shadow-lg)"},
  });
  return [plugin, hover, theme];
}

export class BibleDialog {
  constructor({slug, canWrite}) {
    this.slug = slug;
    this.canWrite = canWrite;
    this.entries = new Map(); // slug -> entry
    this.listeners = new Set();
    this.selected = null; // the slug shown
    this.editing = null; // null, "new" or a slug
    this.loaded = false;
    this._matcher = undefined;
    this.errorEl = h("p.form-error.small", {id: "bible-error", role: "alert", hidden: true});
    this.search = h("input", {type: "search", id: "bible-search", autocomplete: "off",
      placeholder: "A name, an alias or a word", oninput: () => this.renderList()});
    this.newButton = h("button.btn.sm", {type: "button", id: "bible-new", onclick: () => this.edit("new")}, "New entry");
    this.listEl = h("div.bible-list", {id: "bible-list"});
    this.countEl = h("p.muted.small", {id: "bible-count", role: "status"});
    this.detailEl = h("section.bible-detail", {id: "bible-detail", "aria-label": "Entry"});
    this.el = h("dialog.bible-dialog", {id: "bible-dialog", "aria-labelledby": "bible-title"},
      h("div.dialog-head", null,
        h("h2", {id: "bible-title"}, "Story bible"),
        h("button.icon-btn", {type: "button", "aria-label": "Close", onclick: () => this.close()}, "×")),
      h("p.muted.small", null, "The story's characters, places, objects, lore and style. Their names are marked in the text; hover one to see its card."),
      this.errorEl,
      h("div.bible-tools", null, labelled("Search the bible", this.search), this.newButton),
      h("div.bible-body", null, h("nav.bible-nav", {"aria-label": "Entries"}, this.countEl, this.listEl), this.detailEl));
    this.el.addEventListener("close", () => {
      this.editing = null;
      if (this.opener && document.contains(this.opener)) this.opener.focus();
    });
    document.body.appendChild(this.el);
    this.setCanWrite(canWrite);
  }

  // --- the store (for the marks too) --------------------------------------------------------

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed() {
    this._matcher = undefined;
    for (const fn of this.listeners) fn();
    this.render();
  }

  matcher() {
    if (this._matcher === undefined) this._matcher = buildMatcher([...this.entries.values()]);
    return this._matcher;
  }

  async load() {
    try {
      const entries = await allPages(`/api/stories/${this.slug}/bible?limit=200`);
      this.entries = new Map(entries.map((e) => [e.slug, e]));
      this.loaded = true;
      this.showError(null);
    } catch (error) {
      this.showError(error);
    }
    this.changed();
  }

  upsert(entry) {
    if (!entry || !entry.slug) return;
    const known = this.entries.get(entry.slug);
    if (known && known.version > entry.version) return; // an older event after a newer answer
    this.entries.set(entry.slug, entry);
    this.changed();
  }

  remove(slug) {
    if (!this.entries.delete(slug)) return;
    if (this.selected === slug) this.selected = null;
    if (this.editing === slug) {
      // The form stays, so nothing typed is lost; saving it now says the entry is gone.
      this.showError({message: "Someone deleted this entry while you were editing it: copy what you need, then cancel."});
    }
    this.changed();
  }

  /** A `bible.entry.*` event of the story topic. */
  onEvent(event, data) {
    if (event === "bible.entry.deleted") this.remove(data && data.slug);
    else if (event === "bible.entry.created" || event === "bible.entry.updated") this.upsert(data);
  }

  setCanWrite(canWrite) {
    this.canWrite = canWrite;
    this.newButton.hidden = !canWrite;
    if (!canWrite) this.editing = null;
    this.render();
  }

  // --- the dialog ---------------------------------------------------------------------------

  async open(opener = document.activeElement, slug = null) {
    this.opener = opener;
    if (slug) this.selected = slug;
    if (!this.el.open) this.el.showModal();
    this.render();
    if (!this.loaded) await this.load();
  }

  close() {
    if (this.el.open) this.el.close();
  }

  showError(error) {
    this.errorEl.textContent = error ? describeError(error) : "";
    this.errorEl.hidden = !error;
  }

  render() {
    this.renderList();
    this.renderDetail();
  }

  matches(entry, q) {
    if (!q) return true;
    return [entry.name, ...(entry.aliases || []), entry.description || "", ...Object.values(entry.fields || {})]
      .some((text) => String(text).toLowerCase().includes(q));
  }

  renderList() {
    const q = this.search.value.trim().toLowerCase();
    const shown = [...this.entries.values()].filter((e) => this.matches(e, q))
      .sort((a, b) => a.name.localeCompare(b.name));
    clear(this.listEl);
    const total = this.entries.size;
    this.countEl.textContent = !this.loaded && !total ? "Loading…" :
      !total ? "No entries yet." :
        q ? `${shown.length} of ${total} entr${total === 1 ? "y" : "ies"}` : `${total} entr${total === 1 ? "y" : "ies"}`;
    for (const [kind, title] of KINDS) {
      const items = shown.filter((e) => e.kind === kind);
      if (!items.length) continue;
      this.listEl.append(h("section.bible-group", {dataset: {kind}, "aria-label": title},
        h("h3.group-title", null, title, h("span.count", null, String(items.length))),
        h("ul", null, items.map((e) => h("li", null, h("button.bible-item", {type: "button",
          dataset: {slug: e.slug}, "aria-current": this.selected === e.slug ? "true" : null,
          onclick: () => this.show(e.slug)},
        h("span.bible-item-name", null, e.name),
        e.aliases && e.aliases.length ? h("span.bible-item-aliases", null, e.aliases.join(", ")) : null))))));
    }
  }

  show(slug) {
    this.selected = slug;
    this.editing = null;
    this.showError(null);
    this.render();
    const heading = this.detailEl.querySelector("h3");
    if (heading) heading.focus();
  }

  renderDetail() {
    if (this.editing && this.canWrite) {
      // An open form is never redrawn under the writer's hands (an event for the entry would
      // otherwise wipe what they typed): it keeps the version it was opened at, and a save over
      // someone else's change is refused by the server.
      if (this.formEl && this.formFor === this.editing && this.detailEl.contains(this.formEl)) return;
      clear(this.detailEl);
      this.formFor = this.editing;
      this.formEl = this.form(this.editing === "new" ? null : this.entries.get(this.editing));
      this.detailEl.append(this.formEl);
      return;
    }
    this.formEl = null;
    clear(this.detailEl);
    const entry = this.selected && this.entries.get(this.selected);
    if (!entry) {
      this.detailEl.append(h("p.muted.small.bible-empty", null, this.entries.size ? "Choose an entry to read it." :
        this.canWrite ? "Add the story's first character, place or note with “New entry”." : "Nothing in the bible yet."));
      return;
    }
    const fields = Object.entries(entry.fields || {});
    this.detailEl.append(h("article.bible-entry", {dataset: {slug: entry.slug, version: String(entry.version)}},
      h("h3", {tabindex: "-1", id: "bible-entry-name"}, entry.name),
      h("p.bible-entry-meta", null, h("span.pill", null, KIND_LABEL[entry.kind] || entry.kind),
        entry.aliases && entry.aliases.length ? h("span.muted.small", null, ` Also: ${entry.aliases.join(", ")}`) : null),
      entry.description ? h("p.bible-description", null, entry.description) : h("p.muted.small", null, "No description."),
      fields.length ? h("dl.bible-fields", null, fields.map(([key, value]) => [h("dt", null, key), h("dd", null, value)])) : null,
      h("p.muted.small", null, `Version ${entry.version}${entry.updated_by ? ` · last changed by @${entry.updated_by}` : ""}`),
      this.canWrite ? h("div.row.bible-actions", null,
        h("button.btn.sm", {type: "button", id: "bible-edit", onclick: () => this.edit(entry.slug)}, "Edit"),
        h("button.btn.ghost.sm", {type: "button", id: "bible-delete", onclick: () => this.destroy(entry)}, "Delete")) : null));
  }

  edit(which) {
    if (!this.canWrite) return;
    this.editing = which;
    this.formEl = null;
    this.showError(null);
    this.renderDetail();
    const first = this.detailEl.querySelector("input");
    if (first) first.focus();
  }

  fieldRow(rows, key = "", value = "") {
    const n = rows.children.length + 1;
    const row = h("div.bible-field-row", null,
      h("input", {class: "bible-field-key", value: key, "aria-label": `Field ${n}: name`, placeholder: "e.g. voice"}),
      h("input", {class: "bible-field-value", value, "aria-label": `Field ${n}: text`, placeholder: "e.g. dry, short sentences"}),
      h("button.btn.ghost.sm", {type: "button", "aria-label": `Remove field ${n}`, onclick: () => row.remove()}, "Remove"));
    rows.append(row);
    return row;
  }

  form(entry) {
    const name = h("input", {name: "name", id: "bible-name", required: true, autocomplete: "off", value: entry ? entry.name : ""});
    const kind = h("select", {name: "kind", id: "bible-kind"},
      KINDS.map(([k, , one]) => h("option", {value: k, selected: entry ? entry.kind === k : k === "character"}, one)));
    const aliases = h("input", {name: "aliases", id: "bible-aliases", autocomplete: "off",
      value: entry ? (entry.aliases || []).join(", ") : "", placeholder: "comma-separated, e.g. the Captain, Ro"});
    const description = h("textarea", {name: "description", id: "bible-description", rows: 6},
      entry ? entry.description || "" : "");
    const rows = h("div.bible-field-rows", {id: "bible-field-rows"});
    for (const [key, value] of Object.entries((entry && entry.fields) || {})) this.fieldRow(rows, key, value);
    const error = h("p.form-error.small", {role: "alert", hidden: true});
    const submit = h("button.btn.sm", {type: "submit", id: "bible-save"}, entry ? "Save" : "Create");
    const form = h("form.bible-form", {id: "bible-form", onsubmit: async (e) => {
      e.preventDefault();
      const fields = {};
      for (const row of rows.children) {
        const key = row.querySelector(".bible-field-key").value.trim();
        const value = row.querySelector(".bible-field-value").value;
        if (!key && !value.trim()) continue;
        if (!key) {
          error.textContent = "Every field with a text needs a name.";
          error.hidden = false;
          row.querySelector(".bible-field-key").focus();
          return;
        }
        fields[key] = value;
      }
      const body = {
        name: name.value.trim(), kind: kind.value,
        aliases: aliases.value.split(",").map((a) => a.trim()).filter(Boolean),
        description: description.value, fields,
      };
      submit.disabled = true;
      try {
        let saved;
        if (entry) {
          saved = await api("PATCH", `/api/stories/${this.slug}/bible/${encodeURIComponent(entry.slug)}`,
            {...body, version: entry.version});
        } else {
          saved = await api("POST", `/api/stories/${this.slug}/bible`, body);
        }
        this.editing = null;
        this.selected = saved.slug;
        this.upsert(saved);
        this.render();
        toast(entry ? `Saved “${saved.name}”.` : `Added “${saved.name}” to the bible.`);
        const heading = this.detailEl.querySelector("h3");
        if (heading) heading.focus();
      } catch (err) {
        submit.disabled = false;
        let text = describeError(err);
        if (err.code === "conflict" && err.details && err.details.version != null) {
          text = `Someone changed this entry since you opened it (it is at version ${err.details.version} now). ` +
            "Cancel to see their change, then edit again.";
          this.load();
        }
        error.textContent = text;
        error.hidden = false;
      }
    }},
    h("h3", {tabindex: "-1"}, entry ? `Edit “${entry.name}”` : "New entry"),
    h("div.bible-form-grid", null, labelled("Name", name), labelled("Kind", kind)),
    labelled("Aliases", aliases),
    labelled("Description", description),
    h("fieldset.bible-fieldset", null, h("legend", null, "Fields"),
      h("p.muted.small", null, "Short notes by name: a character's voice, a place's look."),
      rows,
      h("button.btn.ghost.sm", {type: "button", id: "bible-add-field", onclick: () => this.fieldRow(rows).querySelector("input").focus()},
        "Add a field")),
    error,
    h("div.row", null, submit,
      h("button.btn.ghost.sm", {type: "button", id: "bible-cancel", onclick: () => {
        this.editing = null;
        this.render();
      }}, "Cancel")));
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.el.open) {
        // Esc in the form leaves the form, not the dialog (nothing typed is lost by a stray key).
        e.preventDefault();
        this.editing = null;
        this.render();
      }
    });
    return form;
  }

  async destroy(entry) {
    if (!window.confirm(`Delete “${entry.name}” from the bible? Its progressions go with it.`)) return;
    try {
      await api("DELETE", `/api/stories/${this.slug}/bible/${encodeURIComponent(entry.slug)}?version=${entry.version}`);
      this.remove(entry.slug);
      toast(`Deleted “${entry.name}”.`);
    } catch (err) {
      this.showError(err);
      if (err.code === "conflict") this.load();
    }
  }
}
