// The notification feed of the top bar (issue #17, docs/protocol.md "Notifications"): the pure
// part, Node-tested (tests/node/notifications.test.mjs); notifications.js draws it.
//
// The list is kept by id (the server's ids grow, so newest first is the highest id first); a
// notification heard twice (the first page read while its live frame was on its way) is one. The
// unread count is always the server's: each frame and answer carries it.

/** What a notification says after its actor's name ("Mara @mara mentioned you in #general"). */
export function kindWording(n) {
  const channel = n.channel ? ` in #${n.channel}` : "";
  switch (n.kind) {
    case "mention":
      return `mentioned you${channel}`;
    case "reply":
      return "replied to you";
    case "decision":
      return n.story ? `made a decision in ${n.story}` : "made a decision";
    case "webhook.disabled":
      return "Your webhook was disabled";
    default:
      return String(n.kind || "notified you");
  }
}

/** Where a notification leads: the message in its room (`?channel=…&message=…`, the link the
 * room's search results use too), or null when it is about no message. */
export function notificationHref(n) {
  if (!n.story || !n.channel) return null;
  const query = new URLSearchParams({channel: n.channel});
  if (n.message_id) query.set("message", n.message_id);
  return `/stories/${encodeURIComponent(n.story)}/?${query}`;
}

/** "Notifications, 3 unread" (the bell's accessible name). */
export function bellLabel(unread) {
  return `Notifications, ${unread} unread`;
}

/** The count on the bell: nothing for none, "99+" past 99. */
export function badgeText(unread) {
  return unread > 99 ? "99+" : unread > 0 ? String(unread) : "";
}

export class NotificationFeed {
  constructor() {
    this.items = new Map(); // id -> notification
    this.unread = 0;
    this.next = null; // the URL of the next (older) page, if any
    this.loaded = false;
  }

  /** Newest first. */
  sorted() {
    return [...this.items.values()].sort((a, b) => b.id - a.id);
  }

  /** A page of GET /api/notifications: `older` for a "Show older" page (keeps `next` of it), else
   * the first page (read again after a reconnect: what it holds replaces what we had of it). */
  load(page, {older = false} = {}) {
    for (const n of (page && page.results) || []) this.items.set(n.id, n);
    if (typeof page.unread === "number") this.unread = page.unread;
    if (older || !this.loaded) this.next = page.next || null;
    this.loaded = true;
  }

  /** A `notification` frame. Answers true if it was new. */
  add(frame) {
    const n = frame.notification;
    if (typeof frame.unread === "number") this.unread = frame.unread;
    if (!n || typeof n.id !== "number") return false;
    const isNew = !this.items.has(n.id);
    this.items.set(n.id, n);
    return isNew;
  }

  /** Marks read here (`ids`, or "all"), at `at` (an ISO time); `unread`: the server's count, if known. */
  markRead(ids, {unread = null, at = new Date().toISOString()} = {}) {
    let changed = 0;
    for (const n of this.items.values()) {
      if (n.read_at) continue;
      if (ids === "all" || (Array.isArray(ids) && ids.includes(n.id))) {
        n.read_at = at;
        changed += 1;
      }
    }
    if (typeof unread === "number") this.unread = unread;
    else this.unread = Math.max(0, this.unread - changed);
    return changed;
  }

  /** A `notifications.read` frame (from this page or another of the user's clients). */
  onRead(frame) {
    return this.markRead(frame.ids === "all" ? "all" : Array.isArray(frame.ids) ? frame.ids : [], {unread: frame.unread});
  }
}
