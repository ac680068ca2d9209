// A card per message type (SPEC 6), built from text nodes only: a payload is data, never markup.
//
// `renderMessage(message, ctx)` returns an <article class="msg">; `ctx` connects the card to the
// page (look up other messages, open a thread, vote...). Cards carry data-id, data-seq and
// data-type, so the page can find them again (live tallies, reply counts, jumps).

import {chipLabel} from "./msgtools.js";
import {avatar, clock, h, kindBadge, nameWithHandle, nameWithHandleText, progressBar} from "./ui.js";

export const TYPE_LABELS = {
  text: "Message",
  scene_plan: "Scene plan",
  narration: "Narration",
  dialogue: "Dialogue",
  feedback: "Feedback",
  query: "Question",
  task_update: "Task update",
  proposal: "Proposal",
  vote: "Vote",
  decision: "Decision",
};

export const VOTE_CHOICES = ["yes", "no", "abstain"];

export function typeLabel(type) {
  return TYPE_LABELS[type] || type;
}

/** One line of text that stands for a message (reply headers, links, thread titles). */
export function snippet(message, max = 90) {
  if (!message) return "";
  const p = message.payload || {};
  let text;
  switch (message.msg_type) {
    case "dialogue":
      text = `${p.character ? p.character + ": " : ""}${p.line || ""}`;
      break;
    case "scene_plan":
      text = p.title || "Scene plan";
      break;
    case "task_update":
      text = `${p.task || "Task"} (${String(p.status || "?").replaceAll("_", " ")})`;
      break;
    case "vote":
      text = `voted ${p.choice || "?"}`;
      break;
    default:
      text = typeof p.text === "string" ? p.text : typeof p.title === "string" ? p.title : JSON.stringify(p);
  }
  text = String(text).replace(/\s+/g, " ").trim();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function stringOr(value, fallback = "") {
  return typeof value === "string" ? value : value == null ? fallback : JSON.stringify(value);
}

/** A link to another message: jumps to it in the feed, or opens it in the thread panel. */
function messageLink(ctx, id, label) {
  const target = ctx.lookup(id);
  const text = target ? `${nameWithHandleText(target.sender)}: ${snippet(target, 70)}` : "a message";
  return h("button.msg-link", {type: "button", title: "Show this message", dataset: {target: id},
    onclick: (e) => {
      e.preventDefault();
      ctx.jumpTo(id);
    }}, h("span.msg-link-label", null, label), " ", h("span.msg-link-text", null, text));
}

const LONG_MESSAGE_CHARS = 1500;

function textLength(message) {
  const p = message.payload || {};
  return ["text", "line", "beats"].reduce((n, k) => n + (typeof p[k] === "string" ? p[k].length
    : Array.isArray(p[k]) ? p[k].join(" ").length : 0), 0);
}

function paragraphs(text) {
  return stringOr(text).split(/\n{2,}/).map((para) => h("p", null, para));
}

function bodyFor(message, ctx) {
  const p = message.payload || {};
  switch (message.msg_type) {
    case "text":
    case "query":
      return h("div.msg-text", null, paragraphs(p.text));
    case "narration":
      return h("div.narration", null, paragraphs(p.text));
    case "dialogue":
      return h("div.dialogue", null,
        h("div.dialogue-who", null, h("span.character", null, stringOr(p.character, "?")),
          p.direction ? h("span.direction", null, `(${stringOr(p.direction)})`) : null),
        h("blockquote.line", null, stringOr(p.line)));
    case "scene_plan": {
      const beats = Array.isArray(p.beats) ? p.beats : [];
      return h("div.scene-plan", null, h("h4.scene-title", null, stringOr(p.title, "Untitled scene")),
        h("ol.beats", null, beats.map((beat, i) => h("li", {dataset: {beat: String(i + 1)}}, stringOr(beat)))));
    }
    case "feedback": {
      const rating = Number(p.rating);
      const stars = rating >= 1 && rating <= 5
        ? h("span.stars", {title: `${rating} out of 5`, "aria-label": `Rated ${rating} out of 5`},
          h("span.stars-on", null, "★".repeat(rating)), h("span.stars-off", null, "★".repeat(5 - rating)))
        : null;
      // A feedback that replies to its target already shows it in the reply header.
      return h("div.feedback", null, stars, h("div.msg-text", null, paragraphs(p.text)),
        p.target && p.target !== message.reply_to ? messageLink(ctx, p.target, "On") : null);
    }
    case "task_update":
      return h("div.task-update", null,
        h("div.task-line", null, h("span.task-name", null, stringOr(p.task, "Task")),
          h(`span.status.status-${String(p.status || "").replace(/[^a-z_]/gi, "") || "unknown"}`, null,
            stringOr(p.status, "?").replaceAll("_", " "))),
        progressBar(p.progress));
    case "proposal":
      return h("div.proposal", null, h("div.msg-text", null, paragraphs(p.text)), tallyElement(message, ctx));
    case "vote":
      return h("div.vote", null, h("span.vote-choice", {dataset: {choice: stringOr(p.choice)}}, stringOr(p.choice)),
        p.proposal && p.proposal !== message.reply_to ? messageLink(ctx, p.proposal, "on") : null);
    case "decision":
      return h("div.decision", null, h("div.msg-text", null, paragraphs(p.text)),
        p.proposal && p.proposal !== message.reply_to ? messageLink(ctx, p.proposal, "Decides") : null);
    default:
      return genericBody(p);
  }
}

/** Any other type: its fields as a definition list of text. */
function genericBody(payload) {
  const rows = Object.entries(payload || {});
  if (!rows.length) return h("div.msg-text.muted", null, "(empty)");
  return h("dl.fields", null, rows.map(([key, value]) => [
    h("dt", null, key),
    h("dd", null, Array.isArray(value) && value.every((v) => typeof v === "string")
      ? h("ul", null, value.map((v) => h("li", null, v)))
      : stringOr(value)),
  ]));
}

/** The live vote count of a proposal, with buttons to vote (editors). */
export function tallyElement(proposal, ctx) {
  const el = h("div.tally", {dataset: {proposal: proposal.id}});
  fillTally(el, proposal, ctx);
  return el;
}

export function fillTally(el, proposal, ctx) {
  while (el.firstChild) el.removeChild(el.firstChild);
  const votes = ctx.votesFor(proposal.id); // Map username -> {choice, sender}
  const counts = new Map(VOTE_CHOICES.map((c) => [c, 0]));
  for (const v of votes.values()) counts.set(v.choice, (counts.get(v.choice) || 0) + 1);
  const mine = ctx.me ? votes.get(ctx.me.username) : null;
  const total = votes.size;
  for (const [choice, n] of counts) {
    const pct = total ? Math.round((n / total) * 100) : 0;
    const bar = h("span.tally-bar-fill");
    bar.style.width = `${pct}%`;
    const voters = [...votes.values()].filter((v) => v.choice === choice).map((v) => nameWithHandleText(v.sender));
    const picked = Boolean(mine && mine.choice === choice);
    const attrs = {type: "button", dataset: {choice}, title: voters.length ? voters.join(", ") : "No votes yet",
      class: picked ? "mine" : "", "aria-pressed": picked ? "true" : "false",
      "aria-label": `${choice}: ${n} vote${n === 1 ? "" : "s"}${picked ? ", your vote" : ""}`};
    if (ctx.canVote && ctx.canVote(proposal)) {
      attrs.onclick = (e) => {
        e.preventDefault();
        ctx.vote(proposal, choice);
      };
    } else {
      attrs.disabled = true;
    }
    el.appendChild(h("button.tally-choice", attrs,
      h("span.tally-name", null, choice), h("span.tally-bar", null, bar), h("span.tally-count", null, String(n))));
  }
  const decided = ctx.decidedIn && ctx.decidedIn(proposal.id);
  el.appendChild(h("span.tally-total.muted", null, `${total} vote${total === 1 ? "" : "s"}`,
    decided ? " · decided, voting closed" : ""));
}

// --- context receipts: what a crew message was based on (payload.based_on) ---------------------

const RECEIPT_MAX = 12;

function shortText(value, max = 80) {
  const text = String(value).replace(/\s+/g, " ").trim();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function isObject(value) {
  return value != null && typeof value === "object" && !Array.isArray(value);
}

function isCount(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

/** "Based on: Mara, the Quay · 3 messages · main chars 10–240 · outline scene 2": from
 * `payload.based_on`, a shape any sender could forge, so every part is checked and anything
 * malformed is left out; only text nodes. Null when nothing is left. */
export function basedOnLine(basedOn, ctx = {}) {
  if (!isObject(basedOn)) return null;
  const parts = [];
  const bible = Array.isArray(basedOn.bible)
    ? basedOn.bible.filter((e) => isObject(e) && typeof e.name === "string" && e.name.trim()) : [];
  if (bible.length) {
    const names = [];
    for (const entry of bible.slice(0, RECEIPT_MAX)) {
      if (names.length) names.push(", ");
      const name = shortText(entry.name, 60);
      const slug = typeof entry.slug === "string" && entry.slug ? entry.slug : null;
      names.push(slug && ctx.openBible
        ? h("button.msg-link.receipt-bible", {type: "button", title: "Open in the story bible", dataset: {slug},
          onclick: (e) => {
            e.preventDefault();
            ctx.openBible(slug, e.currentTarget);
          }}, name)
        : h("span.receipt-bible", null, name));
    }
    if (bible.length > RECEIPT_MAX) names.push(` and ${bible.length - RECEIPT_MAX} more`);
    parts.push(h("span.receipt-part.receipt-bible-list", null, names));
  }
  const messages = Array.isArray(basedOn.messages)
    ? basedOn.messages.filter((m) => isObject(m) && typeof m.id === "string" && m.id) : [];
  if (messages.length) {
    const part = h("span.receipt-part.receipt-messages", null, `${messages.length} message${messages.length === 1 ? "" : "s"}`);
    const loaded = ctx.lookup ? messages.slice(0, RECEIPT_MAX).filter((m) => ctx.lookup(m.id)) : [];
    if (loaded.length) {
      part.append(" (");
      loaded.forEach((m, i) => {
        const target = ctx.lookup(m.id);
        const who = target && target.sender ? `@${target.sender.username}`
          : typeof m.sender === "string" ? `@${shortText(m.sender, 40)}` : `#${i + 1}`;
        if (i) part.append(", ");
        part.append(h("button.msg-link.receipt-message", {type: "button", title: `Show this message: ${snippet(target, 70)}`,
          dataset: {target: m.id}, onclick: (e) => {
            e.preventDefault();
            if (ctx.jumpTo) ctx.jumpTo(m.id);
          }}, who));
      });
      part.append(")");
    }
    parts.push(part);
  }
  const doc = basedOn.document;
  // The crew names the document `document` (docs/crew.md); `name` is taken too.
  const docName = isObject(doc) ? [doc.document, doc.name].find((v) => typeof v === "string" && v.trim()) : null;
  if (docName) {
    const span = isCount(doc.from) && isCount(doc.to) && doc.to >= doc.from ? ` chars ${doc.from}–${doc.to}` : "";
    const revision = isCount(doc.revision) ? `revision ${doc.revision}` : null;
    parts.push(h("span.receipt-part.receipt-document", {title: revision}, `${shortText(docName, 64)}${span}`));
  }
  const scene = basedOn.outline;
  if (isObject(scene) && isCount(scene.position) && scene.position > 0) {
    parts.push(h("span.receipt-part.receipt-outline", {title: typeof scene.title === "string" ? shortText(scene.title, 200) : null},
      `outline scene ${scene.position}`));
  }
  if (!parts.length) return null;
  const line = h("p.muted.small.msg-based-on", null, "Based on: ");
  parts.forEach((part, i) => {
    if (i) line.append(" · ");
    line.append(part);
  });
  return line;
}

/**
 * The card of one message. `options.compact` leaves out the reply header (thread panel).
 */
export function renderMessage(message, ctx, {compact = false, root = false} = {}) {
  const sender = message.sender || {username: "?", display_name: "?", kind: "human"};
  const type = message.msg_type;
  const safeType = /^[a-z0-9_.-]+$/.test(type) ? type.replace(/\./g, "-") : "other";
  const card = h(`article.msg.msg-${safeType}`, {
    dataset: {id: message.id, seq: String(message.seq), type, sender: sender.username, channel: message.channel},
    class: [sender.kind === "agent" ? "from-agent" : "from-human", root ? "thread-root" : "",
      ctx.me && sender.username === ctx.me.username ? "mine" : ""].filter(Boolean).join(" "),
  });
  const head = h("header.msg-head", null,
    h("span.msg-author", null, nameWithHandle(sender)),
    kindBadge(sender.kind),
    type !== "text" ? h(`span.type-badge.t-${safeType}`, null, typeLabel(type)) : null,
    message.audience && message.audience !== "all"
      ? h("span.audience", {title: "Only these readers see it"},
        `→ ${Array.isArray(message.audience) ? message.audience.join(", ") : message.audience}`)
      : null,
    h("time.msg-time", {datetime: message.created_at, title: `${message.created_at} · #${message.seq}`},
      clock(message.created_at)),
    message.edited_at && !message.deleted
      ? h("span.msg-edited", {title: `Edited ${message.edited_at}`}, "(edited)") : null);
  const main = h("div.msg-main", null, head);
  if (message.reply_to && !compact) {
    const parent = ctx.lookup(message.reply_to);
    main.appendChild(h("button.reply-ref", {type: "button", title: "Open the thread",
      onclick: (e) => {
        e.preventDefault();
        ctx.openThread(message.id);
      }}, h("span.reply-arrow", {"aria-hidden": "true"}, "↪"),
    parent ? [h("b", null, nameWithHandle(parent.sender)), " ", snippet(parent, 80)] : "in reply to an earlier message"));
  }
  // A deleted message keeps its place in the log; what it said is gone from the room (the audit
  // trail keeps it). An edited one shows its latest text (docs/protocol.md 4.1).
  const body = h("div.msg-body", null, message.deleted
    ? h("p.msg-deleted", null, "This message was deleted.") : bodyFor(message, ctx));
  main.appendChild(body);
  const receipt = message.payload ? basedOnLine(message.payload.based_on, ctx) : null;
  if (textLength(message) > LONG_MESSAGE_CHARS) {
    // A wall of text is folded to a few lines, with a button to read it all (and fold it again).
    body.classList.add("folded");
    const id = `body-${message.id}-${compact ? "t" : "f"}`;
    body.id = id;
    main.appendChild(h("button.show-more", {type: "button", "aria-expanded": "false", "aria-controls": id,
      onclick: (e) => {
        const folded = body.classList.toggle("folded");
        e.currentTarget.setAttribute("aria-expanded", String(!folded));
        e.currentTarget.textContent = folded ? "Show more" : "Show less";
      }}, "Show more"));
  }
  if (receipt) main.appendChild(receipt);
  const foot = h("footer.msg-foot", null);
  const replies = ctx.replyCount ? ctx.replyCount(message.id) : 0;
  const repliesBtn = h("button.replies-link", {type: "button", hidden: !replies || compact,
    onclick: (e) => {
      e.preventDefault();
      ctx.openThread(message.id);
    }}, replies === 1 ? "1 reply" : `${replies} replies`);
  foot.appendChild(repliesBtn);
  const actions = h("span.msg-actions", null);
  if (ctx.canReply && ctx.canReply(message)) {
    actions.appendChild(h("button.act", {type: "button", dataset: {act: "reply"}, title: "Reply in thread",
      onclick: (e) => {
        e.preventDefault();
        ctx.reply(message);
      }}, "Reply"));
    if (type !== "feedback" && type !== "vote") {
      actions.appendChild(h("button.act", {type: "button", dataset: {act: "feedback"}, title: "Give feedback on this",
        onclick: (e) => {
          e.preventDefault();
          ctx.feedback(message);
        }}, "Feedback"));
    }
    if (type === "proposal") {
      actions.appendChild(h("button.act", {type: "button", dataset: {act: "decide"}, title: "Record a decision",
        onclick: (e) => {
          e.preventDefault();
          ctx.decide(message);
        }}, "Decide"));
    }
  }
  // Edit, delete, react (msgactions.js): what the reader may do to this message (msgtools.messageRights).
  const rights = ctx.rights ? ctx.rights(message) : {react: false, edit: false, remove: false};
  if (rights.react) {
    actions.appendChild(h("button.act", {type: "button", dataset: {act: "react"}, title: "React",
      "aria-label": "React to this message", "aria-expanded": "false",
      onclick: (e) => {
        e.preventDefault();
        ctx.openPicker(message, e.currentTarget);
      }}, "React"));
  }
  if (rights.edit) {
    actions.appendChild(h("button.act", {type: "button", dataset: {act: "edit"}, title: "Edit your message",
      "aria-label": "Edit this message", onclick: (e) => {
        e.preventDefault();
        ctx.edit(message, card);
      }}, "Edit"));
  }
  if (rights.remove) {
    actions.appendChild(h("button.act.act-danger", {type: "button", dataset: {act: "delete"}, title: "Delete this message",
      "aria-label": "Delete this message", onclick: (e) => {
        e.preventDefault();
        ctx.remove(message);
      }}, "Delete"));
  }
  foot.appendChild(actions);
  const reactions = !message.deleted && Array.isArray(message.reactions) ? message.reactions : [];
  if (reactions.length) {
    // A chip is a button for whoever may react here: mine takes it back, another adds mine.
    main.appendChild(h("ul.reactions", {"aria-label": "Reactions"}, reactions.map((r) => {
      const parts = [h("span.reaction-key", {"aria-hidden": "true"}, String(r.key)),
        h("span.reaction-count", {"aria-hidden": "true"}, String(r.count))];
      return h(`li.reaction${r.me ? ".mine" : ""}`, {title: `${r.count} reacted with ${r.key}${r.me ? ", you too" : ""}`},
        rights.react
          ? h("button.reaction-toggle", {type: "button", dataset: {key: String(r.key)}, "aria-pressed": String(!!r.me),
            "aria-label": chipLabel(r), onclick: (e) => {
              e.preventDefault();
              ctx.toggleReaction(message, String(r.key));
            }}, parts)
          : h("span.reaction-static", {"aria-label": chipLabel(r, {canReact: false}), role: "img"}, parts));
    })));
  }
  main.appendChild(foot);
  card.appendChild(h("div.msg-avatar", null, avatar(sender)));
  card.appendChild(main);
  return card;
}

/** Updates the "N replies" button of every card of `id` in `root`. */
export function updateReplyCount(root, id, count) {
  for (const card of root.querySelectorAll(`.msg[data-id="${CSS.escape(id)}"]`)) {
    const btn = card.querySelector(":scope > .msg-main > .msg-foot > .replies-link");
    if (!btn || card.closest(".drawer")) continue;
    btn.hidden = !count;
    btn.textContent = count === 1 ? "1 reply" : `${count} replies`;
  }
}
