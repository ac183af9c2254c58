// The public watch page of a room's broadcast: the browser's own HLS playback where it has
// one (Safari, Chromium, Edge, Android), Plenum's player (broadcast-player.js: Media Source Extensions)
// elsewhere, e.g. in Firefox; `?player=plenum` chooses that player everywhere. Without either,
// the page shows the playlist's address for a player such as VLC. Nothing is loaded from
// anywhere but this server.
import { apply, languageSwitch, t } from "./i18n.js";
import { playHls, supported } from "./broadcast-player.js";

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

const ownPlayer = new URLSearchParams(location.search).get("player") === "plenum";
const native = !ownPlayer && video.canPlayType("application/vnd.apple.mpegurl") !== "";

/// Waits until the broadcast runs (the playlist answers), then plays it; tries again when it
/// ends or fails.
async function watch() {
  const live = await fetch(playlist, { cache: "no-store" }).then((r) => r.ok).catch(() => false);
  if (!live) {
    say("watch_not_live");
    setTimeout(watch, 5000);
    return;
  }
  if (native) {
    say("watch_live");
    video.src = playlist;
    video.play().catch(() => {});
  } else if (supported()) {
    playHls(video, new URL(playlist, location.href).href, {
      live: () => say("watch_live"),
      ended: (error) => {
        if (error) console.warn("the broadcast's player stopped:", error);
        say("watch_not_live");
        setTimeout(watch, 2000);
      },
    });
  } else {
    say("watch_no_hls");
    $("watch-fallback").hidden = false;
  }
}

video.addEventListener("error", () => {
  if (!native) return;
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
