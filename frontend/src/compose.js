// The compose box: a type picker and the fields of the chosen type's payload (SPEC 6).
//
//   const compose = new Compose({types, onSend: async ({msg_type, payload, reply_to}) => ..., onTyping})
//   host.appendChild(compose.el)
//
// Enter sends (Shift+Enter is a new line); a failed send keeps what was written and shows why.

import {typeLabel, snippet} from "./render.js";
import {h, nameWithHandle} from "./ui.js";

const TASK_STATUSES = ["in_progress", "done", "blocked", "waiting"];

// Each type: the fields it asks for, and how they become a payload.
const FORMS = {
  text: {fields: [{name: "text", kind: "textarea", placeholder: "Write a message…", main: true}]},
  narration: {fields: [{name: "text", kind: "textarea", placeholder: "Narration: the prose between the lines…", main: true}]},
  dialogue: {
    fields: [
      {name: "character", kind: "input", placeholder: "Character", size: "sm"},
      {name: "direction", kind: "input", placeholder: "Direction (optional)", size: "md", optional: true},
      {name: "line", kind: "textarea", placeholder: "The line they speak…", main: true},
    ],
  },
  scene_plan: {
    fields: [
      {name: "title", kind: "input", placeholder: "Scene title", size: "lg"},
      {name: "beats", kind: "textarea", placeholder: "Beats, one per line", main: true, lines: true},
    ],
  },
  feedback: {
    fields: [
      {name: "rating", kind: "select", options: ["", "1", "2", "3", "4", "5"], labels: ["No rating", "★", "★★", "★★★", "★★★★", "★★★★★"], optional: true, number: true},
      {name: "text", kind: "textarea", placeholder: "Your feedback…", main: true},
    ],
    chip: "target",
  },
  query: {fields: [{name: "text", kind: "textarea", placeholder: "Ask the crew a question…", main: true}]},
  proposal: {fields: [{name: "text", kind: "textarea", placeholder: "Propose something to vote on…", main: true}]},
  decision: {fields: [{name: "text", kind: "textarea", placeholder: "What was decided…", main: true}], chip: "proposal"},
  task_update: {
    fields: [
      {name: "task", kind: "input", placeholder: "Task", size: "lg"},
      {name: "status", kind: "select", options: TASK_STATUSES},
      {name: "progress", kind: "input", type: "number", placeholder: "%", size: "xs", optional: true, percent: true},
    ],
  },
};

export class Compose {
  constructor({types, onSend, onTyping = () => {}, placeholder = null, compact = false, label = "Send",
    maxPayloadBytes = 65536}) {
    this.maxPayloadBytes = maxPayloadBytes; // the server's MYTHLINE_MAX_PAYLOAD_BYTES: checked before sending
    this.types = types.filter((t) => FORMS[t]);
    this.onSend = onSend;
    this.onTyping = onTyping;
    this.placeholder = placeholder;
    this.compact = compact;
    this.type = "text";
    this.context = {}; // reply_to / target / proposal chips: {key: message}
    this.inputs = {};
    this.sending = false;
    this.select = h("select.type-picker", {"aria-label": "Message type", onchange: () => this.setType(this.select.value)},
      this.types.map((t) => h("option", {value: t}, typeLabel(t))));
    this.fieldsEl = h("div.compose-fields");
    this.chipsEl = h("div.compose-chips");
    this.errorEl = h("div.compose-error", {role: "alert", hidden: true});
    this.sendBtn = h("button.btn.send", {type: "submit", title: "Send (Enter)"}, label);
    this.el = h("form.compose", {class: compact ? "compact" : "", onsubmit: (e) => {
      e.preventDefault();
      this.submit();
    }}, this.chipsEl, h("div.compose-row", null, this.select, this.fieldsEl, this.sendBtn), this.errorEl);
    this.setType("text");
  }

  setType(type, {focus = true} = {}) {
    if (!FORMS[type]) return;
    const keep = this.mainValue();
    this.type = type;
    this.select.value = type;
    this.inputs = {};
    while (this.fieldsEl.firstChild) this.fieldsEl.removeChild(this.fieldsEl.firstChild);
    for (const field of FORMS[type].fields) {
      let input;
      const label = field.placeholder || field.name;
      if (field.kind === "textarea") {
        input = h("textarea", {rows: 1, name: field.name, placeholder: field.main && this.placeholder && type === "text"
          ? this.placeholder : label, "aria-label": label});
        input.addEventListener("keydown", (e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !(field.lines && !e.ctrlKey && !e.metaKey)) {
            e.preventDefault();
            this.submit();
          } else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            this.submit();
          }
        });
        input.addEventListener("input", () => this.autosize(input));
      } else if (field.kind === "select") {
        input = h("select", {name: field.name, "aria-label": field.name},
          field.options.map((o, i) => h("option", {value: o}, field.labels ? field.labels[i] : o.replace(/_/g, " "))));
      } else {
        input = h("input", {name: field.name, type: field.type || "text", placeholder: label, "aria-label": label,
          min: field.percent ? "0" : null, max: field.percent ? "100" : null});
        input.addEventListener("keydown", (e) => {
          if (e.key === "Enter") {
            e.preventDefault();
            this.submit();
          }
        });
      }
      input.classList.add("field-" + (field.size || (field.main ? "main" : "md")));
      input.addEventListener("input", () => {
        this.hideError();
        this.onTyping(this.hasContent());
      });
      this.inputs[field.name] = input;
      this.fieldsEl.appendChild(input);
    }
    const main = FORMS[type].fields.find((f) => f.main);
    if (main && keep) {
      this.inputs[main.name].value = keep;
      this.autosize(this.inputs[main.name]);
    }
    this.renderChips();
    if (focus) this.focus();
  }

  mainValue() {
    const main = FORMS[this.type] && FORMS[this.type].fields.find((f) => f.main);
    return main && this.inputs[main.name] ? this.inputs[main.name].value : "";
  }

  hasContent() {
    return Object.values(this.inputs).some((i) => i.tagName !== "SELECT" && i.value.trim() !== "");
  }

  focus() {
    const main = FORMS[this.type].fields.find((f) => f.main) || FORMS[this.type].fields[0];
    const input = this.inputs[main.name];
    if (input && !input.disabled) input.focus();
  }

  autosize(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, 180)}px`;
  }

  /** Attach a reference: `reply_to`, `target` (feedback) or `proposal` (decision). */
  setContext(key, message) {
    if (message) this.context[key] = message;
    else delete this.context[key];
    this.renderChips();
  }

  renderChips() {
    while (this.chipsEl.firstChild) this.chipsEl.removeChild(this.chipsEl.firstChild);
    const labels = {reply_to: "Replying to", target: "Feedback on", proposal: "Deciding"};
    const wanted = new Set(["reply_to", FORMS[this.type].chip].filter(Boolean));
    for (const [key, message] of Object.entries(this.context)) {
      if (!wanted.has(key)) continue;
      this.chipsEl.appendChild(h("span.chip", {dataset: {chip: key}},
        h("span.chip-label", null, labels[key]), " ", h("b", null, nameWithHandle(message.sender)), " ",
        h("span.chip-text", null, snippet(message, 60)),
        h("button.chip-x", {type: "button", title: "Remove", "aria-label": "Remove",
          onclick: () => this.setContext(key, null)}, "×")));
    }
    this.chipsEl.hidden = !this.chipsEl.firstChild;
  }

  setEnabled(enabled, reason = "") {
    this.el.classList.toggle("disabled", !enabled);
    for (const el of [this.select, this.sendBtn, ...Object.values(this.inputs)]) el.disabled = !enabled;
    this.el.title = enabled ? "" : reason;
  }

  payload() {
    const form = FORMS[this.type];
    const payload = {};
    for (const field of form.fields) {
      const raw = this.inputs[field.name].value;
      if (field.lines) {
        const lines = raw.split("\n").map((l) => l.trim()).filter(Boolean);
        if (!lines.length) throw new Error(`Add at least one ${field.name.replace(/s$/, "")}.`);
        payload[field.name] = lines;
      } else if (field.number || field.percent) {
        if (raw.trim() === "") {
          if (!field.optional) throw new Error(`${field.name} is required.`);
          continue;
        }
        payload[field.name] = field.percent ? Math.max(0, Math.min(100, Number(raw))) / 100 : Number(raw);
      } else {
        const value = field.kind === "textarea" ? raw.replace(/\s+$/, "") : raw.trim();
        if (!value.trim()) {
          if (field.optional) continue;
          throw new Error(field.main ? "Write something first." : `${field.placeholder || field.name} is required.`);
        }
        payload[field.name] = value;
      }
    }
    if (form.chip === "target" && this.context.target) payload.target = this.context.target.id;
    if (form.chip === "proposal" && this.context.proposal) payload.proposal = this.context.proposal.id;
    return payload;
  }

  async submit() {
    if (this.sending) return;
    let payload;
    try {
      payload = this.payload();
    } catch (error) {
      this.showError(error.message);
      return;
    }
    const size = new TextEncoder().encode(JSON.stringify(payload)).length;
    if (size > this.maxPayloadBytes) {
      this.showError(`This message is too long (${size.toLocaleString("en")} bytes); the limit is ` +
        `${this.maxPayloadBytes.toLocaleString("en")} bytes. Shorten it or split it into several messages.`);
      return;
    }
    const body = {msg_type: this.type, payload};
    if (this.context.reply_to) body.reply_to = this.context.reply_to.id;
    this.sending = true;
    this.el.classList.add("sending");
    try {
      await this.onSend(body);
      this.reset();
      this.onTyping(false);
    } catch (error) {
      this.showError(describeError(error));
    } finally {
      this.sending = false;
      this.el.classList.remove("sending");
    }
  }

  reset() {
    for (const [name, input] of Object.entries(this.inputs)) {
      if (input.tagName === "SELECT") continue;
      if (this.type === "dialogue" && name === "character") continue; // the same character speaks on
      input.value = "";
      if (input.tagName === "TEXTAREA") this.autosize(input);
    }
    delete this.context.target;
    delete this.context.proposal;
    if (!this.keepReply) delete this.context.reply_to;
    this.renderChips();
    this.focus();
  }

  showError(message) {
    this.errorEl.textContent = message;
    this.errorEl.hidden = false;
  }

  hideError() {
    if (!this.errorEl.hidden) this.errorEl.hidden = true;
  }
}

const FIELD_NAMES = {msg_type: "Type", payload: "Message", text: "Text", name: "Name", topic: "Topic", title: "Title",
  username: "Username", role: "Role", kind: "Kind", slug: "Address", premise: "Premise"};

function sentence(text) {
  const t = String(text).trim();
  return /[.!?…]$/.test(t) ? t : `${t}.`;
}

/** A server or socket error in words a person can read (no JSON, no field paths). */
export function describeError(error) {
  if (!error) return "Something went wrong.";
  if (error.code === "disconnected" || error.code === "timeout") return "Not sent: the connection is down. Try again in a moment.";
  const details = error.details || (error.frame && error.frame.details);
  const message = error.message || String(error);
  if (error.code === "rate_limited") {
    const wait = details && Number(details.retry_after);
    return wait ? `Too many at once: try again in ${wait} second${wait === 1 ? "" : "s"}.` : sentence(message);
  }
  if (error.code === "payload_too_large" && details && details.limit) {
    const what = details.field === "payload" ? "This message is" : "This is";
    const size = details.size ? ` (${Number(details.size).toLocaleString("en")} bytes)` : "";
    return `${what} too long${size}: the limit is ${Number(details.limit).toLocaleString("en")} bytes. Shorten it or split it.`;
  }
  // A specific message says it all ("No user 'x'."); a generic one ("The message is invalid.")
  // gives way to what its details say of each field.
  const generic = /\bis invalid\.?$|unknown fields\.?$/.test(message);
  if (generic && details && typeof details === "object" && !Array.isArray(details)) {
    const parts = [];
    for (const [field, value] of Object.entries(details)) {
      if (field === "retry_after") continue;
      const texts = (Array.isArray(value) ? value : [value]).filter((v) => typeof v === "string" && v);
      if (!texts.length) continue;
      const last = field.split(".").pop().replace(/\[\d+\]$/, "");
      const label = FIELD_NAMES[last] || last.replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
      for (const text of texts) parts.push(/^(is|must|may|has) /.test(text) ? `${label} ${sentence(text)}` : `${label}: ${sentence(text)}`);
    }
    if (parts.length) return parts.join(" ");
  }
  return sentence(message);
}
