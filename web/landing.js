import { apply, languageSwitch } from "./i18n.js";
import { validRoomName } from "./protocol.js";

// Three everyday words: readable aloud, about 2^36 combinations with the number.
const WORDS = [
  "amber", "apple", "birch", "brook", "cedar", "cloud", "coral", "delta", "ember", "fjord",
  "flint", "grove", "harbor", "hazel", "heron", "iris", "juniper", "kestrel", "lagoon", "lark",
  "linden", "maple", "meadow", "moss", "nectar", "oak", "orchid", "otter", "pebble", "pine",
  "plaza", "quartz", "raven", "reed", "river", "robin", "saffron", "sage", "spruce", "stone",
  "summit", "thistle", "tulip", "valley", "willow", "wren", "yarrow", "zephyr",
];

function randomRoom() {
  const pick = () => WORDS[crypto.getRandomValues(new Uint32Array(1))[0] % WORDS.length];
  const n = crypto.getRandomValues(new Uint32Array(1))[0] % 1000;
  return `${pick()}-${pick()}-${pick()}-${n}`;
}

apply();
languageSwitch(document.getElementById("lang"));
document.getElementById("create").addEventListener("click", () => {
  location.href = `/r/${randomRoom()}`;
});
document.getElementById("enter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = document.getElementById("room-name").value.trim().toLowerCase();
  const error = document.getElementById("room-error");
  if (!validRoomName(name)) {
    error.hidden = false;
    return;
  }
  location.href = `/r/${name}`;
});
