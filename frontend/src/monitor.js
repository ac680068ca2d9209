// The agent monitor: every agent of the story with status, task, progress, last seen and messages
// per minute, live.
//
// Status comes from `agent.status` story events (and presence diffs of the room); connections from
// the room's presence; message rates from every readable channel, live, on top of the last five
// minutes the page was rendered with.

import {bindConnectionIndicator} from "./socket.js";
import {$, ago, avatar, clear, displayName, h, nameWithHandle, progressBar, statusBadge} from "./ui.js";

const RATE_WINDOW_MS = 60000;
const STATUSES = ["working", "waiting", "idle", "error", "offline"];

export class MonitorPage {
  constructor(config, socket) {
    this.config = config;
    this.socket = socket;
    this.slug = config.story.slug;
    this.agents = new Map();
    for (const a of config.agents) {
      this.agents.set(a.username, {
        ...a,
        connections: 0,
        times: (config.recent[a.username] || []).map((t) => Date.parse(t)),
        lastMessage: config.last_message[a.username] ? Date.parse(config.last_message[a.username]) : null,
      });
    }
    this.rows = new Map();
  }

  start() {
    bindConnectionIndicator(this.socket, $("#connection"), {open: "Live"});
    this.body = $("#monitor-body");
    this.socket.subscribe(`story:${this.slug}`, {}, (frame) => this.onStoryFrame(frame));
    for (const c of this.config.channels) {
      this.socket.subscribe(`channel:${this.slug}/${c.name}`, {after: c.last_seq}, (frame) => this.onChannelFrame(c, frame));
    }
    this.render();
    setInterval(() => this.tick(), 1000);
    window.mythline = {monitor: this, socket: this.socket};
  }

  onStoryFrame(frame) {
    if (frame.type !== "event") return;
    if (frame.event === "agent.status") this.update(frame.data);
    else if (frame.event === "participant.joined" && frame.data.kind === "agent") {
      fetch(`/api/stories/${this.slug}/presence`, {headers: {Accept: "application/json"}, credentials: "same-origin"})
        .then((r) => r.json()).then((state) => {
          for (const a of state.agents || []) this.update(a);
        }).catch(() => {});
    }
  }

  onChannelFrame(channel, frame) {
    if (frame.type === "message") {
      const m = frame.message;
      const agent = m.sender && this.agents.get(m.sender.username);
      if (agent) {
        const t = Date.parse(m.created_at) || Date.now();
        agent.times.push(t);
        agent.lastMessage = Math.max(agent.lastMessage || 0, t);
        agent.lastText = m;
        this.renderRow(agent);
        this.renderStats();
      }
    } else if (frame.type === "presence.state" && channel.name === this.config.room) {
      const live = new Map((frame.members || []).map((m) => [m.username, m]));
      for (const a of frame.agents || []) this.update(a, {render: false});
      for (const a of this.agents.values()) a.connections = live.has(a.username) ? live.get(a.username).connections : 0;
      this.render();
    } else if (frame.type === "presence.diff" && channel.name === this.config.room) {
      for (const m of frame.joins || []) this.setConnections(m.username, m.connections || 1);
      for (const m of frame.leaves || []) this.setConnections(m.username, 0);
      for (const m of frame.updates || []) {
        if (m.connections !== undefined) this.setConnections(m.username, m.connections);
        if (m.agent || m.status !== undefined) this.update({username: m.username, ...(m.agent || {}),
          ...(m.status !== undefined ? {status: m.status, task: m.task, progress: m.progress} : {})});
      }
    }
  }

  setConnections(username, n) {
    const a = this.agents.get(username);
    if (!a) return;
    a.connections = n;
    this.renderRow(a);
  }

  update(data, {render = true} = {}) {
    if (!data || !data.username) return;
    let a = this.agents.get(data.username);
    if (!a) {
      a = {username: data.username, kind: "agent", connections: 0, times: [], lastMessage: null, capabilities: []};
      this.agents.set(data.username, a);
      if (render) this.render();
    }
    for (const key of ["display_name", "description", "capabilities", "status", "task", "progress", "last_seen", "status_updated_at"]) {
      if (data[key] !== undefined) a[key] = data[key];
    }
    if (!data.last_seen && data.status !== undefined) a.last_seen = new Date().toISOString();
    if (render) {
      this.renderRow(a, {flash: true});
      this.renderStats();
    }
  }

  rate(a, now = Date.now()) {
    a.times = a.times.filter((t) => now - t < 5 * RATE_WINDOW_MS);
    return a.times.filter((t) => now - t < RATE_WINDOW_MS).length;
  }

  lastSeen(a) {
    const seen = a.last_seen ? Date.parse(a.last_seen) : 0;
    return Math.max(seen || 0, a.lastMessage || 0) || null;
  }

  render() {
    clear(this.body);
    this.rows.clear();
    const agents = [...this.agents.values()].sort((x, y) =>
      STATUSES.indexOf(x.status) - STATUSES.indexOf(y.status) || displayName(x).localeCompare(displayName(y)));
    if (!agents.length) {
      this.body.append(h("tr", null, h("td.muted", {colSpan: 7}, "No agents in this story yet.")));
    }
    for (const a of agents) this.renderRow(a);
    this.renderStats();
  }

  renderRow(a, {flash = false} = {}) {
    const now = Date.now();
    const seen = this.lastSeen(a);
    const rate = this.rate(a, now);
    const row = h("tr.agent-row", {dataset: {agent: a.username, status: a.status || "offline"}, class: flash ? "flash" : ""},
      h("td.agent-cell", {title: a.description || ""}, h("div.agent-id", null,
        h("span.avatar-wrap", null, avatar({...a, kind: "agent"}, "sm"), a.connections > 0 ? h("span.dot.dot-active", {title: "connected now"}) : null),
        h("div", null, h("div.agent-name", null, nameWithHandle(a))))),
      h("td.col-caps", {dataset: {col: "caps"}}, a.capabilities && a.capabilities.length
        ? h("div.caps", null, a.capabilities.map((c) => h("span.cap", null, c))) : h("span.muted", null, "—")),
      h("td.col-status", {dataset: {col: "status"}}, statusBadge(a.status)),
      h("td.col-task", {dataset: {col: "task"}}, a.task ? h("span", {title: a.task}, a.task) : h("span.muted", null, "—")),
      h("td.col-progress", {dataset: {col: "progress"}}, a.progress != null ? progressBar(a.progress) : h("span.muted", null, "—")),
      h("td.col-seen", {dataset: {col: "seen", at: seen ? String(seen) : ""}},
        a.connections > 0 ? h("span.live-now", null, "connected") : ago(seen, now)),
      h("td.num.col-rate", {dataset: {col: "rate"}}, h("span.rate", {class: rate ? "busy" : ""}, String(rate))));
    const old = this.rows.get(a.username);
    if (old && old.isConnected) old.replaceWith(row);
    else this.body.append(row);
    this.rows.set(a.username, row);
  }

  renderStats() {
    const host = $("#stats");
    if (!host) return;
    const agents = [...this.agents.values()];
    const count = (s) => agents.filter((a) => a.status === s).length;
    const now = Date.now();
    const total = agents.reduce((n, a) => n + this.rate(a, now), 0);
    const connected = agents.filter((a) => a.connections > 0).length;
    // Agents that post over REST hold no socket: "active" counts those that posted or reported in
    // the last five minutes, connected or not.
    const active = agents.filter((a) => a.connections > 0 || (a.last_seen && now - Date.parse(a.last_seen) < 300000)).length;
    clear(host).append(
      stat("Agents", agents.length, `${active} active · ${connected} listening live`),
      stat("Working", count("working"), "busy right now", "working"),
      stat("Waiting", count("waiting"), "blocked on someone", "waiting"),
      stat("Errors", count("error"), count("error") ? "need a look" : "all clear", count("error") ? "error" : ""),
      stat("Messages / min", total, "across readable channels"));
  }

  tick() {
    const now = Date.now();
    for (const a of this.agents.values()) {
      const row = this.rows.get(a.username);
      if (!row) continue;
      const seenCell = row.querySelector('[data-col="seen"]');
      if (seenCell && !(a.connections > 0)) seenCell.textContent = ago(this.lastSeen(a), now);
      const rateEl = row.querySelector(".rate");
      const rate = this.rate(a, now);
      if (rateEl && rateEl.textContent !== String(rate)) {
        rateEl.textContent = String(rate);
        rateEl.classList.toggle("busy", rate > 0);
      }
    }
    if (now % 5000 < 1000) this.renderStats();
  }
}

function stat(label, value, sub, tone = "") {
  return h("div.stat", {class: tone ? `tone-${tone}` : ""}, h("div.stat-label", null, label),
    h("div.stat-value", null, String(value)), h("div.stat-sub.muted.small", null, sub));
}
