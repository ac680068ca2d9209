// Small DOM and HTTP helpers shared by the pages.
//
// Everything users and agents write reaches the DOM through `h()` children or `textContent`:
// strings always become text nodes, never markup. Nothing in the pages uses innerHTML.

/** Creates an element: `h("div.card.msg", {dataset: {id}}, "text", child, [more])`. */
export function h(tag, attrs = null, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (key === "dataset") Object.assign(el.dataset, value);
      else if (key === "class") el.className = [el.className, value].filter(Boolean).join(" ");
      else if (key === "style") for (const [k, v] of Object.entries(value)) el.style.setProperty(k, v);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (key === "text") el.textContent = value;
      else if (key in el && typeof value !== "string") el[key] = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** The JSON a page was rendered with (`{{ config|json_script:"page-config" }}`). */
export function pageConfig() {
  const el = document.getElementById("page-config");
  return el ? JSON.parse(el.textContent) : null;
}

// --- people --------------------------------------------------------------------------------

export function initials(name) {
  const words = String(name || "").replace(/[-_]/g, " ").split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  if (words.length === 1) return words[0].slice(0, 2).toUpperCase();
  return (words[0][0] + words[1][0]).toUpperCase();
}

/** The hue of `userColor()` in collab.js: a person's avatar matches their cursor in the editor. */
export function hue(username) {
  let hash = 0;
  for (const ch of String(username || "")) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 360;
}

/** An avatar: initials on the user's colour (the colour of their cursor in the editor). */
export function avatar(user, size = "") {
  const kind = user.kind === "agent" ? "agent" : "human";
  return h(`span.avatar.${kind}${size ? "." + size : ""}`, {
    style: {"--hue": String(hue(user.username))},
    title: `${user.display_name || user.username} (${kind})`,
    "aria-hidden": "true",
  }, initials(user.display_name || user.username));
}

export function kindBadge(kind) {
  return h(`span.kind.kind-${kind === "agent" ? "agent" : "human"}`, null, kind === "agent" ? "agent" : "human");
}

export function displayName(user) {
  return (user && (user.display_name || user.username)) || "someone";
}

/**
 * A person's name as shown wherever two people could share it: the display name, then the
 * @username dimmed ("Mara @mara"). Display names need not be unique, usernames are: without the
 * handle anyone could take the story owner's name and pass for them. Returns nodes to put in a
 * container (`h("span.msg-author", null, nameWithHandle(sender))`).
 */
export function nameWithHandle(user) {
  const name = h("span.name-text", null, displayName(user));
  if (!user || !user.username) return [name];
  return [name, " ", h("span.handle", {title: `Username: @${user.username}`}, `@${user.username}`)];
}

/** The same as plain text ("Mara @mara"), for tooltips and labels that take no markup. */
export function nameWithHandleText(user) {
  return user && user.username ? `${displayName(user)} @${user.username}` : displayName(user);
}

// --- time ----------------------------------------------------------------------------------

export function clock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const now = new Date();
  const time = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.toLocaleDateString([], {month: "short", day: "numeric"})} ${time}`;
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const t = typeof iso === "number" ? iso : Date.parse(iso);
  if (Number.isNaN(t)) return "never";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr} h ago`;
  return `${Math.floor(hr / 24)} d ago`;
}

// --- HTTP ----------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

function csrfToken() {
  const config = pageConfig();
  if (config && config.csrf_token) return config.csrf_token;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** A JSON call to our own API with the session cookie and the CSRF token. `signal`: an
 * AbortSignal that cancels it (the fetch then rejects with an AbortError). */
export async function api(method, path, body = undefined, {signal} = {}) {
  const headers = {Accept: "application/json"};
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {method, headers, credentials: "same-origin", signal,
    body: body === undefined ? undefined : JSON.stringify(body)});
  let data = null;
  if (res.status !== 204) data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code, err.message, err.details);
  }
  return data;
}

export function uuid4() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** A short toast at the bottom of the page (errors from the server, confirmations). */
export function toast(message, kind = "info") {
  let host = document.getElementById("toasts");
  if (!host) {
    host = h("div.toasts", {id: "toasts", role: "status", "aria-live": "polite"});
    document.body.appendChild(host);
  }
  const el = h(`div.toast.toast-${kind}`, null, message);
  host.appendChild(el);
  setTimeout(() => el.classList.add("leaving"), 3800);
  setTimeout(() => el.remove(), 4300);
}

export function progressBar(progress, {label = true} = {}) {
  if (progress == null || Number.isNaN(Number(progress))) return null;
  const pct = Math.round(Math.max(0, Math.min(1, Number(progress))) * 100);
  const fill = h("span.progress-fill");
  fill.style.width = `${pct}%`;
  return h("span.progress", {title: `${pct}%`, role: "progressbar", "aria-valuenow": String(pct),
    "aria-valuemin": "0", "aria-valuemax": "100"}, h("span.progress-track", null, fill),
  label ? h("span.progress-label", null, `${pct}%`) : null);
}

export function statusBadge(status) {
  const s = status || "offline";
  return h(`span.status.status-${s}`, null, s);
}

// --- icons (inline SVG built with the DOM; no markup strings) ------------------------------

const ICONS = {
  search: [["circle", {cx: "11", cy: "11", r: "6.5"}], ["path", {d: "m16 16 4.5 4.5"}]],
  hash: [["path", {d: "M5 9h14M5 15h14M10 4 8 20M16 4l-2 16"}]],
  lock: [["rect", {x: "5", y: "11", width: "14", height: "9", rx: "2"}], ["path", {d: "M8 11V8a4 4 0 0 1 8 0v3"}]],
  room: [["circle", {cx: "12", cy: "12", r: "2.5"}], ["path", {d: "M7.8 7.8a6 6 0 0 0 0 8.4M16.2 7.8a6 6 0 0 1 0 8.4M5 5a10 10 0 0 0 0 14M19 5a10 10 0 0 1 0 14"}]],
  inbox: [["rect", {x: "3.5", y: "5.5", width: "17", height: "13", rx: "2"}], ["path", {d: "m4 7 8 6 8-6"}]],
  doc: [["path", {d: "M7 3.5h7l4 4V20a.5.5 0 0 1-.5.5h-10.5a.5.5 0 0 1-.5-.5V4a.5.5 0 0 1 .5-.5z"}], ["path", {d: "M14 3.5V8h4M9 12h6M9 16h6"}]],
};

export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  svg.setAttribute("aria-hidden", "true");
  for (const [tag, attrs] of ICONS[name] || ICONS.hash) {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    svg.appendChild(el);
  }
  return svg;
}

// The server's rule for channel and document names (messaging and stories serializers), checked in
// the browser before anything is sent. The pattern is valid under the `v` flag that browsers use
// for the `pattern` attribute (a literal "-" in a class must be escaped there).
export const NAME_PATTERN = "[a-z0-9][a-z0-9._\\-]{0,63}";
export const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const NAME_RULE = "Use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit (no spaces).";

/** A form control with its visible label (the label wraps it, so it is also its accessible name). */
export function labelled(text, control) {
  return h("label.field", null, h("span.field-label", null, text), control);
}

