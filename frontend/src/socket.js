// One WebSocket client for every Mythline page (SPEC 7): one socket, many topic subscriptions.
//
//   const socket = new MythlineSocket()            // same origin /ws/, session cookie
//   socket.onState(state => indicator.textContent = state)
//   const sub = socket.subscribe("channel:tale/general", {after: 0}, frame => render(frame))
//   const reply = await socket.request({type: "publish", topic: ..., msg_type: "text", payload: {...}})
//
// What it does for its callers:
// - requests carry a `ref`; `request()` resolves with the reply that echoes it (or with a frame picked
//   by `match`, for answers that are broadcasts, like `doc.change`), rejects with a SocketError
//   (`code` from the server's `error` frame, or "disconnected"/"timeout");
// - heartbeats every `welcome.heartbeat_seconds` with the presence state: "away" while the page is
//   hidden (Page Visibility API), "idle" after a minute without input, else "active";
// - reconnects with exponential backoff and full jitter, then re-subscribes every topic: channel
//   topics resume from the last seq seen (`after`), so nothing is missed; the replayed frames that
//   were already delivered are dropped (by seq and message id); doc topics get a fresh `doc.state`
//   and their owner (collab.js) pulls what it missed;
// - an observable connection state: "connecting", "open", "reconnecting", "closed".
//
// It also runs in Node (tests, scripts): pass `url`, a `WebSocket` constructor (the `ws` package)
// and `headers` (`{Authorization: "Bearer ..."}`).

export class SocketError extends Error {
  constructor(code, message, frame = null) {
    super(message || code);
    this.name = "SocketError";
    this.code = code;
    this.frame = frame;
  }
}

const CHANNEL_PREFIX = "channel:";
const SEEN_IDS_MAX = 5000;
// Close codes after which reconnecting cannot help: the session or token is gone, or the origin is refused.
const FATAL_CLOSE_CODES = new Set([4401, 4403]);
const STABLE_AFTER_MS = 10000;

function defaultUrl() {
  const loc = globalThis.location;
  if (!loc) throw new Error("MythlineSocket: pass `url` outside a browser");
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws/`;
}

export class Subscription {
  constructor(socket, topic, options, handler) {
    this.socket = socket;
    this.topic = topic;
    this.types = options.types || null;
    this.handler = handler;
    // Highest message seq seen on a channel topic (the resume point); null until known.
    this.lastSeq = options.after ?? null;
    this.active = true;
    this.subscribed = false;
    this.lastSubscribed = null; // the last `subscribed` frame
    this._readyWaiters = [];
  }

  get isChannel() {
    return this.topic.startsWith(CHANNEL_PREFIX);
  }

  /** Resolves with the `subscribed` frame once the server has confirmed the subscription. */
  ready() {
    if (this.subscribed) return Promise.resolve(this.lastSubscribed);
    return new Promise((resolve, reject) => this._readyWaiters.push({resolve, reject}));
  }

  frame() {
    const frame = {type: "subscribe", topic: this.topic};
    if (this.isChannel && this.lastSeq != null) frame.after = this.lastSeq;
    if (this.types) frame.types = this.types;
    return frame;
  }

  unsubscribe() {
    this.socket._unsubscribe(this);
  }

  _settle(error, frame) {
    const waiters = this._readyWaiters;
    this._readyWaiters = [];
    for (const w of waiters) (error ? w.reject(error) : w.resolve(frame));
  }
}

export class MythlineSocket {
  /**
   * @param {object} [options]
   * @param {string} [options.url] default: `/ws/` on the page's origin
   * @param {Function} [options.WebSocket] default: the browser's WebSocket
   * @param {object} [options.headers] handshake headers (Node `ws` only), e.g. a bearer token
   * @param {number} [options.backoffBase] first reconnect delay bound, ms (default 500)
   * @param {number} [options.backoffMax] largest reconnect delay bound, ms (default 30000)
   * @param {number} [options.idleAfter] ms without input before the state is "idle" (default 60000)
   * @param {number} [options.requestTimeout] default request timeout, ms (default 15000)
   * @param {boolean} [options.autoConnect] connect at once (default true)
   * @param {Function} [options.random] a [0,1) source for the jitter (default Math.random)
   */
  constructor(options = {}) {
    this.url = options.url || defaultUrl();
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    if (!this.WebSocket) throw new Error("MythlineSocket: no WebSocket constructor; pass options.WebSocket");
    this.headers = options.headers || null;
    this.backoffBase = options.backoffBase ?? 500;
    this.backoffMax = options.backoffMax ?? 30000;
    this.idleAfter = options.idleAfter ?? 60000;
    this.requestTimeout = options.requestTimeout ?? 15000;
    this.random = options.random || Math.random;

    this.state = "closed";
    this.welcome = null; // the server's `welcome` frame: {user, heartbeat_seconds, max_frame_bytes}
    this.ws = null;
    this.attempt = 0; // consecutive failed connection attempts
    this.closeInfo = null; // {code, reason} of the last close
    this.subs = new Map(); // topic -> Subscription
    this.pending = new Map(); // ref -> {resolve, reject, match, timer}
    this.matchers = new Set(); // pending requests that also resolve on a matching broadcast
    this.refCounter = 0;
    this.refPrefix = Math.floor(this.random() * 1e9).toString(36);
    this.listeners = {state: new Set(), frame: new Set()};
    this.seenIds = new Set();
    this.heartbeatTimer = null;
    this.reconnectTimer = null;
    this.lastInput = Date.now();
    this.presence = null; // last presence state sent
    this.lastFrameAt = 0;
    this.openedAt = 0;
    this.writable = false;
    this._stopped = false;
    this.networkOffline = false; // the browser said it lost the network (`offline` event)
    this._watchActivity();
    this._watchNetwork();
    if (options.autoConnect !== false) this.connect();
  }

  /** The browser knows when the network goes: say so at once (a socket over a dead network can
   * look open for a long time) and reconnect the moment it comes back, without the backoff. */
  _watchNetwork() {
    const win = globalThis.window;
    if (!win || !win.addEventListener) return;
    win.addEventListener("offline", () => {
      this.networkOffline = true;
      if (this._stopped) return;
      this.drop();
      this._setState("offline");
    });
    win.addEventListener("online", () => {
      this.networkOffline = false;
      if (this._stopped || this.ws) return;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.attempt = 0;
      this.connect();
    });
  }

  // --- connection state ------------------------------------------------------------------

  /** Calls `fn(state, info)` now and on every change; returns a function that stops it. */
  onState(fn) {
    this.listeners.state.add(fn);
    fn(this.state, this.closeInfo);
    return () => this.listeners.state.delete(fn);
  }

  /** Calls `fn(frame)` for every frame received (after routing); returns a function that stops it. */
  onFrame(fn) {
    this.listeners.frame.add(fn);
    return () => this.listeners.frame.delete(fn);
  }

  /** True once the server's `welcome` arrived on the current connection. */
  get isOpen() {
    return this.writable && this.ws !== null;
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const fn of [...this.listeners.state]) {
      try {
        fn(state, this.closeInfo);
      } catch (error) {
        console.error(error);
      }
    }
  }

  connect() {
    this._stopped = false;
    if (this.ws) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this._setState(this.networkOffline ? "offline" : this.attempt === 0 && !this.welcome ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = this.headers ? new this.WebSocket(this.url, {headers: this.headers}) : new this.WebSocket(this.url);
    } catch (error) {
      this._onClose(null, {code: 1006, reason: String(error)});
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => this._onMessage(ws, event.data);
    ws.onclose = (event) => this._onClose(ws, {code: event.code, reason: event.reason});
    ws.onerror = () => {}; // a close follows; `ws` would throw on an unhandled error event
  }

  /** Closes for good (no reconnect). `connect()` opens again. */
  close() {
    this._stopped = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const ws = this.ws;
    if (ws) {
      this._detach(ws, {code: 1000, reason: "closed by the client"});
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    this._setState("closed");
  }

  /** Drops the current connection as if the network failed (then reconnects as usual). */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    this._onClose(ws, {code: 4000, reason: "dropped by the client"});
    try {
      ws.close(4000);
    } catch {
      // already closing
    }
  }

  _detach(ws, info) {
    if (ws !== this.ws) return false;
    this.ws = null;
    this.writable = false;
    ws.onmessage = ws.onclose = null;
    this.closeInfo = info;
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    for (const sub of this.subs.values()) sub.subscribed = false;
    const error = new SocketError("disconnected", `The connection closed (${info.code}).`);
    for (const [ref, req] of this.pending) {
      clearTimeout(req.timer);
      this.pending.delete(ref);
      this.matchers.delete(req);
      req.reject(error);
    }
    return true;
  }

  _onClose(ws, info) {
    if (ws !== null && !this._detach(ws, info)) return;
    if (ws === null) this.closeInfo = info;
    // The backoff starts over only after a connection that lasted: a server that accepts and then
    // closes at once (overload, a bad deploy) is not hammered in a tight loop.
    if (this.openedAt && Date.now() - this.openedAt > STABLE_AFTER_MS) this.attempt = 0;
    this.openedAt = 0;
    if (this._stopped) return;
    if (FATAL_CLOSE_CODES.has(info.code)) {
      this._stopped = true;
      this._setState("closed");
      return;
    }
    // Exponential backoff with full jitter: a uniform delay in [0, min(max, base * 2^attempt)).
    const bound = Math.min(this.backoffMax, this.backoffBase * 2 ** Math.min(this.attempt, 20));
    const delay = Math.floor(this.random() * bound);
    this.reconnectDelay = delay; // for status lines ("retrying in 3 s") and tests
    this.attempt += 1;
    this._setState(this.networkOffline ? "offline" : "reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this._stopped) this.connect();
    }, delay);
  }

  // --- receiving ---------------------------------------------------------------------------

  _onMessage(ws, data) {
    if (ws !== this.ws) return;
    this.lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(typeof data === "string" ? data : String(data));
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "welcome") {
      this._onWelcome(frame);
    } else {
      this._route(frame);
    }
    for (const fn of [...this.listeners.frame]) {
      try {
        fn(frame);
      } catch (error) {
        console.error(error);
      }
    }
  }

  _onWelcome(frame) {
    this.welcome = frame;
    this.openedAt = Date.now();
    this.closeInfo = null;
    // Subscriptions go out before anyone hears "open", so that no frame about a topic (a doc.push
    // queued while offline, say) reaches the server ahead of its subscribe.
    this.writable = true;
    for (const sub of this.subs.values()) this._sendSubscribe(sub);
    this._startHeartbeats(frame.heartbeat_seconds);
    this._setState("open");
  }

  _route(frame) {
    const sub = typeof frame.topic === "string" ? this.subs.get(frame.topic) : undefined;
    let deliver = true;
    if (frame.ref != null && this.pending.has(frame.ref)) {
      const req = this.pending.get(frame.ref);
      this._finish(frame.ref, req);
      if (frame.type === "error") {
        req.reject(new SocketError(frame.code, frame.message, frame));
        deliver = false; // the requester handles its own errors
      } else {
        req.resolve(frame);
        // The answer to an `unsubscribe` belongs to the subscription that left, not to one opened
        // since on the same topic (a document reopened at once, say).
        if (frame.type === "unsubscribed") deliver = false;
      }
    } else if (this.matchers.size) {
      for (const req of [...this.matchers]) {
        if (req.match(frame)) {
          this._finish(req.ref, req);
          // Resolved after the subscription handler below has seen the frame (promises settle later).
          req.resolve(frame);
        }
      }
    }
    if (!sub || !sub.active || !deliver) return;
    if (frame.type === "subscribed") {
      sub.subscribed = true;
      sub.lastSubscribed = frame;
      if (sub.isChannel && typeof frame.last_seq === "number" && sub.lastSeq == null) sub.lastSeq = frame.last_seq;
      sub._settle(null, frame);
    } else if (frame.type === "message" && frame.message) {
      if (!this._fresh(sub, frame.message)) return;
    } else if (frame.type === "unsubscribed" && frame.reason) {
      // The server ended it (access revoked): do not resubscribe.
      sub.active = false;
      this.subs.delete(sub.topic);
    } else if (frame.type === "error" && !sub.subscribed) {
      sub._settle(new SocketError(frame.code, frame.message, frame));
    }
    try {
      sub.handler(frame, sub);
    } catch (error) {
      console.error(error);
    }
  }

  /** False for a message already delivered (a replay after a reconnect, or a duplicate). */
  _fresh(sub, message) {
    if (typeof message.seq === "number") {
      if (sub.lastSeq != null && message.seq <= sub.lastSeq) return false;
      sub.lastSeq = message.seq;
    }
    if (message.id) {
      if (this.seenIds.has(message.id)) return false;
      this.seenIds.add(message.id);
      if (this.seenIds.size > SEEN_IDS_MAX) this.seenIds.delete(this.seenIds.values().next().value);
    }
    return true;
  }

  // --- sending -----------------------------------------------------------------------------

  /** Sends a frame now if the socket is open; returns false (and sends nothing) otherwise. */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  nextRef() {
    this.refCounter += 1;
    return `${this.refPrefix}-${this.refCounter}`;
  }

  /**
   * Sends `frame` with a fresh `ref` and resolves with the reply echoing it. Rejects with a
   * SocketError: the server's error code, or "disconnected" / "timeout". Waits for the socket to
   * open (within the timeout) if it is not. `match(frame)` also resolves it with any received frame
   * it accepts, for answers that come as broadcasts without the ref (`doc.push` -> `doc.change`).
   */
  request(frame, {timeout = this.requestTimeout, match = null} = {}) {
    return new Promise((resolve, reject) => {
      const ref = this.nextRef();
      const req = {ref, resolve, reject, match, timer: null, waiting: null};
      req.timer = setTimeout(() => {
        this._finish(ref, req);
        reject(new SocketError("timeout", `No answer to ${frame.type} within ${timeout} ms.`));
      }, timeout);
      const go = () => {
        this.pending.set(ref, req);
        if (match) this.matchers.add(req);
        this.ws.send(JSON.stringify({...frame, ref}));
      };
      if (this.isOpen) {
        go();
        return;
      }
      const listener = (state) => {
        if (state === "open" && this.isOpen) {
          this.listeners.state.delete(listener);
          req.waiting = null;
          go();
        } else if (state === "closed" && this._stopped) {
          this._finish(ref, req);
          reject(new SocketError("disconnected", "The socket is closed."));
        }
      };
      req.waiting = () => this.listeners.state.delete(listener);
      if (this.state === "closed" && this._stopped) {
        listener(this.state);
        return;
      }
      this.listeners.state.add(listener);
    });
  }

  _finish(ref, req) {
    clearTimeout(req.timer);
    if (req.waiting) {
      req.waiting();
      req.waiting = null;
    }
    this.pending.delete(ref);
    this.matchers.delete(req);
  }

  // --- subscriptions -----------------------------------------------------------------------

  /**
   * Subscribes to `topic` ("channel:s/c", "story:s", "doc:s/d") and calls `handler(frame, sub)` for
   * every frame on it: `subscribed` (again after each reconnect), `message` (each once, in seq
   * order), `event`, `presence.*`, `typing`, `doc.*`, `cursor`, errors about it. `after` resumes a
   * channel from a seq; `types` filters msg_types. Returns the Subscription (`.ready()`, `.unsubscribe()`).
   */
  subscribe(topic, {after = undefined, types = undefined} = {}, handler = () => {}) {
    if (this.subs.has(topic)) throw new Error(`Already subscribed to ${topic}; unsubscribe first.`);
    const sub = new Subscription(this, topic, {after, types}, handler);
    this.subs.set(topic, sub);
    if (this.isOpen) this._sendSubscribe(sub);
    return sub;
  }

  _sendSubscribe(sub) {
    const frame = sub.frame();
    this.request(frame).catch((error) => {
      if (error.code === "disconnected" || !sub.active) return; // resubscribed on the next welcome
      if (error.code === "rate_limited") {
        const details = (error.frame && error.frame.details) || {};
        setTimeout(() => {
          if (sub.active && this.isOpen && !sub.subscribed) this._sendSubscribe(sub);
        }, 1000 * (Number(details.retry_after) || 1));
        return;
      }
      if (error.code === "timeout") {
        if (this.subs.get(sub.topic) === sub) this.drop(); // a stuck connection: start over
        return;
      }
      // not_found, forbidden, invalid: retrying cannot help, so the subscription ends here.
      sub.active = false;
      if (this.subs.get(sub.topic) === sub) this.subs.delete(sub.topic);
      sub._settle(error);
      try {
        sub.handler({type: "error", topic: sub.topic, code: error.code, message: error.message}, sub);
      } catch (e) {
        console.error(e);
      }
    });
  }

  _unsubscribe(sub) {
    if (this.subs.get(sub.topic) !== sub) return;
    sub.active = false;
    this.subs.delete(sub.topic);
    sub._settle(new SocketError("unsubscribed", "Unsubscribed."));
    if (this.isOpen) this.request({type: "unsubscribe", topic: sub.topic}).catch(() => {});
  }

  // --- presence heartbeats -----------------------------------------------------------------

  /** Marks user input now (pages call this on their own events; browsers get it automatically). */
  activity() {
    const wasIdle = this.presenceState() !== "active";
    this.lastInput = Date.now();
    if (wasIdle) this._heartbeatIfChanged();
  }

  /** "away" while the page is hidden, "idle" after `idleAfter` ms without input, else "active". */
  presenceState() {
    const doc = globalThis.document;
    if (doc && doc.visibilityState === "hidden") return "away";
    if (Date.now() - this.lastInput >= this.idleAfter) return "idle";
    return "active";
  }

  _startHeartbeats(seconds) {
    clearInterval(this.heartbeatTimer);
    const interval = Math.max(1, Number(seconds) || 15) * 1000;
    this.presence = null;
    this._heartbeat(); // the presence state right away, not one interval late
    this.heartbeatTimer = setInterval(() => {
      // A socket silent for three intervals (no heartbeat_ack) is dead even if TCP has not noticed.
      if (Date.now() - this.lastFrameAt > 3 * interval) {
        this.drop();
        return;
      }
      this._heartbeat();
    }, interval);
  }

  _heartbeat() {
    this.presence = this.presenceState();
    this.send({type: "heartbeat", state: this.presence});
  }

  _heartbeatIfChanged() {
    if (this.isOpen && this.presenceState() !== this.presence) this._heartbeat();
  }

  _watchActivity() {
    const win = globalThis.window;
    const doc = globalThis.document;
    if (!win || !doc || !win.addEventListener) return;
    let last = 0;
    const onInput = () => {
      const now = Date.now();
      if (now - last < 1000 && this.presence === "active") return;
      last = now;
      this.activity();
    };
    for (const type of ["keydown", "pointerdown", "pointermove", "wheel", "touchstart", "focus"]) {
      win.addEventListener(type, onInput, {passive: true, capture: true});
    }
    doc.addEventListener("visibilitychange", () => {
      if (doc.visibilityState === "visible") this.lastInput = Date.now();
      this._heartbeatIfChanged();
    });
    // Notice "idle" without waiting for the next heartbeat.
    setInterval(() => this._heartbeatIfChanged(), 5000);
  }
}

/** Shows the connection state in `element` (text and a `data-state` attribute for CSS). */
export function bindConnectionIndicator(socket, element, labels = {}) {
  const text = {connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…", offline: "Offline",
    closed: "Disconnected", ...labels};
  return socket.onState((state) => {
    element.dataset.state = state;
    element.textContent = text[state] || state;
    element.title = state === "closed" && socket.closeInfo ? `Closed (${socket.closeInfo.code})` : "";
  });
}
