// The bundle pages load (static/js/mythline.js, an ES module):
//
//   <script type="module">
//     import {MythlineSocket, openCollabEditor, bindConnectionIndicator} from "/static/js/mythline.js";
//     const socket = new MythlineSocket();
//     bindConnectionIndicator(socket, document.querySelector("#connection"));
//     const editor = await openCollabEditor({socket, topic: "doc:tale/main", parent: document.querySelector("#doc")});
//   </script>
//
// Pages share one MythlineSocket for every subscription.
export {MythlineSocket, SocketError, Subscription, bindConnectionIndicator} from "./socket.js";
export {
  ChangeSet,
  DocSync,
  EditorSelection,
  EditorState,
  HeadlessEditor,
  openCollabEditor,
  openHeadlessEditor,
  remoteCursors,
  remoteCursorsField,
  setRemoteCursor,
  userColor,
} from "./collab.js";
export {EditorView, keymap, placeholder, drawSelection, highlightActiveLine} from "@codemirror/view";
export {history, defaultKeymap, historyKeymap, indentWithTab} from "@codemirror/commands";
export {boot} from "./pages.js";
