// The room page: pre-join (name, devices, password), waiting room, then the meeting (one mixed
// stream, own preview, mute, hand, screen share, leave, participants, chat) and, for
// moderators, the moderation panel. Protocol details live in protocol.js.
import { apply, languageSwitch, t } from "./i18n.js";
import { icon, labelButton } from "./icons.js";
import { $, button } from "./ui.js";
import { loadRecordings, renderModeration, showKey, wireModeration } from "./moderation.js";
import { levelMeter, listDevices, switchDevice, testSound, useSpeaker } from "./devices.js";
import { Control, findRoom, inPool, moveTo, publish, receivedVideo, roomInfo, view } from "./protocol.js";
import { fitToUplink } from "./uplink.js";

const room = decodeURIComponent(location.pathname.split("/")[2] || "");
const NAME_KEY = "plenum.name";
const QUALITY_KEY = "plenum.quality";
const QUALITIES = ["auto", "low", "audio"];
const joinedKey = `plenum.joined.${room}`;
const tokenKey = `plenum.token.${room}`;
const keyKey = `plenum.modkey.${room}`;
// Read once at load: a reload of a joined page joins again by itself.
const rejoinAfterReload = sessionStorage.getItem(joinedKey) === "1";
// A moderator link carries the key in the fragment (never sent in requests); keep it for this
// tab and take it out of the address bar.
const linkKey = new URLSearchParams(location.hash.slice(1)).get("mod");
if (linkKey) {
  sessionStorage.setItem(keyKey, linkKey);
  history.replaceState(null, "", location.pathname);
}

const state = {
  local: null, // MediaStream from the camera/microphone, or null (watch and listen only)
  audioMuted: false,
  videoMuted: false,
  control: null,
  token: null,
  whip: null,
  whep: null,
  sendScale: 1, // 2 or 4 while the camera is sent smaller to fit a weak uplink (uplink.js)
  screen: null, // { session, stream } while sharing
  me: null,
  moderator: false,
  hand: false,
  mayPublish: true,
  settings: {},
  streams: [],
  people: [],
  external: [], // WHIP/WHEP sessions that are not participants (OBS, hall displays, players)
  audience: 0, // presentation mode: participants watching as audience
  lobby: [],
  acquiring: Promise.resolve(),
  info: {},
  quality: QUALITIES.includes(localStorage.getItem(QUALITY_KEY)) ? localStorage.getItem(QUALITY_KEY) : "auto",
};

apply();
languageSwitch($("lang"), render);
$("room-title").textContent = room;
$("name").value = localStorage.getItem(NAME_KEY) || "";

function notice(key) {
  $("notice").textContent = key ? t(key) : "";
}

/// What an external session is called: its own label, else its kind.
function externalName(e) {
  return e.label || t(e.kind === "publisher" ? "external_publisher" : "external_viewer");
}

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
  } catch {
    try {
      state.local = await navigator.mediaDevices.getUserMedia({ audio });
      $("device-note").textContent = t("no_camera");
    } catch {
      state.local = null;
      $("device-note").textContent = t("no_devices");
    }
  }
  $("preview").srcObject = state.local;
  stopMeter();
  stopMeter = levelMeter(state.local, $("mic-level"));
  await listDevices(prejoinDevices());
}

const prejoinDevices = () => ({ camera: $("camera-select"), mic: $("mic-select"), speaker: $("speaker-select") });
let stopMeter = () => {};

/// The media connection's state in the header; `null` hides it (no media: before joining,
/// while waiting, after leaving).
function setConnection(level) {
  const conn = $("conn");
  conn.hidden = !level;
  if (!level) return;
  conn.className = `conn ${level}`;
  conn.textContent = t({ good: "conn_good", connecting: "conn_connecting", bad: "conn_bad" }[level]);
}

const baseTitle = `${room} · Plenum`;
document.title = baseTitle;
/// The number of people in the lobby, in the tab's title (seen from another tab too).
function showLobbyCount(n) {
  document.title = n > 0 ? `(${n}) ${baseTitle}` : baseTitle;
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
  showSelf();
  render();
}

/// One's own camera over the picture, unless it is off or its owner hid it (remembered here).
const SELF_KEY = "plenum.hide-self";
function showSelf() {
  $("self").hidden = state.videoMuted || !state.local?.getVideoTracks().length || localStorage.getItem(SELF_KEY) === "1";
}

/// The own camera can be dragged anywhere over the picture (by mouse, pen or finger).
function movableSelf() {
  const self = $("self");
  let from = null;
  self.addEventListener("pointerdown", (ev) => {
    from = { x: ev.clientX - self.offsetLeft, y: ev.clientY - self.offsetTop };
    self.setPointerCapture(ev.pointerId);
  });
  self.addEventListener("pointermove", (ev) => {
    if (!from) return;
    const stage = self.parentElement;
    const x = Math.min(Math.max(ev.clientX - from.x, 0), stage.clientWidth - self.offsetWidth);
    const y = Math.min(Math.max(ev.clientY - from.y, 0), stage.clientHeight - self.offsetHeight);
    Object.assign(self.style, { left: `${x}px`, top: `${y}px`, right: "auto" });
  });
  self.addEventListener("pointerup", () => (from = null));
  self.addEventListener("pointercancel", () => (from = null));
}
movableSelf();
// On a phone the moderation starts folded (its badge counts who waits), so the people and
// the chat stay near the picture.
if (matchMedia("(max-width: 48rem)").matches) $("mod-panel").open = false;

/// A short cue when a recording starts (rising) or stops (falling), made here: nothing is loaded.
function cue(rising) {
  try {
    const ctx = new AudioContext();
    const tones = rising ? [660, 880] : [880, 660];
    tones.forEach((hz, i) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = hz;
      gain.gain.value = 0.08;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + i * 0.18);
      osc.stop(ctx.currentTime + i * 0.18 + 0.15);
    });
    setTimeout(() => ctx.close().catch(() => {}), 1000);
  } catch {
    // No audio output: the banner and the notice still say it.
  }
}

/// Shows the state: banner, controls, people, moderation.
function render() {
  const { recording } = state.settings;
  const streaming = state.settings.streaming || state.settings.broadcast;
  $("recording-banner").hidden = !recording && !streaming;
  $("recording-text").textContent = t(recording && streaming ? "recorded_and_streamed" : recording ? "recording_banner" : "streaming_banner");
  renderControls();
  renderPeople();
  renderExternals();
  renderModeration(state, room);
}

function renderControls() {
  const sending = Boolean(state.whip);
  const mic = $("toggle-mic");
  labelButton(mic, state.audioMuted ? "mic-off" : "mic", t(state.audioMuted ? "unmute" : "mute"), "Alt+M");
  mic.setAttribute("aria-pressed", String(state.audioMuted));
  mic.disabled = !sending || !state.local?.getAudioTracks().length;
  const cam = $("toggle-camera");
  labelButton(cam, state.videoMuted ? "camera-off" : "camera", t(state.videoMuted ? "camera_on" : "camera_off"), "Alt+V");
  cam.setAttribute("aria-pressed", String(state.videoMuted));
  cam.disabled = !sending || !state.local?.getVideoTracks().length;
  const hand = $("toggle-hand");
  labelButton(hand, "hand", t(state.hand ? "lower_hand" : "raise_hand"), "Alt+H");
  hand.setAttribute("aria-pressed", String(state.hand));
  const selfHidden = localStorage.getItem(SELF_KEY) === "1";
  const self = $("toggle-self");
  labelButton(self, "self", t(selfHidden ? "show_self" : "hide_self"));
  self.setAttribute("aria-pressed", String(selfHidden));
  self.disabled = !state.local?.getVideoTracks().length;
  const share = $("toggle-share");
  labelButton(share, "screen", t(state.screen ? "stop_share" : "share_screen"), "Alt+S");
  const full = Boolean(document.fullscreenElement);
  labelButton($("fullscreen"), "fullscreen", t(full ? "exit_fullscreen" : "fullscreen"), "Alt+F");
  $("fullscreen").setAttribute("aria-pressed", String(full));
  $("fullscreen").hidden = !document.fullscreenEnabled;
  labelButton($("devices"), "settings", t("devices"));
  labelButton($("shortcuts"), "keyboard", t("shortcuts"), "Alt+K");
  if (!state.copied) labelButton($("copy-link"), "link", t("copy_link"));
  labelButton($("leave"), "leave", t("leave"));
  share.setAttribute("aria-pressed", String(Boolean(state.screen)));
  share.disabled = !state.mayPublish || !navigator.mediaDevices?.getDisplayMedia;
}

function renderPeople() {
  const list = $("people");
  list.replaceChildren();
  // In presentation mode the audience is a number; those on stage and raised hands are listed.
  const presenting = Boolean(state.settings.presentation);
  const listed = state.people.filter((p) => !presenting || p.moderator || p.presenter || p.hand_raised || p.id === state.me);
  for (const p of listed) {
    const li = document.createElement("li");
    li.classList.toggle("speaking", p.speaking);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = p.id === state.me ? `${p.name} (${t("you")})` : p.name;
    if (p.hand_raised) name.prepend(icon("hand"), " ");
    if (p.phone) name.prepend(icon("phone"), " ");
    const info = document.createElement("span");
    info.className = "state";
    info.textContent = [
      p.moderator && t("moderator"),
      p.presenter && t("presenter"),
      p.hand_raised && t("hand"),
      p.speaking && t("speaking"),
      p.audio_muted && t("muted"),
      p.phone && t("on_the_phone"),
      p.video_muted && !p.phone && t("camera_is_off"),
      // What reaches them when less than the full picture (weak link or data saver).
      p.receiving && (p.receiving === "audio" ? t("receives_audio") : `${t("receives")} ${p.receiving}`),
    ]
      .filter(Boolean)
      .join(", ");
    li.append(name, info);
    if (state.moderator && p.id !== state.me) {
      const actions = document.createElement("span");
      actions.className = "actions";
      actions.append(button(t("mute_one"), () => state.control.send({ type: "mute", id: p.id }), p.name));
      if (state.settings.presentation) {
        const on = !p.presenter;
        actions.append(button(t(on ? "let_speak" : "take_word"), () => state.control.send({ type: "set_presenter", id: p.id, on }), p.name));
      }
      if (!p.moderator) actions.append(button(t("make_moderator"), () => state.control.send({ type: "make_moderator", id: p.id }), p.name));
      actions.append(button(t("remove"), () => state.control.send({ type: "remove", id: p.id }), p.name));
      li.append(actions);
    }
    list.append(li);
  }
  $("audience").hidden = !presenting;
  $("audience").textContent = `${t("audience_count")}: ${state.audience}`;
}

function externalItem(e) {
  const li = document.createElement("li");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = externalName(e);
  const info = document.createElement("span");
  info.className = "state";
  info.textContent = t(`access_${e.access}`);
  // A hall camera says whether its picture comes: live, connecting, or away and tried again.
  if (e.state) {
    const s = e.state;
    info.textContent += ` · ${s.state === "retrying" ? t("stream_retrying").replace("{s}", s.in_s) : t(`stream_${s.state}`)}`;
  }
  li.append(name, info);
  if (state.moderator) li.append(button(t("end_session"), () => state.control.send({ type: "end_external", id: e.id })));
  return li;
}

/// External sessions, grouped by what they are: one line each, or a count when several.
function renderExternals() {
  const list = $("externals");
  list.setAttribute("aria-label", t("external_clients"));
  list.replaceChildren();
  const groups = new Map();
  for (const e of state.external) {
    const key = `${e.kind}|${externalName(e)}`;
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  for (const members of groups.values()) {
    if (members.length === 1) {
      list.append(externalItem(members[0]));
      continue;
    }
    const li = document.createElement("li");
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = `${externalName(members[0])} × ${members.length}`;
    const inner = document.createElement("ul");
    inner.append(...members.map(externalItem));
    details.append(summary, inner);
    li.append(details);
    if (state.moderator) {
      li.append(button(t("end_all"), () => members.forEach((e) => state.control.send({ type: "end_external", id: e.id }))));
    }
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
  who.textContent = `${line.name}:`; // read as "Alice: Hello", not "AliceHello"
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = line.text; // text, never HTML
  li.append(time, " ", who, " ", text);
  $("messages").append(li);
  $("messages").scrollTop = $("messages").scrollHeight;
  if ($("chat-box").hidden) {
    state.unread = (state.unread ?? 0) + 1;
    showUnread();
  }
}

function showUnread() {
  $("chat-unread").hidden = !state.unread;
  $("chat-unread").textContent = state.unread ? String(state.unread) : "";
  $("chat-unread").setAttribute("aria-label", state.unread ? `${state.unread} ${t("unread")}` : "");
}

/// Camera and microphone to the server (when allowed and available).
async function startPublishing() {
  if (state.whip || !state.mayPublish || !state.token) return;
  if (!state.local) state.local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true }).catch(() => null);
  if (!state.local) return;
  $("self").srcObject = state.local;
  applyMute();
  state.whip = await publish(room, state.token, state.local);
  watchConnection(state.whip.pc);
  state.sendScale = 1;
  fitToUplink(state.whip.pc, (scale) => {
    state.sendScale = scale;
    showQuality();
  });
  render();
}

async function stopPublishing() {
  const whip = state.whip;
  state.whip = null;
  await whip?.close();
  await stopSharing();
  stopLocal();
  $("self").hidden = true;
  render();
}

async function startMedia() {
  stopMeter();
  $("prejoin").hidden = true;
  $("waiting").hidden = true;
  $("meeting").hidden = false;
  // Keyboard and screen reader users start at the controls, not at the page's top (the
  // microphone's button is enabled once sending starts; this one always is).
  $("toggle-hand").focus();
  $("self").srcObject = state.local;
  showSelf();
  setConnection("connecting");
  const viewing = view(room, state.token, (stream) => {
    $("mix").srcObject = stream;
  }, state.quality).then((s) => {
    state.whep = s;
    watchConnection(s.pc);
  });
  if (state.mayPublish) {
    await Promise.all([viewing, startPublishing()]);
  } else {
    stopLocal();
    notice("audience_note");
    await viewing;
  }
  render();
}

async function startSharing() {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false }).catch(() => null);
  if (!stream) return;
  try {
    const session = await publish(room, state.token, stream, { screen: true });
    state.screen = { session, stream };
    stream.getVideoTracks()[0].addEventListener("ended", stopSharing);
  } catch (err) {
    for (const track of stream.getTracks()) track.stop();
    $("notice").textContent = t("error_prefix") + err.message;
  }
  render();
}

async function stopSharing({ tell = true } = {}) {
  const screen = state.screen;
  state.screen = null;
  if (!screen) return;
  for (const track of screen.stream.getTracks()) track.stop();
  await screen.session.close({ tell });
  render();
}

function onControl(control) {
  control.addEventListener("participants", (ev) => {
    state.people = ev.detail.participants;
    state.external = ev.detail.external ?? [];
    state.audience = ev.detail.audience ?? 0;
    const me = state.people.find((p) => p.id === state.me);
    if (me) state.hand = me.hand_raised;
    if (me?.moderator && !state.moderator) {
      // Made a moderator by another one.
      state.moderator = true;
      notice("you_moderate");
    }
    render();
  });
  control.addEventListener("room", (ev) => {
    const live = (s) => Boolean(s.streaming || s.broadcast);
    const was = { recording: Boolean(state.settings.recording), streaming: live(state.settings) };
    state.settings = ev.detail.settings;
    for (const what of ["recording", "streaming"]) {
      const now = what === "streaming" ? live(state.settings) : Boolean(state.settings.recording);
      if (now !== was[what] && state.joinedOnce) {
        notice(`${what}_${now ? "started" : "stopped"}`);
        cue(now);
        if (what === "recording") loadRecordings(room, keyKey);
      }
    }
    state.joinedOnce = true;
    render();
  });
  control.addEventListener("streams", (ev) => {
    state.streams = ev.detail.streams ?? [];
    render();
  });
  control.addEventListener("lobby", (ev) => {
    const before = new Set(state.lobby.map((w) => w.id));
    state.lobby = ev.detail.waiting;
    const arrived = state.lobby.filter((w) => !before.has(w.id));
    if (arrived.length) {
      // Someone knocks: a sound, the notice (read out), and the count in the tab's title.
      cue(true);
      $("notice").textContent = `${arrived.map((w) => w.name).join(", ")} ${t("is_waiting")}`;
    }
    showLobbyCount(state.lobby.length);
    render();
  });
  control.addEventListener("waiting", () => {
    $("prejoin").hidden = true;
    $("waiting").hidden = false;
  });
  control.addEventListener("admitted", () => startMedia());
  control.addEventListener("muted", () => {
    state.audioMuted = true;
    applyMute();
    notice("muted_by_moderator");
  });
  control.addEventListener("speak", async (ev) => {
    state.mayPublish = ev.detail.allowed;
    if (state.mayPublish) {
      notice(state.settings.presentation ? "you_may_speak" : "");
      await startPublishing().catch(() => {});
    } else {
      notice(state.settings.presentation ? "word_taken" : "");
      await stopPublishing();
    }
    render();
  });
  control.addEventListener("external_joined", (ev) => {
    const e = ev.detail.session;
    $("notice").textContent = `${externalName(e)} ${t(e.kind === "publisher" ? "now_sends" : "now_watches")}`;
  });
  control.addEventListener("external_left", (ev) => {
    $("notice").textContent = `${externalName(ev.detail.session)} ${t("has_left")}`;
  });
  control.addEventListener("key", (ev) => showKey(room, ev.detail.kind, ev.detail.key));
  control.addEventListener("chat", (ev) => addChat(ev.detail));
  control.addEventListener("chat_history", (ev) => ev.detail.messages.forEach(addChat));
  control.addEventListener("bye", (ev) => (ev.detail.reason === "server restarting" ? reconnect() : leave(ev.detail.reason)));
  control.addEventListener("error", (ev) => {
    if (state.me) $("notice").textContent = t("error_prefix") + ev.detail.message;
  });
  control.addEventListener("closed", () => {
    if (state.control === control) reconnect();
  });
}

/// The server went away (a restart, a network change): say so, wait until it answers again,
/// then join again on this page: with its name, password, token (no second wait in the
/// lobby) and moderator key, its camera and microphone still open and muted as they were, on
/// new media sessions.
async function reconnect() {
  const control = state.control;
  state.control = null;
  control?.leave();
  await Promise.all([state.whip?.close({ tell: false }), state.whep?.close({ tell: false }), stopSharing({ tell: false })]);
  state.whip = state.whep = null;
  setConnection("bad");
  notice("reconnecting");
  // Every quarter second for the first half minute (a restart takes seconds: be back at
  // once), then every 5 s.
  for (let tries = 0; ; tries++) {
    await new Promise((resolve) => setTimeout(resolve, tries < 120 ? 250 : 5000));
    // In a pool: the room's node, or where the room opens again if that node is gone. A node
    // that joined the pool after this page loaded is not among those the page may talk to:
    // after 10 s without an answer the page loads again (and joins again by itself).
    const up = inPool()
      ? (await findRoom(room)) !== null
      : await fetch("/healthz", { cache: "no-store" }).then((r) => r.ok).catch(() => false);
    if (!up && inPool() && tries === 40) {
      sessionStorage.setItem(joinedKey, "1");
      location.reload();
    }
    if (up) return rejoin();
  }
}

async function rejoin() {
  // The chat starts over from what the server still has (nothing after a restart).
  $("messages").replaceChildren();
  state.unread = 0;
  showUnread();
  state.rejoining = true;
  try {
    await join();
  } finally {
    state.rejoining = false;
  }
  if (state.control && !$("meeting").hidden) {
    notice("reconnected");
  } else if (!state.control) {
    // Refused (the server came back with other rules): the page starts over.
    location.reload();
  }
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
  if (!state.rejoining) {
    state.audioMuted = $("start-mic-off").checked;
    state.videoMuted = $("start-camera-off").checked;
  }
  const control = new Control(room);
  state.control = control;
  onControl(control);
  try {
    const joined = await control.join(name, {
      password: $("password").value,
      moderatorKey: sessionStorage.getItem(keyKey),
      resume: sessionStorage.getItem(tokenKey),
    });
    state.me = joined.id;
    state.token = joined.token;
    state.moderator = joined.moderator;
    sessionStorage.setItem(joinedKey, "1");
    // Kept in this tab only: after a reload it lets us back in without waiting again.
    sessionStorage.setItem(tokenKey, joined.token);
    if (joined.moderator_key) {
      sessionStorage.setItem(keyKey, joined.moderator_key);
      const link = `${location.origin}/r/${room}#mod=${joined.moderator_key}`;
      $("modkey-link").textContent = link;
      $("modkey").showModal();
    }
    // In presentation mode only presenters send; the server says so with `speak`.
    state.mayPublish = !state.info.presentation || joined.moderator;
    if (joined.waiting) {
      $("prejoin").hidden = true;
      $("waiting").hidden = false;
      return; // media starts with `admitted`
    }
    await startMedia();
  } catch (err) {
    if (err.code === "moved" && !state.moved) {
      // The room lives on another node of the pool (it moved since the page asked): there.
      moveTo(err.message);
      state.moved = true;
      state.control = null;
      control.leave();
      try {
        return await join();
      } finally {
        state.moved = false;
      }
    }
    if (err.code === "forbidden" && sessionStorage.getItem(keyKey)) {
      // A moderator key of a room the server no longer has (it restarted, someone else
      // opened the room again): join without it.
      sessionStorage.removeItem(keyKey);
      state.control = null;
      control.leave();
      return join();
    }
    const key = { password_required: "password_needed", wrong_password: "wrong_password", room_full: "room_full", server_full: "server_full" }[err.code];
    $("join-error").textContent = key ? t(key) : t("error_prefix") + err.message;
    if (err.code === "password_required" || err.code === "wrong_password") $("password-row").hidden = false;
    $("prejoin").hidden = false;
    $("meeting").hidden = true;
    $("join").disabled = false;
    state.control = null;
    control.leave();
  }
}

/// Leaves the meeting: by the "leave" button (`reason` undefined), or because the server said
/// goodbye. The media sessions end before the control connection: leaving ends them on the
/// server too, and a `DELETE` after that would fail.
async function leave(reason) {
  const control = state.control;
  state.control = null;
  sessionStorage.removeItem(joinedKey);
  const tell = reason === undefined;
  await Promise.all([state.whip?.close({ tell }), state.whep?.close({ tell }), stopSharing({ tell })]);
  state.whip = state.whep = null;
  control?.leave();
  stopLocal();
  setConnection(null);
  showLobbyCount(0);
  $("meeting").hidden = true;
  $("waiting").hidden = true;
  $("prejoin").hidden = true;
  $("left").hidden = false;
  const known = { refused: "refused", "removed by a moderator": "removed", "the meeting was ended": "ended" }[reason];
  $("left-reason").textContent = t(known || "left");
  $("rejoin").focus();
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
$("toggle-hand").addEventListener("click", () => {
  state.hand = !state.hand;
  state.control?.send({ type: "raise_hand", raised: state.hand });
  render();
});
$("toggle-share").addEventListener("click", () => (state.screen ? stopSharing() : startSharing()));
$("toggle-self").addEventListener("click", () => {
  localStorage.setItem(SELF_KEY, localStorage.getItem(SELF_KEY) === "1" ? "0" : "1");
  showSelf();
  render();
});
$("leave").addEventListener("click", () => leave());
$("quality").value = state.quality;
$("quality").addEventListener("change", (ev) => {
  state.quality = ev.target.value;
  localStorage.setItem(QUALITY_KEY, state.quality); // remembered in this browser only
  state.control?.setQuality(state.quality);
  showQuality();
});

/// What the picture is now: its height as received, and why it is lower than it could be
/// (the data saver, or the server fitting the picture to a weak connection).
const seen = { best: 0, frames: 0 };
async function showQuality() {
  const el = $("quality-now");
  const sending = state.whip && state.sendScale > 1 ? t("sending_smaller") : "";
  el.textContent = sending;
  if (!state.whep) return;
  if (state.quality === "audio") {
    el.textContent = [t("quality_now_audio"), sending].filter(Boolean).join(" · ");
    return;
  }
  const { height, frames } = await receivedVideo(state.whep);
  const stalled = frames === seen.frames && seen.frames > 0;
  seen.frames = frames;
  seen.best = Math.max(seen.best, height);
  const why = state.quality === "low" ? t("quality_low") : stalled || height < seen.best ? t("quality_weak") : "";
  const what = stalled ? t("quality_now_audio") : height ? `${height}p` : "";
  el.textContent = [what && why ? `${what} — ${why}` : what, sending].filter(Boolean).join(" · ");
}
setInterval(showQuality, 2000);
// Joins again at once (the reload finds the page joined, and its token lets it past the
// waiting room it was admitted from).
$("rejoin").addEventListener("click", () => {
  sessionStorage.setItem(joinedKey, "1");
  location.reload();
});
$("copy-link").addEventListener("click", async () => {
  await navigator.clipboard?.writeText(`${location.origin}/r/${room}`).catch(() => {});
  state.copied = true;
  labelButton($("copy-link"), "link", t("copied"));
  setTimeout(() => {
    state.copied = false;
    render();
  }, 1500);
});

// Fullscreen: the picture alone, filling the screen.
$("fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else document.querySelector(".stage").requestFullscreen().catch(() => {});
});
document.addEventListener("fullscreenchange", () => render());

// Devices inside the room: another camera or microphone is sent without a new connection;
// the loudspeaker plays the meeting's sound where the browser lets one choose.
const roomDevices = () => ({ camera: $("room-camera-select"), mic: $("room-mic-select"), speaker: $("room-speaker-select") });
let stopRoomMeter = () => {};
$("devices").addEventListener("click", async () => {
  const selects = roomDevices();
  await listDevices(selects);
  for (const [select, kind] of [[selects.camera, "video"], [selects.mic, "audio"]]) {
    const id = state.local?.getTracks().find((tr) => tr.kind === kind)?.getSettings().deviceId;
    if (id) select.value = id;
  }
  if (state.speaker) selects.speaker.value = state.speaker;
  $("devices-note").textContent = "";
  stopRoomMeter = levelMeter(state.local, $("room-mic-level"));
  $("devices-dialog").showModal();
});
for (const [id, kind] of [["room-camera-select", "video"], ["room-mic-select", "audio"]]) {
  $(id).addEventListener("change", async (ev) => {
    if (!state.local) return;
    try {
      await switchDevice(state.local, state.whip?.pc, kind, ev.target.value);
      if (kind === "video") $("self").srcObject = state.local;
      if (kind === "audio") {
        stopRoomMeter();
        stopRoomMeter = levelMeter(state.local, $("room-mic-level"));
      }
      applyMute();
    } catch (err) {
      $("devices-note").textContent = t("error_prefix") + err.message;
    }
  });
}
$("room-speaker-select").addEventListener("change", (ev) => {
  state.speaker = ev.target.value;
  useSpeaker($("mix"), state.speaker);
});
$("room-test-sound").addEventListener("click", () => testSound(state.speaker));
$("test-sound").addEventListener("click", () => testSound($("speaker-select").value));
$("speaker-select").addEventListener("change", (ev) => (state.speaker = ev.target.value));
$("devices-close").addEventListener("click", () => $("devices-dialog").close());
$("devices-dialog").addEventListener("close", () => stopRoomMeter());
$("shortcuts").addEventListener("click", () => $("shortcuts-dialog").showModal());
$("shortcuts-close").addEventListener("click", () => $("shortcuts-dialog").close());

// The chat folds away (on a phone, for more room); what arrives meanwhile is counted.
$("chat-toggle").addEventListener("click", () => {
  const open = $("chat-box").hidden;
  $("chat-box").hidden = !open;
  $("chat-toggle").setAttribute("aria-expanded", String(open));
  if (open) {
    state.unread = 0;
    showUnread();
  }
});
$("modkey-copy").addEventListener("click", () => navigator.clipboard?.writeText($("modkey-link").textContent).catch(() => {}));
$("modkey-close").addEventListener("click", () => $("modkey").close());
$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (text) state.control?.chat(text);
  input.value = "";
});
wireModeration(state, room, keyKey);
document.addEventListener("keydown", (ev) => {
  // Alt+M / V / H / S / F: microphone, camera, hand, screen, fullscreen; Alt+C the chat,
  // Alt+K this list; from anywhere on the page (also while typing).
  if (!ev.altKey || ev.ctrlKey || ev.metaKey || $("meeting").hidden) return;
  const act = {
    m: () => $("toggle-mic").click(),
    v: () => $("toggle-camera").click(),
    h: () => $("toggle-hand").click(),
    s: () => $("toggle-share").click(),
    f: () => $("fullscreen").click(),
    c: () => {
      if ($("chat-box").hidden) $("chat-toggle").click();
      $("chat-input").focus();
    },
    k: () => $("shortcuts-dialog").showModal(),
  }[ev.key.toLowerCase()];
  if (!act) return;
  ev.preventDefault();
  act();
});
window.addEventListener("pagehide", () => {
  state.whip?.close();
  state.whep?.close();
  state.screen?.session.close();
});

/// How to join by phone, if the server takes calls: the number (if one is configured) and the
/// room's PIN.
function showDialIn(dialIn) {
  const line = $("dial-in");
  if (!dialIn) return;
  const pin = `${dialIn.pin.slice(0, 4)} ${dialIn.pin.slice(4)}`;
  line.textContent = [t("dial_in"), dialIn.number, `${t("pin")} ${pin}`].filter(Boolean).join(" · ");
  line.hidden = false;
}

render();
state.acquiring = roomInfo(room).then(async (info) => {
  state.info = info;
  if (info.password) $("password-row").hidden = false;
  showDialIn(info.dial_in);
  if (info.recording || info.streaming || info.broadcast) {
    // Before anyone enters a recorded meeting, they know.
    state.settings = { ...state.settings, recording: Boolean(info.recording), streaming: Boolean(info.streaming || info.broadcast) };
    const note = $("recording-note");
    note.dataset.i18n = info.recording ? "recording_prejoin" : "streaming_prejoin";
    note.textContent = t(note.dataset.i18n);
    note.hidden = false;
    render();
  }
  if (info.presentation && !sessionStorage.getItem(keyKey)) {
    // The audience of a presentation sends nothing: no camera or microphone requested.
    $("device-note").textContent = t("audience_note");
    return;
  }
  await acquire();
});
state.acquiring.then(() => {
  if (rejoinAfterReload && $("name").value) join();
});
