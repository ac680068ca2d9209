// The story's text and its tools in the room (issue #16): the co-edited document (docpanel.js) with
// its suggestions and comments panels, the bible, outline, versions and writers' room dialogs, and
// the members dialog. RoomTools makes them, hands them the story's events, reloads them after a
// reconnect and follows the reader's role; the room (room.js) owns the socket and the channels.

import {DocumentPanel} from "./docpanel.js";
import {MembersDialog} from "./members.js";
import {BibleDialog, bibleMarks} from "./bible.js";
import {OutlineDialog, selectRange} from "./outline.js";
import {CrewPanel} from "./crew.js";
import {VersionsDialog} from "./versions.js";
import {SuggestionsPanel, suggestionMarks} from "./suggestions.js";
import {CommentsPanel, commentMarks} from "./comments.js";
import {$, h} from "./ui.js";

export class RoomTools {
  /** `room`: the RoomPage (its config, slug, me, socket and showPane). Opens the main document. */
  constructor(room) {
    this.room = room;
    const {slug, me, socket, config} = room;
    this.bible = new BibleDialog({slug, canWrite: config.can_write});
    this.bible.load();
    this.outline = new OutlineDialog({slug, canWrite: config.can_write, goTo: (range) => this.goToRange(range)});
    this.crew = new CrewPanel({slug, indicator: $("#crew-paused")});
    this.versions = new VersionsDialog({slug, canWrite: config.can_write, current: () => ({
      name: this.docs.name, revision: this.docs.editor ? this.docs.editor.sync.syncedVersion : 0,
      forkedFrom: (this.docs.documents.get(this.docs.name) || {}).forked_from || null})});
    this.suggestions = new SuggestionsPanel({slug, canWrite: config.can_write, me});
    this.comments = new CommentsPanel({slug, canWrite: config.can_write, me});
    this.crew.load(); // for the "paused" indicator in the header
    // Events missed while the socket was down: read the bible (outline, crew) again when it is back.
    let wasOpen = false;
    socket.onState((state) => {
      if (state === "open" && wasOpen) this.reload();
      if (state === "open") wasOpen = true;
    });
    this.docs = new DocumentPanel({
      socket, slug, head: $("#doc-head"), host: $("#editor"),
      documents: config.documents, canWrite: config.can_write,
      extensions: [bibleMarks(this.bible), suggestionMarks(this.suggestions), commentMarks(this.comments)],
      onEditor: (editor, name) => {
        this.suggestions.attach(editor, name);
        this.comments.attach(editor, name);
      },
      headActions: () => [h("button.btn.ghost.sm", {type: "button", id: "doc-bible", title: "The story bible: who and what the text names",
        onclick: (e) => this.bible.open(e.currentTarget)}, "Bible"),
      h("button.btn.ghost.sm", {type: "button", id: "doc-outline", title: "The outline: the story's scenes in order",
        onclick: (e) => this.outline.open(e.currentTarget)}, "Outline"),
      h("button.btn.ghost.sm", {type: "button", id: "doc-versions", title: "Versions: name, compare and restore revisions",
        onclick: (e) => this.versions.open(e.currentTarget)}, "Versions"),
      this.suggestions.button(), this.comments.button()],
    });
    this.docs.open("main");
    this.membersDialog = new MembersDialog({slug, me, isOwner: config.is_owner});
  }

  reload() {
    this.bible.load();
    if (this.outline.loaded) this.outline.load();
    if (this.crew.loaded) this.crew.load();
    this.suggestions.load();
    this.comments.load();
  }

  /** A story event (the story topic's `event` frames) for the tools. */
  onEvent(event, data) {
    if (event.startsWith("participant.") && this.membersDialog.el.open) this.membersDialog.refresh();
    if (event.startsWith("bible.entry.")) this.bible.onEvent(event, data);
    if (event.startsWith("outline.scene.")) this.outline.onEvent(event, data);
    if (event === "crew.updated") this.crew.onEvent(data);
    if (event.startsWith("document.version.")) this.versions.onEvent(event, data);
    if (event.startsWith("suggestion.")) this.suggestions.onEvent(event, data);
    if (event.startsWith("comment.")) this.comments.onEvent(event, data);
    if (event === "document.created") this.docs.add(data);
  }

  /** The reader's role changed whether they write. */
  setCanWrite(canWrite, role) {
    this.docs.setCanWrite(canWrite);
    this.bible.setCanWrite(canWrite);
    this.outline.setCanWrite(canWrite);
    this.versions.setCanWrite(canWrite);
    this.suggestions.setCanWrite(canWrite);
    this.comments.setCanWrite(canWrite);
    if (role) this.crew.load(); // who may pause the crew follows the role
  }

  /** An outline scene's "Go to text": its document in the editor, the scene's text selected. */
  async goToRange(range) {
    if (!range || !range.document) return;
    await this.docs.open(range.document);
    this.room.showPane("text");
    if (this.docs.editor && this.docs.name === range.document) selectRange(this.docs.editor.view, range);
  }
}
