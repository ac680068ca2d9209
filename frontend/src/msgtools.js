// What the room needs to edit, delete and react to a message, and to show search results
// (issue #17), with no DOM, no socket and no fetch: who may do what to a card, which fields of a
// payload the inline editor offers and the new payload it makes, the reaction picker's keys, the
// search request's path and the server's highlight split into text and marks.
// msgactions.js and search.js draw with these; tests/node/msgtools.test.mjs drives them directly.

/** The reaction picker's keys, with the words a screen reader says for each. */
export const REACTIONS = [
  {key: "👍", name: "thumbs up"},
  {key: "❤️", name: "heart"},
  {key: "😂", name: "laughing"},
  {key: "🎉", name: "party"},
  {key: "🤔", name: "thinking"},
  {key: "👀", name: "eyes"},
];

/** The words for a reaction key: its name when it is one of the picker's, else the key itself. */
export function reactionName(key) {
  const known = REACTIONS.find((r) => r.key === key);
  return known ? known.name : String(key);
}

/** The words on a reaction chip for a screen reader: the key, the count, whether one is mine. */
export function chipLabel(r, {canReact = true} = {}) {
  const who = `${r.count} reaction${r.count === 1 ? "" : "s"}`;
  const hint = canReact ? (r.me ? ", yours; press to take it back" : "; press to add yours") : (r.me ? ", yours" : "");
  return `${reactionName(r.key)}: ${who}${hint}`;
}

// The text fields of the built-in types (as compose.js writes them), in the editor's order.
// `lines`: a list of strings edited one per line; `optional`: may be left empty (it is then dropped).
const EDITABLE = {
  text: [{name: "text", label: "Text", multiline: true}],
  query: [{name: "text", label: "Question", multiline: true}],
  narration: [{name: "text", label: "Narration", multiline: true}],
  proposal: [{name: "text", label: "Proposal", multiline: true}],
  decision: [{name: "text", label: "Decision", multiline: true}],
  feedback: [{name: "text", label: "Feedback", multiline: true}],
  dialogue: [
    {name: "character", label: "Character"},
    {name: "direction", label: "Direction", optional: true},
    {name: "line", label: "Line", multiline: true},
  ],
  scene_plan: [{name: "title", label: "Scene title"}, {name: "beats", label: "Beats, one per line", multiline: true, lines: true}],
  task_update: [{name: "task", label: "Task"}],
};
// Types whose payload is not prose to fix: a vote is changed by voting again.
const NOT_EDITABLE = new Set(["vote", "edit", "delete", "reaction"]);

/** The fields the inline editor offers for `message`, each {name, label, multiline, lines, optional,
 * value}; empty when there is nothing to edit (a vote, a relation, a deleted message). Another type:
 * its top-level string fields. */
export function editableFields(message) {
  if (!message || message.deleted || message.relates_to || NOT_EDITABLE.has(message.msg_type)) return [];
  const payload = message.payload && typeof message.payload === "object" ? message.payload : {};
  const known = EDITABLE[message.msg_type];
  const fields = known || Object.entries(payload).filter(([, v]) => typeof v === "string")
    .map(([name, v]) => ({name, label: name.replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase()),
      multiline: v.length > 60 || v.includes("\n"), optional: true}));
  return fields.map((f) => {
    const raw = payload[f.name];
    const value = f.lines ? (Array.isArray(raw) ? raw.map(String).join("\n") : "") : typeof raw === "string" ? raw : "";
    return {multiline: false, lines: false, optional: false, ...f, value};
  });
}

/** The new payload from the editor's `values` (name -> text): the message's payload with those
 * fields changed (the others, a feedback's target or rating, a receipt, kept as they are). Answers
 * {payload, changed}; throws an Error whose message says what is missing. */
export function editedPayload(message, values) {
  const fields = editableFields(message);
  const payload = {...(message.payload || {})};
  let changed = false;
  for (const f of fields) {
    const raw = values[f.name] == null ? "" : String(values[f.name]);
    let value;
    if (f.lines) {
      value = raw.split("\n").map((l) => l.trim()).filter(Boolean);
      if (!value.length) throw new Error(`Add at least one line to ${f.label.toLowerCase()}.`);
      if (JSON.stringify(value) !== JSON.stringify(payload[f.name])) changed = true;
    } else {
      value = f.multiline ? raw.replace(/\s+$/, "") : raw.trim();
      if (!value.trim()) {
        if (!f.optional) throw new Error(fields.length === 1 ? "Write something first." : `${f.label} is required.`);
        if (f.name in payload) changed = true;
        delete payload[f.name];
        continue;
      }
      if (value !== payload[f.name]) changed = true;
    }
    payload[f.name] = value;
  }
  return {payload, changed};
}

/** Who may do what to a message's card. `room`: {me, canWrite (the reader's role writes), isOwner,
 * archived (channel name -> whether it is archived)}. */
export function messageRights(message, {me, canWrite, isOwner, archived = () => false}) {
  const none = {react: false, edit: false, remove: false};
  if (!message || message.relates_to || message.deleted || !canWrite || archived(message.channel)) return none;
  const mine = !!(me && message.sender && message.sender.username === me.username);
  return {
    react: true,
    edit: mine && editableFields(message).length > 0,
    remove: mine || !!isOwner,
  };
}

/** The path of a search of a story's messages (protocol.md 3, "Search"); null for a query the
 * server would refuse or that finds nothing (empty, only spaces). Over 200 characters is cut. */
export function searchPath(query, story, {offset = 0, limit = 20} = {}) {
  const q = String(query || "").trim().slice(0, 200);
  if (!q) return null;
  const params = new URLSearchParams({q, story, limit: String(limit)});
  if (offset) params.set("offset", String(offset));
  return `/api/search?${params}`;
}

const ENTITIES = {amp: "&", lt: "<", gt: ">", quot: "\"", apos: "'"};

function decodeEntities(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (all, name) => {
    if (name[0] === "#") {
      const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return Number.isFinite(code) && code >= 0 && code <= 0x10ffff ? String.fromCodePoint(code) : all;
    }
    return ENTITIES[name.toLowerCase()] ?? all;
  });
}

/** The server's highlight (escaped text, hits in <mark>…</mark>) as parts [{text, mark}], to be
 * drawn as text nodes and <mark> elements: the page never parses it as markup, so even a
 * highlight that was not escaped could not add an element. */
export function highlightParts(html) {
  const parts = [];
  let mark = false;
  for (const piece of String(html || "").split(/(<mark>|<\/mark>)/)) {
    if (piece === "<mark>") mark = true;
    else if (piece === "</mark>") mark = false;
    else if (piece) parts.push({text: decodeEntities(piece), mark});
  }
  return parts;
}
