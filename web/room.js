// The room page: pre-join (name, devices), then the meeting (one mixed stream, own preview,
// mute, leave, participants, chat). Protocol details live in protocol.js.
import { apply, languageSwitch, t } from "./i18n.js";
import { Control, publish, view } from "./protocol.js";

const $ = (id) => document.getElementById(id);
const room = decodeURIComponent(location.pathname.split("/")[2] || "");
const NAME_KEY = "plenum.name";
const joinedKey = `plenum.joined.${room}`;
// Read once at load: a reload of a joined page joins again by itself.
const rejoinAfterReload = sessionStorage.getItem(joinedKey) === "1";

const state = {
  local: null, // MediaStream from the camera/microphone, or null (watch and listen only)
  audioMuted: false,
  videoMuted: false,
  control: null,
  whip: null,
  whep: null,
  me: null,
  people: [],
  acquiring: Promise.resolve(),
};

apply();
languageSwitch($("lang"), render);
$("room-title").textContent = room;
$("name").value = localStorage.getItem(NAME_KEY) || "";

function stopLocal() {
  for (const track of state.local?.getTracks() ?? []) track.stop();
  state.local = null;
}

/// Asks for camera and microphone; falls back to microphone only, then to nothing.
async function acquire() {
  stopLocal();
  const cam = $("camera-select").value;
  const mic = $("mic-select").value;
  const video = cam ? { deviceId: { exact: cam } } : true;
  const audio = mic ? { deviceId: { exact: mic } } : true;
  $("device-note").textContent = "";
  try {
    state.local = await navigator.mediaDevices.getUserMedia({ video, audio });
  } catch (err) {
    try {
      state.local = await navigator.mediaDevices.getUserMedia({ audio });
      $("device-note").textContent = t("no_camera");
    } catch {
      state.local = null;
      $("device-note").textContent = t("no_devices");
    }
  }
  $("preview").srcObject = state.local;
  await listDevices();
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  for (const [select, kind] of [[$("camera-select"), "videoinput"], [$("mic-select"), "audioinput"]]) {
    const current = select.value;
    select.replaceChildren();
    for (const d of devices.filter((d) => d.kind === kind && d.deviceId)) {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || d.deviceId.slice(0, 8);
      select.append(option);
    }
    if (current) select.value = current;
    select.disabled = select.options.length === 0;
  }
}

function setConnection(level) {
  const conn = $("conn");
  conn.className = `conn ${level}`;
  conn.textContent = t({ good: "conn_good", connecting: "conn_connecting", bad: "conn_bad" }[level]);
}

function watchConnection(pc) {
  const update = () => {
    const states = [state.whip?.pc, state.whep?.pc].filter(Boolean).map((p) => p.connectionState);
    if (states.some((s) => s === "failed" || s === "disconnected")) setConnection("bad");
    else if (states.every((s) => s === "connected")) setConnection("good");
    else setConnection("connecting");
  };
  pc.addEventListener("connectionstatechange", update);
  update();
}

function applyMute() {
  for (const track of state.local?.getAudioTracks() ?? []) track.enabled = !state.audioMuted;
  for (const track of state.local?.getVideoTracks() ?? []) track.enabled = !state.videoMuted;
  state.control?.setMedia(state.audioMuted, state.videoMuted);
  $("self").hidden = state.videoMuted || !state.local?.getVideoTracks().length;
  render();
}

function render() {
  const mic = $("toggle-mic");
  mic.textContent = t(state.audioMuted ? "unmute" : "mute");
  mic.setAttribute("aria-pressed", String(state.audioMuted));
  mic.disabled = !state.local?.getAudioTracks().length;
  const cam = $("toggle-camera");
  cam.textContent = t(state.videoMuted ? "camera_on" : "camera_off");
  cam.setAttribute("aria-pressed", String(state.videoMuted));
  cam.disabled = !state.local?.getVideoTracks().length;
  const list = $("people");
  list.replaceChildren();
  for (const p of state.people) {
    const li = document.createElement("li");
    li.classList.toggle("speaking", p.speaking);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = p.id === state.me ? `${p.name} (${t("you")})` : p.name;
    const info = document.createElement("span");
    info.className = "state";
    info.textContent = [p.speaking && t("speaking"), p.audio_muted && t("muted"), p.video_muted && t("camera_is_off")]
      .filter(Boolean)
      .join(", ");
    li.append(name, info);
    list.append(li);
  }
}

function addChat(line) {
  const li = document.createElement("li");
  const time = document.createElement("time");
  const at = new Date(line.at);
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = line.name;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = line.text; // text, never HTML
  li.append(time, who, text);
  $("messages").append(li);
  $("messages").scrollTop = $("messages").scrollHeight;
}

async function join() {
  if (state.control) return; // already joining or joined
  const name = $("name").value.trim();
  if (!name) {
    $("join-error").textContent = t("name_missing");
    return;
  }
  $("join-error").textContent = "";
  $("join").disabled = true;
  await state.acquiring; // camera and microphone as chosen on this page
  localStorage.setItem(NAME_KEY, name);
  state.audioMuted = $("start-mic-off").checked;
  state.videoMuted = $("start-camera-off").checked;
  const control = new Control(room);
  state.control = control;
  control.addEventListener("participants", (ev) => {
    state.people = ev.detail.participants;
    render();
  });
  control.addEventListener("chat", (ev) => addChat(ev.detail));
  control.addEventListener("chat_history", (ev) => ev.detail.messages.forEach(addChat));
  control.addEventListener("bye", () => leave());
  control.addEventListener("closed", () => {
    if (state.control === control) {
      setConnection("bad");
      // The server has already removed us; a reload joins again with the same name.
      setTimeout(() => state.control === control && location.reload(), 2000);
    }
  });
  try {
    const joined = await control.join(name);
    state.me = joined.id;
    sessionStorage.setItem(joinedKey, "1");
    $("prejoin").hidden = true;
    $("meeting").hidden = false;
    $("self").srcObject = state.local;
    $("self").hidden = !state.local?.getVideoTracks().length;
    setConnection("connecting");
    const viewing = view(room, joined.token, (stream) => {
      $("mix").srcObject = stream;
    }).then((s) => {
      state.whep = s;
      watchConnection(s.pc);
    });
    applyMute();
    const publishing = state.local
      ? publish(room, joined.token, state.local).then((s) => {
          state.whip = s;
          watchConnection(s.pc);
        })
      : Promise.resolve();
    await Promise.all([viewing, publishing]);
  } catch (err) {
    $("join-error").textContent = t("error_prefix") + err.message;
    $("prejoin").hidden = false;
    $("meeting").hidden = true;
    $("join").disabled = false;
    state.control = null;
    control.leave();
  }
}

async function leave() {
  const control = state.control;
  state.control = null;
  sessionStorage.removeItem(joinedKey);
  control?.leave();
  await Promise.all([state.whip?.close(), state.whep?.close()]);
  state.whip = state.whep = null;
  stopLocal();
  $("meeting").hidden = true;
  $("left").hidden = false;
}

$("join-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  join();
});
$("camera-select").addEventListener("change", () => (state.acquiring = acquire()));
$("mic-select").addEventListener("change", () => (state.acquiring = acquire()));
$("toggle-mic").addEventListener("click", () => {
  state.audioMuted = !state.audioMuted;
  applyMute();
});
$("toggle-camera").addEventListener("click", () => {
  state.videoMuted = !state.videoMuted;
  applyMute();
});
$("leave").addEventListener("click", leave);
$("rejoin").addEventListener("click", () => location.reload());
$("copy-link").addEventListener("click", async () => {
  await navigator.clipboard?.writeText(location.href).catch(() => {});
  $("copy-link").textContent = t("copied");
  setTimeout(() => ($("copy-link").textContent = t("copy_link")), 1500);
});
$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (text) state.control?.chat(text);
  input.value = "";
});
document.addEventListener("keydown", (ev) => {
  // Alt+M / Alt+V toggle microphone and camera from anywhere on the page.
  if (!ev.altKey || $("meeting").hidden) return;
  if (ev.key === "m") $("toggle-mic").click();
  if (ev.key === "v") $("toggle-camera").click();
});
window.addEventListener("pagehide", () => {
  state.whip?.close();
  state.whep?.close();
});

render();
state.acquiring = acquire();
state.acquiring.then(() => {
  if (rejoinAfterReload && $("name").value) join();
});
