// The writers' room: the story's crew of agents (a showrunner, a narrator...), in a dialog opened
// from "Writers' room" under the story's title.
//
//   const crew = new CrewPanel({slug, indicator});
//   crew.load();                 // the crew, through the REST API (again after a reconnect)
//   crew.open(opener);           // a modal <dialog>: Esc closes it, focus returns to the opener
//   crew.onEvent(data);          // a crew.updated story event: the panel and the indicator follow
//
// With no crew, the owner (can_manage) picks the roles (the required ones always come) and adds it;
// others read "No crew in this story". With a crew: each agent with its role, and for those who may
// (can_pause: human editors and the owner) a pause/resume per agent and for the whole crew; the
// owner may remove the crew (its agents stay participants). `indicator` (an element) is shown while
// the crew is paused.

import {describeError} from "./compose.js";
import {api, avatar, clear, h, nameWithHandle, toast} from "./ui.js";

function list(value) {
  return Array.isArray(value) ? value.filter((v) => v && typeof v === "object") : [];
}

export class CrewPanel {
  constructor({slug, indicator = null}) {
    this.slug = slug;
    this.indicator = indicator;
    this.crew = null;
    this.loaded = false;
    this.busy = false;
    this.errorEl = h("p.form-error.small", {id: "crew-error", role: "alert", hidden: true});
    this.statusEl = h("p.muted.small", {id: "crew-status", role: "status"});
    this.bodyEl = h("div.crew-body", {id: "crew-body"});
    this.el = h("dialog.members-dialog.crew-dialog", {id: "crew-dialog", "aria-labelledby": "crew-title"},
      h("div.dialog-head", null,
        h("h2", {id: "crew-title"}, "Writers' room"),
        h("button.icon-btn", {type: "button", "aria-label": "Close", onclick: () => this.close()}, "×")),
      h("p.muted.small", null, "The story's crew of agents: who plans, who writes, who checks. Pause them to write undisturbed."),
      this.errorEl, this.statusEl, this.bodyEl);
    this.el.addEventListener("close", () => {
      if (this.opener && document.contains(this.opener)) this.opener.focus();
    });
    document.body.appendChild(this.el);
  }

  get hasCrew() {
    return Boolean(this.crew && this.crew.enabled);
  }

  async load() {
    try {
      this.set(await api("GET", `/api/stories/${this.slug}/crew`));
      this.showError(null);
    } catch (error) {
      this.showError(error);
      this.render();
    }
  }

  set(crew) {
    if (!crew || typeof crew !== "object") return;
    // An answer or event older than what is shown (a crew's version grows with each change; a
    // removed crew is version 0 and always taken).
    if (this.crew && this.crew.enabled && crew.enabled && Number(crew.version) < Number(this.crew.version)) return;
    // An event carries no rights: keep the ones the last answer gave.
    const rights = this.crew ? {can_manage: this.crew.can_manage, can_pause: this.crew.can_pause} : {};
    this.crew = {...rights, ...crew};
    this.loaded = true;
    this.render();
  }

  /** A `crew.updated` event of the story topic. */
  onEvent(data) {
    this.set(data);
  }

  async open(opener = document.activeElement) {
    this.opener = opener;
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
    const paused = this.hasCrew && Boolean(this.crew.paused);
    if (this.indicator) this.indicator.hidden = !paused;
    const focusId = this.el.contains(document.activeElement) ? document.activeElement.id : null;
    clear(this.bodyEl);
    if (!this.loaded) {
      this.statusEl.textContent = "Loading…";
      return;
    }
    const crew = this.crew;
    if (!this.hasCrew) {
      this.statusEl.textContent = "No crew in this story.";
      if (crew.can_manage) this.bodyEl.append(this.addForm());
    } else {
      const agents = list(crew.agents);
      this.statusEl.textContent = paused ? "The crew is paused: its agents wait until you resume it."
        : `The crew is at work: ${agents.length} agent${agents.length === 1 ? "" : "s"}.`;
      this.bodyEl.append(h("ul.member-list.crew-agents", {id: "crew-agents", "aria-label": "The crew"},
        agents.map((a) => this.agentItem(a))));
      const actions = h("div.row.bible-actions", {style: {"margin-top": "12px"}});
      if (crew.can_pause) {
        actions.append(h("button.btn.sm", {type: "button", id: "crew-pause", disabled: this.busy,
          onclick: () => this.patch({paused: !paused})}, paused ? "Resume the crew" : "Pause the crew"));
      }
      const fork = crew.writes_to === "fork";
      this.bodyEl.append(h("p.muted.small", {id: "crew-writes-to"}, "It writes in ",
        h("code", null, fork ? "crew-draft" : "main"), fork ? " (its own fork of main)." : "."));
      if (crew.can_manage) {
        actions.append(h("button.btn.ghost.sm", {type: "button", id: "crew-writes-toggle", disabled: this.busy,
          onclick: () => this.write("POST", {roles: (Array.isArray(crew.roles) ? crew.roles : []).map(String),
            writes_to: fork ? "main" : "fork"},
            fork ? "The crew writes in main." : "The crew writes in its own draft.")},
          fork ? "Write in main" : "Write in its own draft"));
        actions.append(h("button.btn.ghost.sm", {type: "button", id: "crew-remove", disabled: this.busy,
          onclick: () => this.remove()}, "Remove the crew"));
      }
      if (actions.childNodes.length) this.bodyEl.append(actions);
    }
    if (focusId && !this.el.contains(document.activeElement)) {
      const again = document.getElementById(focusId);
      if (again && this.el.contains(again) && !again.disabled) again.focus();
    }
  }

  agentItem(agent) {
    const username = String(agent.username || "");
    const name = String(agent.display_name || username);
    const agentPaused = Boolean(agent.paused) || Boolean(this.crew.paused);
    return h("li.member.crew-agent", {dataset: {user: username, paused: String(Boolean(agent.paused))}},
      avatar({username, display_name: name, kind: "agent"}, "sm"),
      h("span.member-name", null, nameWithHandle({username, display_name: name}), " ",
        h("span.pill.crew-role", null, String(agent.role || "")), " ",
        h("span.muted.small.crew-state", null, agentPaused ? "paused" : "active")),
      this.crew.can_pause ? h("span.member-controls", null,
        h("button.btn.ghost.sm", {type: "button", id: `crew-toggle-${username}`, dataset: {act: "toggle"},
          disabled: this.busy || Boolean(this.crew.paused),
          title: this.crew.paused ? "The whole crew is paused" : null,
          "aria-label": `${agent.paused ? "Resume" : "Pause"} ${name}`,
          onclick: () => this.patch({agent: username, paused: !agent.paused})}, agent.paused ? "Resume" : "Pause")) : null);
  }

  addForm() {
    const roles = list(this.crew.available_roles);
    const boxes = roles.map((r) => {
      const role = String(r.role || "");
      const box = h("input", {type: "checkbox", name: "role", value: role, id: `crew-role-${role}`,
        checked: true, disabled: Boolean(r.required)});
      return h("li.crew-role-choice", {style: {margin: "6px 0"}},
        h("label", {style: {display: "flex", gap: "8px", "align-items": "flex-start"}}, box,
          h("span", null, h("strong", null, String(r.display_name || role)), " ",
            h("span.pill", null, role), r.required ? h("span.muted.small", null, " (always part of the crew)") : null,
            r.description ? h("span.muted.small", {style: {display: "block"}}, String(r.description)) : null)));
    });
    const submit = h("button.btn.sm", {type: "submit", id: "crew-add", disabled: this.busy}, "Add the crew");
    return h("form.crew-add-form", {id: "crew-add-form", onsubmit: async (e) => {
      e.preventDefault();
      const chosen = [...e.currentTarget.querySelectorAll("input[name=role]")]
        .filter((box) => box.checked).map((box) => box.value);
      const fork = e.currentTarget.querySelector("#crew-writes-fork").checked;
      await this.write("POST", {roles: chosen, writes_to: fork ? "fork" : "main"}, "The crew is in the story.");
    }},
    h("fieldset.bible-fieldset", null, h("legend", null, "Roles"),
      h("ul", {style: {"list-style": "none", margin: "0", padding: "0"}}, boxes)),
    h("label", {style: {display: "flex", gap: "8px", "margin-top": "10px"}},
      h("input", {type: "checkbox", id: "crew-writes-fork"}),
      h("span", null, "Write in the crew's own draft (", h("code", null, "crew-draft"), ", a fork of ",
        h("code", null, "main"), "), not in ", h("code", null, "main"))),
    h("div.row", {style: {"margin-top": "10px"}}, submit));
  }

  patch(body) {
    const what = body.agent ? (body.paused ? "Paused." : "Resumed.")
      : body.paused ? "The crew is paused." : "The crew is back at work.";
    return this.write("PATCH", body, what);
  }

  async remove() {
    if (!window.confirm("Remove the crew from this story? Its agents stay participants, but stop working as a crew.")) return;
    await this.write("DELETE", undefined, "The crew was removed.");
  }

  async write(method, body, done) {
    // The buttons are disabled meanwhile: the focus comes back to the one pressed (or its twin).
    const focusId = this.el.contains(document.activeElement) ? document.activeElement.id : null;
    this.busy = true;
    this.render();
    try {
      const answer = await api(method, `/api/stories/${this.slug}/crew`, body);
      this.busy = false;
      this.showError(null);
      if (answer) this.set(answer);
      else await this.load();
      toast(done);
    } catch (error) {
      this.busy = false;
      this.showError(error);
      this.render();
    }
    const again = focusId && document.getElementById(focusId);
    if (again && this.el.contains(again) && !again.disabled) again.focus();
    else if (this.el.open && !this.el.contains(document.activeElement)) {
      const first = this.el.querySelector(".crew-body button:not([disabled]), .crew-body input:not([disabled])");
      (first || this.el.querySelector("button")).focus();
    }
  }
}
