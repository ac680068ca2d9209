// The story's outline in the room: its scenes in order (outline/ on the server), in a dialog opened
// from "Outline" under the story's title and in the text's head.
//
//   const outline = new OutlineDialog({slug, canWrite, goTo});
//   outline.open(opener);          // a modal <dialog>: Esc closes it, focus returns to the opener
//   outline.onEvent(event, data);  // an outline.scene.* story event: the list follows at once
//   selectRange(view, range)       // selects a scene's range in an editor and scrolls to it
//
// Writers (can_write) add, edit, move and delete scenes through the same REST endpoints as any
// client, with the scene's `version`: a change made by someone else in between is refused (409) and
// said in words, and the scene is read again. `goTo(range)` (the room's) opens the range's document
// and selects the scene's text.
//
// Events: `outline.scene.updated` carries the whole scene (taken when newer); a created, moved or
// deleted scene shifts others, so those read the outline again (one GET: it is not paginated).

import {EditorSelection} from "@codemirror/state";
import {EditorView} from "@codemirror/view";
import {describeError} from "./compose.js";
import {api, clear, h, labelled, toast} from "./ui.js";

export const STATUSES = [
  ["planned", "Planned"],
  ["drafting", "Drafting"],
  ["drafted", "Drafted"],
  ["revised", "Revised"],
];
const STATUS_LABEL = Object.fromEntries(STATUSES);
const REFRESH_MS = 60;

/** A position in code points (as the server counts a range) as a position in `doc` (UTF-16). */
function utf16Offset(doc, codePoints) {
  const text = doc.sliceString(0, Math.min(doc.length, codePoints * 2));
  let units = 0;
  let points = 0;
  for (const char of text) {
    if (points >= codePoints) break;
    units += char.length;
    points += 1;
  }
  return Math.min(units, doc.length);
}

/** Selects a scene's `range` ({from, to} in code points) in `view`, scrolled into sight. */
export function selectRange(view, range) {
  if (!view || !range) return false;
  const doc = view.state.doc;
  const from = utf16Offset(doc, Math.max(0, Number(range.from) || 0));
  const to = Math.max(from, utf16Offset(doc, Math.max(0, Number(range.to) || 0)));
  view.dispatch({selection: EditorSelection.single(from, to), effects: EditorView.scrollIntoView(from, {y: "center"})});
  view.focus();
  return true;
}

function beatsFrom(text) {
  return String(text).split("\n").map((line) => line.trim()).filter(Boolean);
}

const LIST_STYLE = {"list-style": "none", margin: "0", padding: "0"};
const WRAP = {"overflow-wrap": "anywhere"};

export class OutlineDialog {
  constructor({slug, canWrite, goTo = null}) {
    this.slug = slug;
    this.canWrite = canWrite;
    this.goTo = goTo;
    this.scenes = new Map(); // id -> scene
    this.items = new Map(); // id -> <li>
    this.loaded = false;
    this.loading = null;
    this.fetchToken = 0;
    this.refreshTimer = null;
    this.editing = null; // the id of the scene whose form is open
    this.adding = false;
    this.errorEl = h("p.form-error.small", {id: "outline-error", role: "alert", hidden: true});
    this.countEl = h("p.muted.small", {id: "outline-count", role: "status"});
    this.newButton = h("button.btn.sm", {type: "button", id: "outline-new", onclick: () => this.showAdd()}, "New scene");
    this.addHost = h("div.outline-add");
    this.listEl = h("ol.outline-list", {id: "outline-list", "aria-label": "Scenes", style: LIST_STYLE});
    this.el = h("dialog.bible-dialog.outline-dialog", {id: "outline-dialog", "aria-labelledby": "outline-title"},
      h("div.dialog-head", null,
        h("h2", {id: "outline-title"}, "Outline"),
        h("button.icon-btn", {type: "button", "aria-label": "Close", onclick: () => this.close()}, "×")),
      h("p.muted.small", null, "The story's scenes in order: what each is about, its beats, and how far it is written."),
      this.errorEl,
      h("div.bible-tools", null, this.countEl, this.newButton),
      this.addHost,
      this.listEl);
    this.el.addEventListener("close", () => {
      this.editing = null;
      this.adding = false;
      clear(this.addHost);
      if (this.opener && document.contains(this.opener)) this.opener.focus();
    });
    document.body.appendChild(this.el);
    this.setCanWrite(canWrite);
  }

  // --- the store --------------------------------------------------------------------------------

  ordered() {
    return [...this.scenes.values()].sort((a, b) => a.position - b.position || a.id - b.id);
  }

  /** Reads the whole outline; an answer older than a later read is dropped. A scene known at a
   * newer version (an event that overtook the read) is kept. */
  async load() {
    const token = ++this.fetchToken;
    try {
      const data = await api("GET", `/api/stories/${this.slug}/outline`);
      if (token !== this.fetchToken) return;
      const next = new Map();
      for (const scene of data.results || []) {
        const known = this.scenes.get(scene.id);
        next.set(scene.id, known && known.version > scene.version ? {...known, position: scene.position} : scene);
      }
      this.scenes = next;
      this.loaded = true;
      if (this.loadFailed) this.showError(null); // (a refusal said before this read stays said)
      this.loadFailed = false;
    } catch (error) {
      if (token !== this.fetchToken) return;
      this.loadFailed = true;
      this.showError(error);
    }
    this.render();
  }

  /** Reads the outline again soon (several events in a row make one read). */
  refresh() {
    if (!this.loaded) return;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.load(), REFRESH_MS);
  }

  upsert(scene) {
    if (!scene || typeof scene.id !== "number") return;
    const known = this.scenes.get(scene.id);
    if (known && known.version > scene.version) return; // an older event after a newer answer
    this.scenes.set(scene.id, scene);
    this.render();
  }

  /** An `outline.scene.*` event of the story topic. */
  onEvent(event, data) {
    if (!this.loaded || !data) return;
    if (event === "outline.scene.updated") {
      this.upsert(data.scene);
    } else if (event === "outline.scene.deleted") {
      if (this.scenes.delete(data.id)) {
        if (this.editing === data.id) {
          this.showError({message: "Someone deleted the scene you are editing: copy what you need, then cancel."});
          const li = this.items.get(data.id);
          if (li) li.dataset.position = "";
        }
        this.render();
      }
      this.refresh();
    } else if (event === "outline.scene.created") {
      this.upsert(data.scene);
      this.refresh();
    } else if (event === "outline.scene.moved") {
      this.refresh();
    }
  }

  setCanWrite(canWrite) {
    this.canWrite = canWrite;
    this.newButton.hidden = !canWrite;
    if (!canWrite) {
      this.editing = null;
      this.adding = false;
      clear(this.addHost);
    }
    this.render(true);
  }

  // --- the dialog -------------------------------------------------------------------------------

  async open(opener = document.activeElement) {
    this.opener = opener;
    if (!this.el.open) this.el.showModal();
    this.render();
    if (!this.loaded) {
      if (!this.loading) this.loading = this.load().finally(() => (this.loading = null));
      await this.loading;
    }
  }

  close() {
    if (this.el.open) this.el.close();
  }

  showError(error) {
    this.errorEl.textContent = error ? describeError(error) : "";
    this.errorEl.hidden = !error;
  }

  /** Draws the list, keeping each scene's <li> (and an open form) in place: only a scene that
   * changed is redrawn, so focus and anything typed survive others' edits. */
  render(force = false) {
    const scenes = this.ordered();
    const count = scenes.length;
    this.countEl.textContent = !this.loaded ? "Loading…" : !count
      ? (this.canWrite ? "No scenes yet: plan the first with “New scene”." : "No scenes in the outline yet.")
      : `${count} scene${count === 1 ? "" : "s"}`;
    const active = document.activeElement;
    const activeLi = active && this.listEl.contains(active) ? active.closest("li[data-id]") : null;
    const focus = activeLi ? {id: Number(activeLi.dataset.id), act: active.dataset.act} : null;
    const keep = new Set();
    scenes.forEach((scene, i) => {
      keep.add(scene.id);
      let li = this.items.get(scene.id);
      const key = [scene.version, scene.position, count, this.canWrite, JSON.stringify(scene.range)].join("|");
      if (!li) {
        li = h("li.outline-scene", {style: {padding: "10px 0", "border-bottom": "1px solid var(--line-2)"}});
        this.items.set(scene.id, li);
      }
      li.dataset.id = String(scene.id);
      li.dataset.position = String(scene.position);
      li.dataset.version = String(scene.version);
      li.dataset.status = scene.status;
      if (this.editing === scene.id && this.canWrite) {
        if (!li.querySelector("form")) {
          clear(li).append(this.form(scene));
          li.dataset.key = "";
        }
      } else if (force || li.dataset.key !== key || li.querySelector("form")) {
        clear(li).append(...this.sceneView(scene, count));
        li.dataset.key = key;
      }
      if (this.listEl.children[i] !== li) this.listEl.insertBefore(li, this.listEl.children[i] || null);
    });
    for (const [id, li] of this.items) {
      // A scene deleted by someone else while its form is open keeps its form (at the end) until
      // cancelled: nothing typed is lost.
      if (!keep.has(id) && !(id === this.editing && li.querySelector("form"))) {
        li.remove();
        this.items.delete(id);
      }
    }
    if (focus && !this.el.contains(document.activeElement)) this.refocus(focus);
  }

  refocus({id, act}) {
    const li = this.items.get(id);
    if (!li) return;
    const candidates = [act && li.querySelector(`[data-act="${act}"]`), li.querySelector("[data-act=up]"),
      li.querySelector("[data-act=down]"), li.querySelector("h3")];
    const target = candidates.find((el) => el && !el.disabled);
    if (target) target.focus();
  }

  sceneView(scene, count) {
    const beats = Array.isArray(scene.beats) ? scene.beats : [];
    const range = scene.range;
    const out = [
      h("h3.outline-title", {tabindex: "-1", style: {margin: "0 0 4px", "font-size": "16px", ...WRAP}},
        h("span.outline-number", null, `${scene.position}.`), " ", h("span.outline-title-text", null, scene.title), " ",
        h("span.pill.outline-status", {dataset: {status: scene.status}}, STATUS_LABEL[scene.status] || scene.status)),
    ];
    if (scene.summary) out.push(h("p.outline-summary", {style: {margin: "4px 0", "white-space": "pre-wrap", ...WRAP}}, scene.summary));
    if (beats.length) {
      out.push(h("ol.outline-beats", {style: {margin: "4px 0", "padding-left": "1.4em", ...WRAP}},
        beats.map((beat) => h("li.outline-beat", null, beat))));
    } else {
      out.push(h("p.muted.small", {style: {margin: "4px 0"}}, "No beats yet."));
    }
    if (range && range.gone) {
      out.push(h("p.muted.small.outline-range", null, `Its text in “${range.document}” was deleted.`));
    }
    const actions = [];
    if (range && !range.gone && this.goTo) {
      actions.push(h("button.btn.ghost.sm", {type: "button", dataset: {act: "goto"},
        title: `${range.document}, characters ${range.from}–${range.to}`,
        onclick: () => this.goToScene(scene)}, "Go to text"));
    }
    if (this.canWrite) {
      const label = `scene ${scene.position}`;
      actions.push(
        h("button.btn.ghost.sm", {type: "button", dataset: {act: "edit"}, "aria-label": `Edit ${label}`,
          onclick: () => this.edit(scene.id)}, "Edit"),
        h("button.btn.ghost.sm", {type: "button", dataset: {act: "up"}, "aria-label": `Move up: ${label}`,
          disabled: scene.position <= 1, onclick: () => this.move(scene, scene.position - 1)}, "Move up"),
        h("button.btn.ghost.sm", {type: "button", dataset: {act: "down"}, "aria-label": `Move down: ${label}`,
          disabled: scene.position >= count, onclick: () => this.move(scene, scene.position + 1)}, "Move down"),
        h("button.btn.ghost.sm", {type: "button", dataset: {act: "delete"}, "aria-label": `Delete ${label}`,
          onclick: () => this.destroy(scene)}, "Delete"));
    }
    if (actions.length) out.push(h("div.bible-actions.outline-actions", {style: {"margin-top": "6px"}}, actions));
    return out;
  }

  async goToScene(scene) {
    try {
      this.opener = null; // the focus goes to the text, not back to the button that opened the dialog
      this.close();
      await this.goTo(scene.range);
    } catch (error) {
      toast(describeError(error), "error");
    }
  }

  // --- writes -----------------------------------------------------------------------------------

  showAdd() {
    if (!this.canWrite) return;
    this.adding = true;
    clear(this.addHost);
    const title = h("input", {name: "title", id: "outline-new-title", required: true, autocomplete: "off", maxlength: "200"});
    const beats = h("textarea", {name: "beats", id: "outline-new-beats", rows: 4, placeholder: "One beat per line"});
    const error = h("p.form-error.small", {role: "alert", hidden: true});
    const submit = h("button.btn.sm", {type: "submit", id: "outline-add"}, "Add the scene");
    const cancel = () => {
      this.adding = false;
      clear(this.addHost);
      this.newButton.focus();
    };
    const form = h("form.bible-form", {id: "outline-new-form", style: {margin: "0 0 12px"}, onsubmit: async (e) => {
      e.preventDefault();
      if (!title.value.trim()) {
        error.textContent = "A scene needs a title.";
        error.hidden = false;
        title.focus();
        return;
      }
      submit.disabled = true;
      try {
        const scene = await api("POST", `/api/stories/${this.slug}/outline`,
          {title: title.value.trim(), beats: beatsFrom(beats.value)});
        this.adding = false;
        clear(this.addHost);
        this.upsert(scene);
        this.refresh();
        toast(`Added scene ${scene.position}, “${scene.title}”.`);
        const li = this.items.get(scene.id);
        if (li) li.querySelector("h3").focus();
      } catch (err) {
        submit.disabled = false;
        error.textContent = describeError(err);
        error.hidden = false;
      }
    }},
    h("h3", null, "New scene"),
    labelled("Title", title),
    labelled("Beats, one per line", beats),
    error,
    h("div.row", null, submit, h("button.btn.ghost.sm", {type: "button", id: "outline-new-cancel", onclick: cancel}, "Cancel")));
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        cancel();
      }
    });
    this.addHost.append(form);
    title.focus();
  }

  edit(id) {
    if (!this.canWrite) return;
    this.editing = id;
    this.showError(null);
    this.render();
    const li = this.items.get(id);
    const first = li && li.querySelector("input");
    if (first) first.focus();
  }

  stopEditing(id) {
    if (this.editing === id) this.editing = null;
    this.render();
    const li = this.items.get(id);
    if (li) li.querySelector("h3").focus();
    else if (this.canWrite) this.newButton.focus();
  }

  form(scene) {
    let base = scene; // the version this form saves over; a conflict moves it to the stored one
    const id = scene.id;
    const title = h("input", {name: "title", class: "outline-edit-title", required: true, autocomplete: "off",
      maxlength: "200", value: scene.title});
    const status = h("select", {name: "status", class: "outline-edit-status"},
      STATUSES.map(([value, label]) => h("option", {value, selected: scene.status === value}, label)));
    const beats = h("textarea", {name: "beats", class: "outline-edit-beats", rows: 5, placeholder: "One beat per line"},
      (scene.beats || []).join("\n"));
    const error = h("p.form-error.small.outline-form-error", {role: "alert", hidden: true});
    const submit = h("button.btn.sm", {type: "submit", dataset: {act: "save"}}, "Save");
    const form = h("form.bible-form.outline-form", {onsubmit: async (e) => {
      e.preventDefault();
      if (!title.value.trim()) {
        error.textContent = "A scene needs a title.";
        error.hidden = false;
        title.focus();
        return;
      }
      submit.disabled = true;
      try {
        const saved = await api("PATCH", `/api/stories/${this.slug}/outline/${id}`,
          {title: title.value.trim(), status: status.value, beats: beatsFrom(beats.value), version: base.version});
        this.editing = null;
        this.upsert(saved);
        this.stopEditing(id);
        toast(`Saved scene ${saved.position}.`);
      } catch (err) {
        submit.disabled = false;
        let text = describeError(err);
        if (err.code === "conflict") {
          // Read the scene again: the list shows the stored one; the form keeps what was typed.
          try {
            const fresh = await api("GET", `/api/stories/${this.slug}/outline/${id}`);
            base = fresh;
            this.upsert(fresh);
            text = `Someone else changed this scene since you opened it (it is now “${fresh.title}”, ` +
              `${(STATUS_LABEL[fresh.status] || fresh.status).toLowerCase()}, version ${fresh.version}). ` +
              "Your edit was not saved: Save again to replace their version with yours, or Cancel to see theirs.";
          } catch (again) {
            text = describeError(again);
          }
        }
        error.textContent = text;
        error.hidden = false;
      }
    }},
    h("h3", {tabindex: "-1"}, `Edit scene ${scene.position}`),
    h("div.bible-form-grid", null, labelled("Title", title), labelled("Status", status)),
    labelled("Beats, one per line", beats),
    error,
    h("div.row", null, submit,
      h("button.btn.ghost.sm", {type: "button", dataset: {act: "cancel"}, onclick: () => this.stopEditing(id)}, "Cancel")));
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        // Esc in the form leaves the form, not the dialog.
        e.preventDefault();
        this.stopEditing(id);
      }
    });
    return form;
  }

  async move(scene, position) {
    this.showError(null);
    try {
      const moved = await api("POST", `/api/stories/${this.slug}/outline/${scene.id}/move`,
        {position, version: scene.version});
      this.upsert(moved);
      this.refresh();
    } catch (err) {
      this.conflictOr(err);
    }
  }

  async destroy(scene) {
    if (!window.confirm(`Delete scene ${scene.position}, “${scene.title}”, from the outline?`)) return;
    this.showError(null);
    try {
      await api("DELETE", `/api/stories/${this.slug}/outline/${scene.id}?version=${scene.version}`);
      this.scenes.delete(scene.id);
      this.render();
      this.refresh();
      toast(`Deleted “${scene.title}”.`);
      // The focus goes to the scene now in its place (or the last one, or "New scene").
      const next = this.ordered().find((s) => s.position >= scene.position) || this.ordered().pop();
      const li = next && this.items.get(next.id);
      if (li) li.querySelector("h3").focus();
      else this.newButton.focus();
    } catch (err) {
      this.conflictOr(err);
    }
  }

  conflictOr(err) {
    if (err.code === "conflict") {
      this.showError({message: "Someone else changed this scene meanwhile: nothing was done. The outline is read again; " +
        "look at it and try again."});
    } else {
      this.showError(err);
    }
    this.load();
  }
}
