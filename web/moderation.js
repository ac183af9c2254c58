// The moderation panel: settings, lobby, streams, recordings, room keys, hall cameras.
import { t } from "./i18n.js";
import { $, button } from "./ui.js";
import { at } from "./protocol.js";

/// The room's recordings, for moderators: name, length, size, and a download (the moderator
/// key authorises it; the file goes from this server to this browser only).
export async function loadRecordings(room, keyKey) {
  const key = sessionStorage.getItem(keyKey);
  const list = $("recordings");
  if (!key || !$("recordings-box").open) return;
  const auth = { Authorization: `Bearer ${key}` };
  const answer = await fetch(at(`/api/rooms/${encodeURIComponent(room)}/recordings`), { headers: auth }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  list.replaceChildren();
  for (const r of answer?.recordings ?? []) {
    const li = document.createElement("li");
    const mb = (r.bytes / 1e6).toFixed(1);
    const seconds = Math.round(r.duration_s ?? 0);
    const length = r.duration_s == null ? "" : `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}, `;
    li.textContent = `${r.name} (${length}${mb} MB${r.recording ? `, ${t("recording_now")}` : ""}) `;
    if (!r.recording) {
      li.append(
        button(t("download"), async () => {
          const file = await fetch(at(`/api/rooms/${encodeURIComponent(room)}/recordings/${encodeURIComponent(r.name)}`), { headers: auth });
          if (!file.ok) return;
          const url = URL.createObjectURL(await file.blob());
          const a = document.createElement("a");
          a.href = url;
          a.download = r.name;
          a.click();
          setTimeout(() => URL.revokeObjectURL(url), 10_000);
        }),
      );
    }
    list.append(li);
  }
  if (!list.children.length) {
    const li = document.createElement("li");
    li.textContent = t("no_recordings");
    list.append(li);
  }
}

function renderStreams(state) {
  const list = $("streams");
  list.replaceChildren();
  for (const s of state.streams) {
    const li = document.createElement("li");
    const target = document.createElement("code");
    target.textContent = s.target;
    const what = document.createElement("span");
    what.className = "state";
    what.textContent = s.state === "retrying" ? t("stream_retrying").replace("{s}", s.in_s) + ` (${s.error})` : t(`stream_${s.state}`);
    li.append(target, " ", what, button(t("stop_stream"), () => state.control.send({ type: "stop_stream", id: s.id })));
    list.append(li);
  }
}

export function renderModeration(state, room) {
  $("mod-panel").hidden = !state.moderator;
  if (state.moderator) {
    renderStreams(state);
    const lobby = $("lobby");
    lobby.replaceChildren();
    lobby.hidden = $("lobby-title").hidden = $("mod-badge").hidden = state.lobby.length === 0;
    $("lobby-count").textContent = $("mod-badge").textContent = state.lobby.length;
    for (const w of state.lobby) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = w.name;
      li.append(
        name,
        button(t("admit"), () => state.control.send({ type: "admit", id: w.id }), w.name),
        button(t("refuse"), () => state.control.send({ type: "refuse", id: w.id }), w.name),
      );
      lobby.append(li);
    }
    $("set-waiting").checked = Boolean(state.settings.waiting_room);
    $("set-presentation").checked = Boolean(state.settings.presentation);
    $("set-audience-chat").checked = Boolean(state.settings.audience_chat);
    $("set-shares").checked = Boolean(state.settings.multiple_shares);
    $("set-recording").checked = Boolean(state.settings.recording);
    $("set-broadcast").checked = Boolean(state.settings.broadcast);
    $("watch-link").hidden = !state.settings.broadcast;
    $("watch-link").href = `/watch/${room}`;
    $("watch-link").textContent = `/watch/${room}`;
    $("set-layout").value = state.settings.layout || "grid";
    $("clear-password").disabled = !state.settings.password;
    for (const kind of ["publisher", "viewer"]) {
      const active = Boolean(state.settings[`${kind}_key`]);
      $(`${kind}-key-state`).textContent = active ? `(${t("key_active")})` : "";
      $(`${kind}-key`).textContent = t(active ? "revoke_key" : "create_key");
    }
  }
}

/// A new room key, shown once with the URL to give the external client.
export function showKey(room, kind, key) {
  const publisher = kind === "publisher";
  $("key-title").textContent = t(publisher ? "key_publisher_title" : "key_viewer_title");
  $("key-once").textContent = t(publisher ? "key_once_publisher" : "key_once_viewer");
  $("key-url-label").textContent = t(publisher ? "key_url_publisher" : "key_url_viewer");
  $("key-url").textContent = `${location.origin}/${publisher ? "whip" : "whep"}/${room}`;
  $("key-value").textContent = key;
  $("keydialog").showModal();
}

/// Wires the moderation panel's controls: each setting shows the new value at once (the
/// server's `room` message confirms it).
export function wireModeration(state, room, keyKey) {
  for (const [id, type, key] of [
    ["set-waiting", "set_waiting_room", "waiting_room"],
    ["set-presentation", "set_presentation", "presentation"],
    ["set-audience-chat", "set_audience_chat", "audience_chat"],
    ["set-shares", "allow_multiple_shares", "multiple_shares"],
    ["set-recording", "set_recording", "recording"],
    ["set-broadcast", "set_broadcast", "broadcast"],
  ]) {
    $(id).addEventListener("change", (ev) => {
      state.settings = { ...state.settings, [key]: ev.target.checked };
      state.control?.send({ type, on: ev.target.checked });
    });
  }
  $("set-layout").addEventListener("change", (ev) => {
    state.settings = { ...state.settings, layout: ev.target.value };
    state.control?.send({ type: "set_layout", layout: ev.target.value });
  });
  $("password-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const password = $("new-password").value;
    if (password) state.control?.send({ type: "set_password", password });
    $("new-password").value = "";
  });
  $("clear-password").addEventListener("click", () => state.control?.send({ type: "set_password", password: null }));
  for (const kind of ["publisher", "viewer"]) {
    $(`${kind}-key`).addEventListener("click", () => {
      const type = state.settings[`${kind}_key`] ? "revoke_key" : "create_key";
      state.control?.send({ type, kind });
    });
  }
  for (const [button, source] of [["key-url-copy", "key-url"], ["key-value-copy", "key-value"]]) {
    $(button).addEventListener("click", () => navigator.clipboard?.writeText($(source).textContent).catch(() => {}));
  }
  $("key-close").addEventListener("click", () => {
    $("key-value").textContent = "";
    $("keydialog").close();
  });
  // Shown once: the key is gone from the page when the dialog closes (button or Escape).
  $("keydialog").addEventListener("close", () => ($("key-value").textContent = ""));
  $("mute-all").addEventListener("click", () => state.control?.send({ type: "mute_all" }));
  $("recordings-box").addEventListener("toggle", () => loadRecordings(room, keyKey));
  $("stream-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const url = $("stream-url").value.trim();
    if (url) state.control?.send({ type: "start_stream", url });
    // The key is not kept in the page: the list shows the server only.
    $("stream-url").value = "";
  });
  $("camera-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const url = $("camera-url").value.trim();
    const name = $("camera-name").value.trim() || t("hall_camera_default");
    if (url) state.control?.send({ type: "add_camera", url, name });
    // The URL may hold the camera's password: not kept in the page.
    $("camera-url").value = "";
  });
  $("end-meeting").addEventListener("click", () => state.control?.send({ type: "end_meeting" }));
}
