// The bell in the top bar of every signed-in page (issue #17): the unread count, and a panel of
// the user's notifications, newest first (who, what: "mentioned you in #general", the excerpt,
// how long ago; unread ones marked). Following one marks it read (POST /api/notifications/read)
// and opens its message (`?channel=…&message=…`, as the room's search results do; in the room of
// the same story, room.showMessage, without reloading). "Mark all read" marks them all.
//
// Live: the page's socket subscribes to `notifications:<username>` (the room's and the monitor's
// own socket; the lobby opens one). `notification` adds one, `notifications.read` (from this page
// or another of the user's tabs) marks read; both carry the unread count, which is always the
// server's. Every `subscribed` (the first and each after a reconnect, which replays nothing on
// this topic) reads the first page again (GET /api/notifications). The pure part is notiflist.js.
//
// The template gives the host (`#notif`, templates/_notifications.html) with the username; this
// view owns everything in it.

import {describeError} from "./compose.js";
import {badgeText, bellLabel, kindWording, NotificationFeed, notificationHref} from "./notiflist.js";
import {MythlineSocket} from "./socket.js";
import {ago, api, avatar, clear, h, nameWithHandle} from "./ui.js";

const PAGE = 20;
const MARK_READ_WAIT_MS = 3000;
const CLOCK_MS = 30000;

function bellIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon icon-bell");
  svg.setAttribute("aria-hidden", "true");
  for (const d of ["M6 16V11a6 6 0 0 1 12 0v5l1.5 2h-15z", "M10 20.5a2 2 0 0 0 4 0"]) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.appendChild(path);
  }
  return svg;
}

export class NotificationBell {
  /** `socket`: the page's MythlineSocket; `username`: whose feed; `room`: the RoomPage when the
   * page is a story's room (a notification of the same story opens in place). */
  constructor({socket, username, room = null}) {
    this.socket = socket;
    this.username = username;
    this.room = room;
    this.feed = new NotificationFeed();
    this.framesSinceLoad = 0;
    this.loading = null;
    this.clockTimer = null;
  }

  mount(host) {
    this.host = host;
    this.count = h("span.notif-count", {id: "notif-count", "aria-hidden": "true", hidden: true});
    this.bell = h("button.notif-bell", {type: "button", id: "notif-bell", "aria-expanded": "false",
      "aria-controls": "notif-panel", "aria-label": bellLabel(0), title: "Notifications",
      onclick: () => (this.panel.hidden ? this.open() : this.close())}, bellIcon(), this.count);
    this.markAll = h("button.btn.ghost.sm", {type: "button", id: "notif-mark-all", disabled: true,
      onclick: () => this.markAllRead()}, "Mark all read");
    this.status = h("p.notif-status", {id: "notif-status"});
    this.list = h("ul.notif-list", {id: "notif-list", "aria-label": "Your notifications"});
    this.more = h("button.btn.ghost.sm.notif-more", {type: "button", hidden: true, onclick: () => this.loadOlder()},
      "Show older");
    this.panel = h("div.notif-panel", {id: "notif-panel", role: "region", "aria-label": "Notifications", hidden: true},
      h("div.notif-head", null, h("h2.notif-title", null, "Notifications"), this.markAll),
      this.status, this.list, this.more);
    // Screen readers hear a new notification (the bell's name changes silently).
    this.live = h("span.visually-hidden", {id: "notif-live", role: "status", "aria-live": "polite"});
    clear(host).append(this.bell, this.panel, this.live);
    host.hidden = false;
    host.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this.panel.hidden) {
        e.preventDefault();
        e.stopPropagation();
        this.close({focus: true});
      }
    });
    document.addEventListener("pointerdown", (e) => {
      if (!this.panel.hidden && !host.contains(e.target)) this.close();
    });
    this.render();
  }

  start() {
    this.sub = this.socket.subscribe(`notifications:${this.username}`, {}, (frame) => this.onFrame(frame));
    this.reload();
  }

  onFrame(frame) {
    switch (frame.type) {
      case "subscribed":
        if (typeof frame.unread === "number") this.feed.unread = frame.unread;
        if (this.subscribedOnce) this.reload(); // a reconnect replays nothing here: read it again
        this.subscribedOnce = true;
        this.render();
        break;
      case "notification": {
        this.framesSinceLoad += 1;
        const isNew = this.feed.add(frame);
        this.render();
        if (isNew && frame.notification) this.announce(frame.notification);
        break;
      }
      case "notifications.read":
        this.framesSinceLoad += 1;
        this.feed.onRead(frame);
        this.render();
        break;
      default:
        break;
    }
  }

  /** Reads the first page; once more if frames came meanwhile (whose count is then the newer one). */
  reload() {
    if (this.loading) {
      this.reloadAgain = true;
      return this.loading;
    }
    this.framesSinceLoad = 0;
    this.loading = api("GET", `/api/notifications?limit=${PAGE}`).then((page) => {
      this.feed.load(page);
      this.error = null;
    }).catch((error) => {
      this.error = describeError(error);
    }).finally(() => {
      this.loading = null;
      const again = this.reloadAgain || this.framesSinceLoad > 0;
      this.reloadAgain = false;
      this.render();
      if (again && !this.reloadedTwice) {
        this.reloadedTwice = true;
        this.reload();
      } else {
        this.reloadedTwice = false;
      }
    });
    return this.loading;
  }

  async loadOlder() {
    if (!this.feed.next) return;
    const url = new URL(this.feed.next, location.href);
    this.more.disabled = true;
    try {
      this.feed.load(await api("GET", url.pathname + url.search), {older: true});
    } catch (error) {
      this.error = describeError(error);
    }
    this.more.disabled = false;
    this.render();
  }

  announce(n) {
    this.live.textContent = `New notification: ${n.actor ? `${n.actor.display_name || n.actor.username} ` : ""}${kindWording(n)}.`;
  }

  // --- drawing ---------------------------------------------------------------------------------

  render() {
    if (!this.bell) return;
    const unread = this.feed.unread;
    this.bell.setAttribute("aria-label", bellLabel(unread));
    this.bell.classList.toggle("has-unread", unread > 0);
    this.count.textContent = badgeText(unread);
    this.count.hidden = unread === 0;
    this.host.dataset.unread = String(unread);
    if (this.panel.hidden) return;
    this.markAll.disabled = unread === 0;
    const items = this.feed.sorted();
    this.status.textContent = this.error ? `Notifications could not be read: ${this.error}`
      : !this.feed.loaded ? "Loading…" : items.length ? "" : "No notifications yet. You are told here when someone mentions you, replies to you, or decides in a story you own.";
    this.status.classList.toggle("error", !!this.error);
    this.status.hidden = !this.status.textContent;
    clear(this.list).append(...items.map((n) => this.item(n)));
    this.more.hidden = !this.feed.next;
  }

  item(n) {
    const unread = !n.read_at;
    const href = notificationHref(n);
    const who = n.actor ? [h("span.notif-actor", null, nameWithHandle(n.actor)), " "] : [];
    const body = [
      n.actor ? avatar(n.actor, "sm") : h("span.notif-glyph", {"aria-hidden": "true"}, "!"),
      h("span.notif-text", null,
        h("span.notif-line", null, who, kindWording(n)),
        n.excerpt ? h("span.notif-excerpt", null, n.excerpt) : null,
        h("span.notif-meta", null, h("time.notif-time", {datetime: n.created_at, title: n.created_at}, ago(n.created_at)),
          unread ? h("span.notif-unread", null, " · unread") : null)),
    ];
    const attrs = {dataset: {id: String(n.id), kind: n.kind}, class: unread ? "unread" : "",
      onclick: (e) => this.follow(n, e)};
    const control = href ? h("a.notif-item", {...attrs, href}, body) : h("button.notif-item", {...attrs, type: "button"}, body);
    return h("li.notif-row", null, control);
  }

  open() {
    this.panel.hidden = false;
    this.bell.setAttribute("aria-expanded", "true");
    this.render();
    if (!this.feed.loaded && !this.loading) this.reload();
    clearInterval(this.clockTimer);
    this.clockTimer = setInterval(() => this.render(), CLOCK_MS); // "just now" becomes "2 min ago"
  }

  close({focus = false} = {}) {
    this.panel.hidden = true;
    this.bell.setAttribute("aria-expanded", "false");
    clearInterval(this.clockTimer);
    if (focus) this.bell.focus();
  }

  // --- marking read ------------------------------------------------------------------------------

  async markRead(ids) {
    this.feed.markRead(ids);
    this.render();
    try {
      const answer = await api("POST", "/api/notifications/read", {ids});
      if (answer && typeof answer.unread === "number") this.feed.unread = answer.unread;
    } catch (error) {
      this.error = describeError(error);
    }
    this.render();
  }

  async markAllRead() {
    this.feed.markRead("all");
    this.render();
    try {
      const answer = await api("POST", "/api/notifications/read", {all: true});
      if (answer && typeof answer.unread === "number") this.feed.unread = answer.unread;
      this.error = null;
    } catch (error) {
      this.error = describeError(error);
    }
    this.render();
    this.bell.focus();
  }

  /** A notification followed: marked read, then its message shown (in place when this room is
   * its story's; else the page goes there, once the mark is sent). A click that opens a new tab
   * marks it read and leaves this page be. */
  async follow(n, e) {
    const href = notificationHref(n);
    const marking = n.read_at ? Promise.resolve() : this.markRead([n.id]);
    if (!href) {
      e.preventDefault();
      return;
    }
    if (e.button > 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return; // a new tab or window
    e.preventDefault();
    this.close();
    if (this.room && n.story === this.room.slug && n.message_id) {
      this.room.showMessage({id: n.message_id, channel: n.channel});
      return;
    }
    if (this.room && n.story === this.room.slug && this.room.channels.has(n.channel)) {
      this.room.select(n.channel);
      return;
    }
    // Leaving the page would cancel the request: wait for it (a little).
    await Promise.race([marking, new Promise((resolve) => setTimeout(resolve, MARK_READ_WAIT_MS))]);
    location.assign(href);
  }
}

/** Starts the bell if the page has its host (`#notif`, signed in). `socket`: the page's own, or
 * null to open one (the lobby has none). `room`: the story room, if this is one. */
export function startNotifications(socket, {room = null} = {}) {
  const host = typeof document !== "undefined" ? document.getElementById("notif") : null;
  if (!host || !host.dataset.username) return null;
  const bell = new NotificationBell({socket: socket || new MythlineSocket({backoffMax: 10000}), username: host.dataset.username, room});
  bell.mount(host);
  bell.start();
  window.mythlineNotifications = bell; // for the console and the browser tests
  return bell;
}
