// Editing, deleting and reacting from the room (issue #17, docs/protocol.md 4.1). Each is a relation
// posted like any message (the room's publish: the socket, with an id that makes a retry safe); the
// card changes when its relation comes back on the channel's subscription, in every open room alike
// (roomstate.applyRelation, feed.redraw), so nothing here draws a result of its own.
//
// - Edit: an inline form in the card over the payload's text fields (msgtools.editableFields);
//   Enter or Save posts `edit` with the new payload, Esc or Cancel leaves it. A card being edited is
//   not redrawn under the writer (feed.redraw waits until the form closes).
// - Delete: asks first, posts `delete`. The story owner may delete anyone's message.
// - React: a picker of six keys posts `reaction`; a chip of mine (or a picked key I already gave)
//   takes it back: a `delete` of my reaction message, found in the room's log, else answered by the
//   server for a repeat of the reaction (a repeat answers the stored reaction, storing nothing).

import {describeError} from "./compose.js";
import {editableFields, editedPayload, messageRights, REACTIONS} from "./msgtools.js";
import {h, labelled, toast} from "./ui.js";

export class MessageActions {
  /** `room`: the RoomPage (state, config, publish, feed). */
  constructor(room) {
    this.room = room;
  }

  rights(message) {
    const {config, state} = this.room;
    return messageRights(message, {me: config.me, canWrite: config.can_write, isOwner: config.is_owner,
      archived: (name) => {
        const ch = state.get(name);
        return !!(ch && ch.archived);
      }});
  }

  // --- edit ------------------------------------------------------------------------------------

  /** Opens the inline editor in `card` (the card of `message`; its Edit button was pressed). */
  startEdit(message, card) {
    const main = card.querySelector(":scope > .msg-main");
    const body = main && main.querySelector(":scope > .msg-body");
    if (!body || main.querySelector(":scope > .msg-edit-form")) return;
    const fields = editableFields(message);
    if (!fields.length) return;
    const inputs = {};
    const error = h("p.form-error.msg-edit-error", {role: "alert", hidden: true});
    const form = h("form.msg-edit-form", {"aria-label": "Edit your message", novalidate: true});
    const close = (focusAct = "edit") => this.closeEdit(message.id, card, focusAct);
    for (const f of fields) {
      const control = f.multiline
        ? h("textarea", {name: f.name, rows: Math.min(8, Math.max(2, f.value.split("\n").length)), value: f.value})
        : h("input", {name: f.name, type: "text"});
      control.value = f.value;
      control.addEventListener("keydown", (e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          e.stopPropagation();
          close();
        } else if (e.key === "Enter" && !e.isComposing && (e.ctrlKey || e.metaKey || (!e.shiftKey && !f.lines))) {
          e.preventDefault();
          form.requestSubmit();
        }
      });
      inputs[f.name] = control;
      form.append(labelled(fields.length === 1 ? "Edit the message" : f.label, control));
    }
    const save = h("button.btn.sm", {type: "submit", dataset: {act: "save"}}, "Save");
    const cancel = h("button.btn.ghost.sm", {type: "button", dataset: {act: "cancel"}, onclick: () => close()}, "Cancel");
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !e.defaultPrevented) {
        e.preventDefault();
        e.stopPropagation();
        close();
      }
    });
    form.append(error, h("div.msg-edit-actions", null, save, cancel,
      h("span.muted.small", null, fields.some((f) => f.lines) ? "Ctrl+Enter saves · Esc cancels" : "Enter saves · Esc cancels")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (form.classList.contains("saving")) return;
      const values = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value]));
      let edited;
      try {
        edited = editedPayload(message, values);
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        return;
      }
      if (!edited.changed) {
        close();
        return;
      }
      const limit = (this.room.config.limits && this.room.config.limits.max_payload_bytes) || 65536;
      const size = new TextEncoder().encode(JSON.stringify({payload: edited.payload})).length;
      if (size > limit) {
        error.textContent = `This is too long (${size.toLocaleString("en")} bytes): the limit is ${limit.toLocaleString("en")} bytes.`;
        error.hidden = false;
        return;
      }
      form.classList.add("saving");
      for (const el of [...Object.values(inputs), save, cancel]) el.disabled = true;
      try {
        await this.room.publish(message.channel, {msg_type: "edit", relates_to: message.id, payload: {payload: edited.payload}});
        // The relation's frame redraws the card with the server's view; until it comes, the new text.
        const held = this.room.state.lookup(message.id);
        if (held && JSON.stringify(held.payload) !== JSON.stringify(edited.payload) && !held.deleted) {
          held.payload = edited.payload;
          held.edited_at = held.edited_at || new Date().toISOString();
        }
        close();
      } catch (err) {
        form.classList.remove("saving");
        for (const el of [...Object.values(inputs), save, cancel]) el.disabled = false;
        error.textContent = describeError(err);
        error.hidden = false;
        const first = Object.values(inputs)[0];
        if (first) first.focus();
      }
    });
    body.hidden = true;
    card.classList.add("editing");
    body.after(form);
    const first = Object.values(inputs)[0];
    first.focus();
    first.setSelectionRange(first.value.length, first.value.length);
  }

  /** Leaves the editor: the card drawn again from the room's state, focus on its `focusAct` button. */
  closeEdit(id, card, focusAct) {
    const form = card.querySelector(".msg-edit-form");
    if (form) form.remove();
    card.classList.remove("editing");
    const body = card.querySelector(":scope > .msg-main > .msg-body");
    if (body) body.hidden = false;
    this.room.feed.redraw(id, {card, focusAct});
  }

  // --- delete ----------------------------------------------------------------------------------

  async remove(message) {
    const mine = this.room.state.isMe(message.sender);
    const question = mine ? "Delete this message? Everyone will see “This message was deleted.” in its place."
      : "Delete this message of someone else (you own the story)? Everyone will see “This message was deleted.” in its place.";
    if (!window.confirm(question)) return;
    try {
      await this.room.publish(message.channel, {msg_type: "delete", relates_to: message.id, payload: {}});
    } catch (error) {
      toast(describeError(error), "error");
    }
  }

  // --- reactions -------------------------------------------------------------------------------

  /** A chip or a picked key: adds my reaction `key`, or takes it back when I gave it already. */
  async toggleReaction(message, key) {
    const held = this.room.state.lookup(message.id) || message;
    const mine = (held.reactions || []).some((r) => r.key === key && r.me);
    try {
      if (!mine) {
        await this.room.publish(message.channel, {msg_type: "reaction", relates_to: message.id, payload: {key}});
        return;
      }
      let reaction = this.room.state.myReaction(message.id, key);
      let id = reaction && reaction.id;
      if (!id) {
        // Not in the room's log (a thread from another channel): the server answers a repeat of the
        // reaction with the one it holds (docs/protocol.md 4.1, "Once").
        const answer = await this.room.publish(message.channel, {msg_type: "reaction", relates_to: message.id, payload: {key}});
        id = answer && answer.id;
        // Held from now on, so that the deletion's frame changes the card here as it does elsewhere.
        if (id) this.room.state.remember({id, channel: message.channel, sender: this.room.config.me, msg_type: "reaction",
          rel_type: "annotate", relates_to: message.id, payload: {key}, deleted: false});
      }
      if (id) await this.room.publish(message.channel, {msg_type: "delete", relates_to: id, payload: {}});
    } catch (error) {
      toast(describeError(error), "error");
    }
  }

  /** The picker under a card, opened from its React button (`opener`); a second press closes it. */
  togglePicker(message, opener) {
    const main = opener.closest(".msg-main");
    const open = main.querySelector(":scope > .reaction-picker");
    if (open) {
      this.closePicker(open, opener);
      return;
    }
    const held = this.room.state.lookup(message.id) || message;
    const given = new Set((held.reactions || []).filter((r) => r.me).map((r) => r.key));
    const picker = h("div.reaction-picker", {role: "group", "aria-label": "Pick a reaction", id: `react-${message.id}`});
    const buttons = REACTIONS.map(({key, name}) => h("button.reaction-pick", {type: "button", dataset: {key},
      "aria-pressed": String(given.has(key)),
      "aria-label": given.has(key) ? `Take back your ${name} reaction` : `React with ${name}`, title: name,
      onclick: () => {
        this.closePicker(picker, opener);
        this.toggleReaction(message, key);
      }}, key));
    picker.addEventListener("keydown", (e) => {
      const at = buttons.indexOf(document.activeElement);
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        this.closePicker(picker, opener);
      } else if ((e.key === "ArrowRight" || e.key === "ArrowLeft") && at >= 0) {
        e.preventDefault();
        buttons[(at + (e.key === "ArrowRight" ? 1 : buttons.length - 1)) % buttons.length].focus();
      }
    });
    // Leaving the picker (a click or Tab elsewhere) closes it, the focus where it went.
    // (Once the focus has settled: removing the focused picker fires focusout in the middle of it.)
    picker.addEventListener("focusout", () => setTimeout(() => {
      const now = document.activeElement;
      if (!picker.isConnected || picker.contains(now) || now === opener) return;
      picker.remove();
      if (opener.isConnected) opener.setAttribute("aria-expanded", "false");
    }, 0));
    picker.append(...buttons);
    main.appendChild(picker);
    opener.setAttribute("aria-expanded", "true");
    opener.setAttribute("aria-controls", picker.id);
    buttons[0].focus();
  }

  closePicker(picker, opener) {
    picker.remove();
    if (opener && opener.isConnected) {
      opener.setAttribute("aria-expanded", "false");
      opener.focus();
    }
  }
}
