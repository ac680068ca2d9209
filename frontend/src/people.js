// The room's people list (issue #16): who is in the room (with their state and whether they are
// typing) and the story's agents (status, task, progress). Who they are comes from roomstate.js
// (presence frames, agent status events); this view owns #people-body and #people-count.

import {$, ago, api, avatar, clear, h, nameWithHandle, progressBar, statusBadge} from "./ui.js";

export class PeopleView {
  /** `state`: the room's RoomState; `me`: the reader; `onAgents`: an agent changed (the sidebar shows
   * the inboxes' agents). */
  constructor({state, me, slug, onAgents}) {
    this.state = state;
    this.me = me;
    this.slug = slug;
    this.onAgents = onAgents;
  }

  /** A presence frame of the room channel. */
  onPresence(frame) {
    if (this.state.applyPresence(frame)) this.onAgents();
    this.render();
  }

  /** An agent's status event (or an agent the story gained). */
  updateAgent(data) {
    if (!this.state.updateAgent(data)) return;
    this.render();
    this.onAgents();
  }

  /** An agent joined the story: the agents again from the presence API. */
  async refreshAgents(joined) {
    // The presence API answers those who read the room (as the room channel does); a reader of a
    // public story outside the room takes the agent from the event (its status comes live).
    if (!this.state.channels.has("room")) {
      if (joined) this.updateAgent({username: joined.username, display_name: joined.display_name});
      return;
    }
    try {
      const state = await api("GET", `/api/stories/${this.slug}/presence`);
      for (const a of state.agents || []) this.updateAgent(a);
    } catch {
      // the next presence frame will do
    }
  }

  render() {
    const body = $("#people-body");
    if (!body) return;
    const state = this.state;
    const typingNow = new Set(state.typingIn(state.open && state.open.name).map((u) => u.username));
    const {humans, agents} = state.people();
    clear(body);
    const online = h("div.people-group", null, h("h4.group-title", null, "Online", h("span.count", null, String(humans.length))));
    if (!humans.length) {
      online.append(h("p.muted.small.people-empty", null, state.presenceKnown ? "Nobody else is here." :
        state.channels.has("room") ? "Connecting…" : "Join the story to see who is here."));
    }
    for (const m of humans) {
      const typing = m.typing || typingNow.has(m.username);
      const presence = m.state || "active";
      online.append(h("div.person", {dataset: {user: m.username, state: presence, kind: "human"}},
        h("span.avatar-wrap", null, avatar(m, "sm"), h(`span.dot.dot-${presence}`, {title: presence})),
        h("div.person-main", null,
          h("div.person-name", null, nameWithHandle(m), m.username === this.me.username ? h("span.you", null, " (you)") : null),
          h("div.person-sub", null, typing ? h("span.typing-label", null, "typing…") : h(`span.state.state-${presence}`, null, presence),
            m.connections > 1 ? h("span.muted", null, ` · ${m.connections} tabs`) : null))));
    }
    body.append(online);
    const group = h("div.people-group", null, h("h4.group-title", null, "Agents", h("span.count", null, String(agents.length))));
    if (!agents.length) group.append(h("p.muted.small.people-empty", null, "No agents in this story yet."));
    for (const a of agents) {
      const connected = a.connections > 0;
      group.append(h("div.person.agent", {dataset: {user: a.username, status: a.status || "offline", kind: "agent"}},
        h("span.avatar-wrap", null, avatar({...a, kind: "agent"}, "sm"), connected ? h("span.dot.dot-active", {title: "connected"}) : null),
        h("div.person-main", null,
          h("div.person-name", null, nameWithHandle(a), " ", statusBadge(a.status)),
          a.task ? h("div.person-sub.task", {title: a.task}, a.task) : h("div.person-sub.muted", null, a.last_seen ? `seen ${ago(a.last_seen)}` : "not seen yet"),
          a.progress != null ? progressBar(a.progress) : null)));
    }
    body.append(group);
    $("#people-count").textContent = `${humans.length} online · ${agents.length} agent${agents.length === 1 ? "" : "s"}`;
  }
}
