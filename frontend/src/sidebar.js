// The room's sidebar (issue #16): the channels grouped by kind (roomstate.js's channelGroups), their
// unread badges, an inbox's agent status, and the form that creates a channel. The room (room.js)
// owns the state and the socket; this view owns #channel-groups.

import {describeError} from "./compose.js";
import {KIND_GROUPS} from "./roomstate.js";
import {$, api, clear, h, icon, labelled, NAME_PATTERN, NAME_RE, NAME_RULE} from "./ui.js";

/** The icon of a channel kind (its sidebar group's). */
export function iconFor(kind) {
  const group = KIND_GROUPS.find((g) => g.kind === kind);
  return icon(group ? group.icon : "hash");
}

export class SidebarView {
  /** `room`: the RoomPage (its state, config, slug, select, showPane and upsertChannel). */
  constructor(room) {
    this.room = room;
    this.state = room.state;
    this.newChannelForm = null;
  }

  render() {
    const nav = $("#channel-groups");
    clear(nav);
    for (const group of this.state.channelGroups()) {
      const head = h("div.group-head", null, h("span", null, group.title));
      if (group.kind === "public" && this.room.config.can_write) {
        head.append(h("button.icon-btn.on-dark", {type: "button", id: "new-channel", title: "Create a channel",
          "aria-label": "Create a channel", onclick: () => this.showNewChannel()}, "+"));
      }
      nav.append(h("section.chan-group", {dataset: {kind: group.kind}}, head,
        h("ul", null, group.channels.map((c) => this.channelItem(c, iconFor(c.info.kind))))));
    }
    const archived = this.state.archivedChannels();
    if (archived.length) {
      const details = h("details.chan-group.archived", {open: this.state.open && this.state.open.archived},
        h("summary.group-head", null, `Archived (${archived.length})`),
        h("ul", null, archived.map((c) => this.channelItem(c, iconFor(c.info.kind)))));
      nav.append(details);
    }
    if (this.newChannelForm) nav.prepend(this.newChannelForm);
  }

  channelItem(ch, glyph) {
    const active = this.state.open === ch;
    let status = null;
    if (ch.info.kind === "inbox") {
      const agent = this.state.inboxAgent(ch);
      if (agent) status = h(`span.mini-status.status-${agent.status || "offline"}`, {title: agent.status || "offline"});
    }
    const unread = h("span.unread", {hidden: !ch.unread || active}, String(ch.unread));
    return h("li", null, h("a.chan", {href: `?channel=${encodeURIComponent(ch.name)}`,
      class: [active ? "active" : "", ch.unread && !active ? "has-unread" : "", ch.info.readable ? "" : "writeonly"].filter(Boolean).join(" "),
      dataset: {channel: ch.name}, "aria-current": active ? "page" : null,
      onclick: (e) => {
        e.preventDefault();
        this.room.select(ch.name);
        this.room.showPane("chat");
      }}, h("span.chan-icon", null, glyph), h("span.chan-name", null, this.state.channelLabel(ch)), status, unread));
  }

  renderUnread(ch) {
    const el = document.querySelector(`.chan[data-channel="${CSS.escape(ch.name)}"]`);
    if (!el) return;
    const badge = el.querySelector(".unread");
    const show = this.state.showsUnread(ch);
    badge.hidden = !show;
    badge.textContent = String(ch.unread);
    el.classList.toggle("has-unread", show);
  }

  showNewChannel() {
    if (this.newChannelForm) {
      this.newChannelForm.querySelector("input").focus();
      return;
    }
    const name = h("input", {name: "name", placeholder: "name, e.g. scene-4", required: true, autocomplete: "off",
      pattern: NAME_PATTERN, title: NAME_RULE});
    const kind = h("select", {name: "kind"},
      h("option", {value: "public"}, "Public"), h("option", {value: "private"}, "Private"), h("option", {value: "presence"}, "Room (presence)"));
    const topic = h("input", {name: "topic", placeholder: "optional", autocomplete: "off"});
    const error = h("div.form-error.small", {hidden: true});
    const close = () => {
      this.newChannelForm = null;
      this.render();
    };
    const form = h("form.new-channel", {id: "new-channel-form", onsubmit: async (e) => {
      e.preventDefault();
      if (!NAME_RE.test(name.value.trim().toLowerCase())) {
        error.textContent = NAME_RULE;
        error.hidden = false;
        name.focus();
        return;
      }
      try {
        const info = await api("POST", `/api/stories/${this.room.slug}/channels`,
          {name: name.value.trim().toLowerCase(), kind: kind.value, ...(topic.value.trim() ? {topic: topic.value.trim()} : {})});
        this.newChannelForm = null;
        this.room.upsertChannel({...info, can_manage: true});
        this.room.select(info.name);
      } catch (err) {
        error.textContent = describeError(err);
        error.hidden = false;
      }
    }}, h("div.new-channel-title", null, "New channel"), labelled("Name", name), labelled("Who reads it", kind),
    labelled("Topic", topic), error,
    h("div.row", null, h("button.btn.sm", {type: "submit"}, "Create"), h("button.btn.ghost.sm.on-dark", {type: "button", onclick: close}, "Cancel")));
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") close();
    });
    this.newChannelForm = form;
    this.render();
    name.focus();
  }

  /** The buttons at the sidebar's head that open the room's dialogs. */
  addHeadButtons({members, bible, outline, crew}) {
    const head = $(".sidebar-head");
    const config = this.room.config;
    if (config.role) {
      head.append(h("button.btn.ghost.sm.on-dark.members-button", {type: "button", id: "members-button",
        onclick: (e) => members.open(e.currentTarget)}, config.is_owner ? "Members and invites" : "Members"));
    }
    head.append(h("button.btn.ghost.sm.on-dark.bible-button", {type: "button", id: "bible-button",
      onclick: (e) => bible.open(e.currentTarget)}, "Story bible"));
    head.append(h("button.btn.ghost.sm.on-dark.bible-button", {type: "button", id: "outline-button",
      onclick: (e) => outline.open(e.currentTarget)}, "Outline"));
    head.append(h("button.btn.ghost.sm.on-dark.bible-button", {type: "button", id: "crew-button",
      onclick: (e) => crew.open(e.currentTarget)}, "Writers' room"));
  }
}
