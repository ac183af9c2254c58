// The public watch page of a room's broadcast: the browser's own HLS playback (Safari,
// Chromium, Edge, Android); elsewhere the playlist's address for a player such as VLC.
// Nothing is loaded from anywhere but this server.
import { apply, languageSwitch, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const room = decodeURIComponent(location.pathname.split("/").pop());
const playlist = `/hls/${encodeURIComponent(room)}/index.m3u8`;
const video = $("broadcast");

$("room-title").textContent = room;
$("playlist-url").textContent = `${location.origin}${playlist}`;

function say(key) {
  state = key;
  $("watch-state").textContent = key ? t(key) : "";
}

/// Waits until the broadcast runs (the playlist answers), then plays it; tries again when it
/// ends or fails.
async function watch() {
  const live = await fetch(playlist, { cache: "no-store" }).then((r) => r.ok).catch(() => false);
  if (!live) {
    say("watch_not_live");
    setTimeout(watch, 5000);
    return;
  }
  if (!video.canPlayType("application/vnd.apple.mpegurl")) {
    say("watch_no_hls");
    $("watch-fallback").hidden = false;
    return;
  }
  say("watch_live");
  video.src = playlist;
  video.play().catch(() => {});
}

video.addEventListener("error", () => {
  say("watch_not_live");
  video.removeAttribute("src");
  setTimeout(watch, 5000);
});

let state = "";
const sayAgain = () => say(state);
languageSwitch($("lang"), () => {
  apply(document);
  sayAgain();
});
apply(document);
watch();
