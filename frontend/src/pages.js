// Starts the page the server rendered: its `page-config` JSON names it ("room", "monitor",
// "lobby"). Every live page shares one MythlineSocket (socket.js).

import {MythlineSocket} from "./socket.js";
import {startLobby} from "./lobby.js";
import {MonitorPage} from "./monitor.js";
import {startNotifications} from "./notifications.js";
import {RoomPage} from "./room.js";
import {pageConfig} from "./ui.js";

let started = null;

/** Skip links (`a.skip-link`, first in the page) move the focus into their target: to its first
 * field, the editor, or the target itself. */
function bindSkipLinks() {
  document.addEventListener("click", (e) => {
    const link = e.target.closest && e.target.closest("a.skip-link");
    if (!link) return;
    const target = document.querySelector(link.getAttribute("href"));
    if (!target) return;
    e.preventDefault();
    const field = target.querySelector("[contenteditable=true], textarea, input:not([type=hidden]), select, button");
    const focusable = field || target;
    if (!field && !focusable.hasAttribute("tabindex")) focusable.setAttribute("tabindex", "-1");
    focusable.focus();
  });
}

export function boot() {
  if (started) return started;
  bindSkipLinks();
  const config = pageConfig();
  if (!config || !config.page) return null;
  if (config.page === "lobby") {
    startLobby();
    // The lobby has no socket of its own: the bell opens one (notifications.js).
    started = {page: "lobby", notifications: startNotifications(null)};
    return started;
  }
  // A page reconnects within ten seconds of the server coming back (the socket's default cap,
  // 30 s, suits scripts and agents better than someone looking at a "Reconnecting…" badge).
  const socket = new MythlineSocket({backoffMax: 10000});
  const page = config.page === "room" ? new RoomPage(config, socket) : config.page === "monitor" ? new MonitorPage(config, socket) : null;
  if (!page) return null;
  page.start();
  // The bell in the top bar shares the page's socket (notifications.js).
  page.notifications = startNotifications(socket, {room: config.page === "room" ? page : null});
  started = page;
  return page;
}

if (typeof document !== "undefined" && document.getElementById) {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot, {once: true});
  else boot();
}
