// The story's members: who takes part (people and agents, with their roles), and for the owner the
// ways in: add someone by username, or share an invite link with a role and an expiry. Every change
// goes through the same REST endpoints as any client (so open connections follow at once).
//
//   const members = new MembersDialog({slug, me, isOwner});
//   members.open();      // a modal <dialog>: Esc closes it, focus returns to the opener
//   members.refresh();   // after a participant.* story event

import {describeError} from "./compose.js";
import {api, avatar, clear, h, nameWithHandle, toast} from "./ui.js";

const ROLES = [["editor", "Editor: writes and posts"], ["viewer", "Viewer: reads only"]];
const EXPIRIES = [[24, "1 day"], [168, "7 days"], [720, "30 days"]];

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

function roleSelect(value, label, onchange = null) {
  return h("select", {"aria-label": label, onchange},
    ROLES.map(([role, text]) => h("option", {value: role, selected: role === value}, text)));
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString([], {dateStyle: "medium", timeStyle: "short"}) : "";
}

export class MembersDialog {
  constructor({slug, me, isOwner}) {
    this.slug = slug;
    this.me = me;
    this.isOwner = isOwner;
    this.participants = [];
    this.invites = [];
    this.listEl = h("ul.member-list", {id: "member-list", "aria-label": "Members"});
    this.invitesEl = h("div.invite-list", {id: "invite-list"});
    this.errorEl = h("p.form-error.small", {role: "alert", hidden: true});
    this.el = h("dialog.members-dialog", {id: "members-dialog", "aria-labelledby": "members-title"},
      h("div.dialog-head", null,
        h("h2", {id: "members-title"}, "Members"),
        h("button.icon-btn", {type: "button", "aria-label": "Close", onclick: () => this.close()}, "×")),
      this.errorEl, this.listEl,
      isOwner ? this.addForm() : null,
      isOwner ? h("section.invites", {"aria-labelledby": "invites-title"},
        h("h3", {id: "invites-title"}, "Invite links"),
        h("p.muted.small", null, "Anyone signed in who opens a link joins with its role, until it expires or you revoke it."),
        this.inviteForm(), this.invitesEl) : null);
    this.el.addEventListener("close", () => {
      if (this.opener && document.contains(this.opener)) this.opener.focus();
    });
    document.body.appendChild(this.el);
  }

  async open(opener = document.activeElement) {
    this.opener = opener;
    if (!this.el.open) this.el.showModal();
    await this.refresh();
  }

  close() {
    if (this.el.open) this.el.close();
  }

  showError(error) {
    this.errorEl.textContent = error ? describeError(error) : "";
    this.errorEl.hidden = !error;
  }

  async refresh() {
    try {
      this.participants = await allPages(`/api/stories/${this.slug}/participants`);
      if (this.isOwner) this.invites = await allPages(`/api/stories/${this.slug}/invites`);
      this.showError(null);
    } catch (error) {
      this.showError(error);
    }
    this.render();
  }

  render() {
    clear(this.listEl);
    const order = {owner: 0, editor: 1, viewer: 2};
    const sorted = [...this.participants].sort((a, b) =>
      (a.kind === "agent") - (b.kind === "agent") || order[a.role] - order[b.role] || a.username.localeCompare(b.username));
    for (const p of sorted) this.listEl.append(this.row(p));
    if (this.isOwner) this.renderInvites();
  }

  row(p) {
    const mine = p.username === this.me.username;
    let controls;
    if (p.role === "owner") {
      controls = h("span.pill", null, "owner");
    } else if (this.isOwner) {
      controls = h("span.member-controls", null,
        roleSelect(p.role, `Role of @${p.username}`, (e) => this.setRole(p.username, e.target.value)),
        h("button.btn.ghost.sm", {type: "button", dataset: {remove: p.username},
          onclick: () => this.remove(p.username)}, "Remove"));
    } else {
      controls = h("span.member-controls", null, h("span.pill", null, p.role),
        mine ? h("button.btn.ghost.sm", {type: "button", id: "leave-story", onclick: () => this.remove(p.username)},
          "Leave story") : null);
    }
    return h("li.member", {dataset: {user: p.username, role: p.role, kind: p.kind}},
      avatar(p, "sm"),
      h("span.member-name", null, nameWithHandle(p), " ", p.kind === "agent" ? h("span.pill.small", null, "agent") : null,
        mine ? h("span.muted.small", null, " (you)") : null),
      controls);
  }

  addForm() {
    const username = h("input", {name: "username", id: "add-username", required: true, autocomplete: "off",
      placeholder: "username", pattern: "[A-Za-z0-9@.+_\\-]{1,150}", "aria-describedby": "add-help"});
    const role = roleSelect("editor", "Role");
    const form = h("form.add-member", {id: "add-member", onsubmit: async (e) => {
      e.preventDefault();
      const name = username.value.trim().replace(/^@/, "");
      if (!name) return;
      try {
        const p = await api("POST", `/api/stories/${this.slug}/participants`, {username: name, role: role.value});
        username.value = "";
        toast(`@${p.username} is now ${p.role === "editor" ? "an editor" : "a viewer"}.`);
        await this.refresh();
      } catch (error) {
        this.showError(error);
      }
    }},
    h("label", {for: "add-username"}, "Add by username"),
    h("div.row", null, username, role, h("button.btn.sm", {type: "submit"}, "Add")),
    h("p.muted.small", {id: "add-help"}, "They see the story at once; open rooms update without a reload."));
    return form;
  }

  inviteForm() {
    const role = roleSelect("viewer", "Role for the link");
    const expiry = h("select", {"aria-label": "Link expires after"},
      EXPIRIES.map(([hours, text]) => h("option", {value: hours, selected: hours === 168}, text)));
    this.createdEl = h("div.invite-created", {id: "invite-created", hidden: true});
    return h("form.invite-form", {id: "invite-form", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const invite = await api("POST", `/api/stories/${this.slug}/invites`,
          {role: role.value, expires_in_hours: Number(expiry.value)});
        this.showCreated(invite);
        await this.refresh();
      } catch (error) {
        this.showError(error);
      }
    }}, h("div.row", null, role, expiry, h("button.btn.sm", {type: "submit"}, "Create link")), this.createdEl);
  }

  showCreated(invite) {
    const url = new URL(invite.url, location.origin).href;
    const field = h("input", {id: "invite-url", value: url, readonly: true, "aria-label": "Invite link", onfocus: (e) => e.target.select()});
    clear(this.createdEl);
    this.createdEl.hidden = false;
    this.createdEl.append(
      h("p.small", null, `A link for ${invite.role}s, until ${when(invite.expires_at)}. It is shown only now: copy it.`),
      h("div.row", null, field, h("button.btn.sm", {type: "button", onclick: async () => {
        try {
          await navigator.clipboard.writeText(url);
          toast("Link copied.");
        } catch {
          field.select();
          toast("Select the link and copy it (Ctrl+C).");
        }
      }}, "Copy")));
    field.focus();
  }

  renderInvites() {
    clear(this.invitesEl);
    const live = this.invites.filter((i) => i.state === "live");
    if (!live.length) {
      this.invitesEl.append(h("p.muted.small", null, "No live links."));
      return;
    }
    this.invitesEl.append(h("ul", null, live.map((i) => h("li.invite", {dataset: {invite: String(i.id)}},
      h("span", null, `${i.prefix}… · ${i.role} · until ${when(i.expires_at)} · used ${i.uses}×`),
      h("button.btn.ghost.sm", {type: "button", onclick: () => this.revoke(i)}, "Revoke")))));
  }

  async setRole(username, role) {
    try {
      await api("POST", `/api/stories/${this.slug}/participants`, {username, role});
      toast(`@${username} is now ${role === "editor" ? "an editor" : "a viewer"}.`);
      await this.refresh();
    } catch (error) {
      this.showError(error);
    }
  }

  async remove(username) {
    const leaving = username === this.me.username;
    const question = leaving ? "Leave this story? You will need a new invite to come back if it is private."
      : `Remove @${username} from the story? They lose access at once.`;
    if (!window.confirm(question)) return;
    try {
      await api("DELETE", `/api/stories/${this.slug}/participants/${encodeURIComponent(username)}`);
      if (leaving) {
        location.href = "/";
        return;
      }
      toast(`@${username} was removed.`);
      await this.refresh();
    } catch (error) {
      this.showError(error);
    }
  }

  async revoke(invite) {
    try {
      await api("DELETE", `/api/stories/${this.slug}/invites/${invite.id}`);
      toast("Link revoked: it no longer lets anyone in.");
      await this.refresh();
    } catch (error) {
      this.showError(error);
    }
  }
}
