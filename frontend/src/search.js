// The room's search box (issue #17): full-text search over the story's messages the reader may
// read (GET /api/search?story=..., docs/protocol.md 3 "Search"; the server checks access in the
// query, so nothing here filters). Typing searches after a short pause; a newer query aborts the
// request of an older one, and an answer that comes late for an older query is dropped. Results are
// ranked by the server; each shows where and by whom, and the server's highlight, drawn as text
// and <mark> elements (msgtools.highlightParts), never parsed as markup. Following one opens its
// channel, loads its history down to it if need be and flashes the card (room.showMessage).
//
// Keys: ↓ from the box goes to the results, ↑/↓ move between them, Esc closes the results (Esc in
// the box with no results showing empties it). This view owns #search-host.

import {describeError} from "./compose.js";
import {highlightParts, searchPath} from "./msgtools.js";
import {$, api, clear, clock, h, icon, nameWithHandleText} from "./ui.js";

const DEBOUNCE_MS = 250;
const PAGE = 20;

export class SearchView {
  /** `room`: the RoomPage (slug, state for channel labels, showMessage). */
  constructor(room) {
    this.room = room;
    this.timer = null;
    this.controller = null;
    this.query = "";
    this.nextOffset = null;
    this.generation = 0;
  }

  mount() {
    const host = $("#search-host");
    if (!host) return;
    this.input = h("input.search-input", {type: "search", id: "search-input", placeholder: "Search messages",
      "aria-label": "Search this story's messages", autocomplete: "off", spellcheck: "false", maxlength: "200",
      "aria-controls": "search-panel"});
    this.status = h("p.search-status", {id: "search-status", role: "status", "aria-live": "polite"});
    this.list = h("ol.search-results", {id: "search-results", "aria-label": "Search results"});
    this.more = h("button.btn.ghost.sm.search-more", {type: "button", hidden: true, onclick: () => this.run({append: true})},
      "More results");
    this.panel = h("div.search-panel", {id: "search-panel", hidden: true},
      h("div.search-panel-head", null, h("span.search-panel-title", null, "Messages"),
        h("button.icon-btn.search-close", {type: "button", "aria-label": "Close the search results",
          onclick: () => this.close({focus: true})}, "×")),
      this.status, this.list, this.more);
    this.form = h("form.search-form", {role: "search", "aria-label": "Search this story", onsubmit: (e) => {
      e.preventDefault();
      this.schedule(0);
    }}, h("span.search-icon", null, icon("search")), this.input);
    clear(host).append(this.form, this.panel);
    this.host = host;
    this.input.addEventListener("input", () => this.schedule(DEBOUNCE_MS));
    this.form.addEventListener("click", () => this.input.focus()); // a phone shows only the icon
    this.input.addEventListener("focus", () => {
      if (this.query && this.input.value.trim() === this.query && this.panel.hidden) this.open();
    });
    host.addEventListener("keydown", (e) => this.onKey(e));
    document.addEventListener("pointerdown", (e) => {
      if (!this.panel.hidden && !host.contains(e.target)) this.close();
    });
  }

  get isOpen() {
    return !!this.panel && !this.panel.hidden;
  }

  open() {
    this.panel.hidden = false;
    this.host.classList.add("open");
  }

  close({focus = false} = {}) {
    if (!this.panel) return;
    this.panel.hidden = true;
    this.host.classList.remove("open");
    if (focus) this.input.focus();
  }

  onKey(e) {
    const links = [...this.list.querySelectorAll(".search-hit")];
    const at = links.indexOf(document.activeElement);
    if (e.key === "Escape") {
      if (this.isOpen) {
        e.preventDefault();
        e.stopPropagation();
        this.close({focus: true});
      } else if (document.activeElement === this.input && this.input.value) {
        e.preventDefault();
        this.input.value = "";
        this.schedule(0);
      }
    } else if (e.key === "ArrowDown" && links.length && this.isOpen) {
      e.preventDefault();
      links[at < 0 ? 0 : Math.min(at + 1, links.length - 1)].focus();
    } else if (e.key === "ArrowUp" && at >= 0) {
      e.preventDefault();
      if (at === 0) this.input.focus();
      else links[at - 1].focus();
    }
  }

  /** A new query after `delay` ms; an empty box stops any search and closes the results. */
  schedule(delay) {
    clearTimeout(this.timer);
    const q = this.input.value.trim();
    if (!q) {
      this.abort();
      this.query = "";
      this.close();
      return;
    }
    this.timer = setTimeout(() => this.run(), delay);
  }

  abort() {
    this.generation += 1;
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  async run({append = false} = {}) {
    const q = append ? this.query : this.input.value.trim();
    const path = searchPath(q, this.room.slug, {offset: append ? this.nextOffset || 0 : 0, limit: PAGE});
    if (!path) return;
    this.abort();
    const generation = this.generation;
    const controller = new AbortController();
    this.controller = controller;
    this.query = q;
    if (!append) {
      clear(this.list);
      this.more.hidden = true;
    }
    this.host.classList.add("searching");
    this.status.className = "search-status";
    this.status.textContent = "Searching…";
    this.open();
    let page;
    try {
      page = await api("GET", path, undefined, {signal: controller.signal});
    } catch (error) {
      if (generation !== this.generation) return; // a newer query took over
      this.host.classList.remove("searching");
      this.status.className = "search-status error";
      this.status.textContent = `The search failed: ${describeError(error)}`;
      return;
    }
    if (generation !== this.generation) return;
    this.controller = null;
    this.host.classList.remove("searching");
    const results = page.results || [];
    for (const result of results) this.list.appendChild(this.item(result));
    this.nextOffset = page.next_offset;
    this.more.hidden = page.next_offset == null;
    const shown = this.list.children.length;
    this.status.textContent = shown ? `${shown}${page.next_offset != null ? "+" : ""} message${shown === 1 ? "" : "s"} found`
      : `No messages match “${q}”.`;
    this.status.classList.toggle("empty", !shown);
  }

  item(result) {
    const m = result.message || {};
    const ch = this.room.state.get(result.channel);
    const where = ch ? `${ch.info.kind === "inbox" ? "" : "#"}${this.room.state.channelLabel(ch)}` : `#${result.channel}`;
    const url = new URL(location.href);
    url.search = new URLSearchParams({channel: result.channel, message: m.id}).toString();
    url.hash = "";
    const snippet = h("span.search-snippet");
    for (const part of highlightParts(result.highlight)) snippet.append(part.mark ? h("mark", null, part.text) : part.text);
    const link = h("a.search-hit", {href: url.pathname + url.search, dataset: {id: m.id, channel: result.channel},
      onclick: (e) => {
        if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return; // a new tab: the link
        e.preventDefault();
        this.close();
        this.room.showMessage({id: m.id, channel: result.channel, seq: m.seq});
      }},
    h("span.search-meta", null, h("span.search-where", null, where), " · ",
      h("span.search-who", null, nameWithHandleText(m.sender)), " · ",
      h("time.search-time", {datetime: m.created_at}, clock(m.created_at))),
    snippet);
    return h("li.search-result", null, link);
  }
}
