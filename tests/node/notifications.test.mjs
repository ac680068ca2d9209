// The bell's feed (frontend/src/notiflist.js, issue #17): newest first, one entry per id whatever
// the order of the first page and the live frames, the server's unread count, marking read by ids
// or all, the wording of each kind and the link to the message. tests/browser/test_notifications.py
// covers the drawing.
import assert from "node:assert/strict";
import {test} from "node:test";

import {badgeText, bellLabel, kindWording, NotificationFeed, notificationHref} from "../../frontend/src/notiflist.js";

const MARA = {username: "mara", display_name: "Mara", kind: "human"};

function n(id, extra = {}) {
  return {id, kind: "mention", story: "tale", channel: "general", message_id: `m${id}`, actor: MARA, excerpt: `line ${id}`,
    created_at: "2026-12-06T10:00:00Z", read_at: null, ...extra};
}

test("the wording of each kind", () => {
  assert.equal(kindWording(n(1)), "mentioned you in #general");
  assert.equal(kindWording(n(1, {kind: "reply"})), "replied to you");
  assert.equal(kindWording(n(1, {kind: "decision"})), "made a decision in tale");
  assert.equal(kindWording(n(1, {kind: "webhook.disabled", story: null, channel: null, actor: null})), "Your webhook was disabled");
  assert.equal(bellLabel(3), "Notifications, 3 unread");
  assert.deepEqual([0, 1, 99, 100].map(badgeText), ["", "1", "99", "99+"]);
});

test("the link: the message in its room, as the search results link it", () => {
  assert.equal(notificationHref(n(7, {channel: "scene 2", message_id: "abc"})), "/stories/tale/?channel=scene+2&message=abc");
  assert.equal(notificationHref(n(7, {message_id: null})), "/stories/tale/?channel=general");
  assert.equal(notificationHref(n(7, {story: null, channel: null})), null);
});

test("newest first; a frame and a page holding the same notification make one entry", () => {
  const feed = new NotificationFeed();
  assert.equal(feed.add({notification: n(3), unread: 1}), true);
  feed.load({results: [n(3), n(2, {read_at: "2026-12-06T09:00:00Z"}), n(1)], unread: 2, next: "/api/notifications?before=1"});
  assert.deepEqual(feed.sorted().map((x) => x.id), [3, 2, 1]);
  assert.equal(feed.unread, 2);
  assert.equal(feed.next, "/api/notifications?before=1");
  assert.equal(feed.add({notification: n(3), unread: 2}), false);
  assert.equal(feed.add({notification: n(4), unread: 3}), true);
  assert.deepEqual(feed.sorted().map((x) => x.id), [4, 3, 2, 1]);
  assert.equal(feed.unread, 3);
  feed.load({results: [n(0)], unread: 3, next: null}, {older: true});
  assert.equal(feed.next, null);
  assert.equal(feed.sorted().at(-1).id, 0);
});

test("marking read: by ids or all, here or from another tab; the server's count wins", () => {
  const feed = new NotificationFeed();
  feed.load({results: [n(1), n(2), n(3)], unread: 3, next: null});
  assert.equal(feed.markRead([2]), 1);
  assert.equal(feed.unread, 2);
  assert.ok(feed.items.get(2).read_at);
  assert.equal(feed.markRead([2]), 0); // already read
  feed.onRead({ids: [1], unread: 1});
  assert.ok(feed.items.get(1).read_at);
  assert.equal(feed.unread, 1);
  feed.onRead({ids: "all", unread: 0});
  assert.equal(feed.sorted().filter((x) => !x.read_at).length, 0);
  assert.equal(feed.unread, 0);
  assert.equal(feed.add({notification: null, unread: 5}), false); // a count without one: the count
  assert.equal(feed.unread, 5);
});
