// Streaming messages in the room (issue #17, docs/protocol.md "Streaming messages"): the pure part,
// Node-tested (tests/node/streams.test.mjs); streamview.js draws it.
//
// A stream is a message being written in chunks. The server sends, on the channel's topic,
// `stream.started` (live, or after a subscribe's replay with the text so far), `stream.chunk`
// {id, offset, text} (`offset`: the length of the text before the chunk, in characters, i.e.
// Unicode code points, as Python counts them) and `stream.ended` {status: completed|cancelled};
// a completed stream's final message follows as a normal `message` frame with the stream's id.
//
// What this keeps right:
// - a chunk the text already holds (a snapshot raced with the live chunks, a resubscribe) adds only
//   what is new past the text's length, by its offset; one wholly inside is dropped;
// - a chunk past the end (a gap: something was lost) is kept aside and reported, so the room can
//   read the text so far again; the text shown stays what it has, and the kept chunks join as soon
//   as the text reaches them;
// - the final message replaces its stream (`settle`), and a late frame of a stream that is over
//   (a `stream.started` after its message, a stray chunk) never draws it again.
//
// Lengths are counted in code points, never in JS string units: an emoji is one character on the
// server and two units here.

/** The length of `text` in code points (Python's len). */
export function cpLength(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A high surrogate followed by a low one is one character.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** `text` from its code point `start` on. */
export function cpSliceFrom(text, start) {
  if (start <= 0) return text;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    if (n === start) return text.slice(i);
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return "";
}

/**
 * Merges a chunk at `offset` into `text` (`length`: its code points). Returns {text, length,
 * added}: `added` the part that was new (""), or null when the chunk starts past the end (a gap).
 */
export function mergeChunk(text, length, offset, chunk) {
  if (!Number.isInteger(offset) || offset < 0 || typeof chunk !== "string") return {text, length, added: ""};
  if (offset > length) return {text, length, added: null};
  const size = cpLength(chunk);
  if (offset + size <= length) return {text, length, added: ""}; // already held
  const added = cpSliceFrom(chunk, length - offset);
  return {text: text + added, length: offset + size, added};
}

const DONE_MAX = 1000;

/** The open streams of one channel, by id, in the order they started. */
export class StreamSet {
  constructor() {
    this.streams = new Map(); // id -> {id, sender, msg_type, payload, field, text, length, started_at, status, pending, gap}
    this.done = new Set(); // ids of streams that are over (completed and stored, or cancelled)
  }

  get size() {
    return this.streams.size;
  }

  get(id) {
    return this.streams.get(id) || null;
  }

  has(id) {
    return this.streams.has(id);
  }

  list() {
    return [...this.streams.values()];
  }

  /** A `stream.started` frame's stream (live, from a snapshot, or read again over REST). Answers
   * {stream, isNew, changed} or null for a stream that is over. A known stream takes the text
   * given only if it is longer than what it has (the snapshot may be older than the chunks seen). */
  started(info) {
    if (!info || typeof info.id !== "string" || this.done.has(info.id)) return null;
    const text = typeof info.text === "string" ? info.text : "";
    const known = this.streams.get(info.id);
    if (this.resync) this.resync.confirmed.add(info.id);
    if (known) {
      const length = cpLength(text);
      let changed = false;
      if (length > known.length) {
        known.text = text;
        known.length = length;
        changed = true;
      }
      if (this.drain(known)) changed = true;
      return {stream: known, isNew: false, changed};
    }
    const stream = {
      id: info.id, sender: info.sender || null, msg_type: info.msg_type || "text",
      payload: info.payload && typeof info.payload === "object" ? info.payload : {},
      field: typeof info.field === "string" && info.field ? info.field : "text",
      text, length: cpLength(text), started_at: info.started_at || null, reply_to: info.reply_to || null,
      audience: info.audience || "all", status: "open", pending: new Map(), gap: false,
    };
    this.streams.set(stream.id, stream);
    return {stream, isNew: true, changed: true};
  }

  /** A `stream.chunk` frame. Answers {stream, changed, gap} (gap: the chunk starts past the text's
   * end and waits aside), or null for a stream not known (over, or its start not seen yet). */
  chunk({id, offset, text}) {
    const stream = this.streams.get(id);
    if (!stream || stream.status === "cancelled") return null;
    const merged = mergeChunk(stream.text, stream.length, offset, text);
    if (merged.added === null) {
      if (!stream.pending.has(offset) || cpLength(stream.pending.get(offset)) < cpLength(text)) stream.pending.set(offset, text);
      stream.gap = true;
      return {stream, changed: false, gap: true};
    }
    stream.text = merged.text;
    stream.length = merged.length;
    const drained = this.drain(stream);
    return {stream, changed: merged.added !== "" || drained, gap: stream.gap};
  }

  /** Joins the chunks kept aside that the text now reaches; true if the text grew. */
  drain(stream) {
    let grew = false;
    let again = true;
    while (again && stream.pending.size) {
      again = false;
      for (const [offset, text] of [...stream.pending]) {
        if (offset > stream.length) continue;
        stream.pending.delete(offset);
        const merged = mergeChunk(stream.text, stream.length, offset, text);
        if (merged.added) {
          stream.text = merged.text;
          stream.length = merged.length;
          grew = true;
        }
        again = true;
      }
    }
    stream.gap = stream.pending.size > 0;
    return grew;
  }

  /** A `stream.ended` frame. Completed: the stream stays (its final message is on its way) and is
   * marked so. Cancelled: it is over. Answers the stream, or null if it was not known. */
  ended({id, status}) {
    const stream = this.streams.get(id);
    if (status === "cancelled") {
      this.finish(id);
      if (stream) stream.status = "cancelled";
      return stream || null;
    }
    if (!stream) return null;
    stream.status = "completed";
    return stream;
  }

  /** A stored message arrived: if it is a stream's final message, the stream is over. Answers the
   * stream it replaces, or null. */
  settle(messageId) {
    const stream = this.streams.get(messageId) || null;
    this.finish(messageId);
    return stream;
  }

  finish(id) {
    this.streams.delete(id);
    this.done.add(id);
    if (this.done.size > DONE_MAX) this.done.delete(this.done.values().next().value);
  }

  /** After a resubscribe the server sends again every stream still open; one that ended while
   * the socket was away is never heard of again. `beginResync()` notes the streams known now;
   * `endResync(openIds)` (the ids the server lists as open, read after the resubscribe) drops those
   * neither listed nor started again since, and answers their ids. */
  beginResync() {
    this.resync = {known: new Set(this.streams.keys()), confirmed: new Set()};
    return this.resync;
  }

  endResync(openIds, token = this.resync) {
    if (!token) return [];
    const open = new Set(openIds);
    const gone = [];
    for (const id of token.known) {
      if (!open.has(id) && !token.confirmed.has(id) && this.streams.has(id) && this.streams.get(id).status === "open") {
        this.finish(id);
        gone.push(id);
      }
    }
    if (this.resync === token) this.resync = null;
    return gone;
  }
}

/** The message a stream's card draws: the stream's payload with the text so far in its field. */
export function streamMessage(stream, channel) {
  return {
    id: stream.id, seq: Infinity, channel, msg_type: stream.msg_type, sender: stream.sender,
    payload: {...stream.payload, [stream.field]: stream.text}, created_at: stream.started_at,
    reply_to: stream.reply_to, audience: stream.audience, relates_to: null, deleted: false, reactions: [],
  };
}
