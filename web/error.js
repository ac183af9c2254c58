// The page for addresses that lead nowhere (an unknown path, a room name that cannot be one):
// what went wrong in the visitor's language, and the way back to the start page.
import { apply, languageSwitch, t } from "./i18n.js";

const kind = document.body.dataset.error || "page_not_found";
const detail = { bad_room_name: "bad_room" }[kind];

function show() {
  apply(document);
  document.getElementById("error-title").textContent = t(kind);
  document.getElementById("error-detail").textContent = detail ? t(detail) : "";
  document.title = `${t(kind)} · Plenum`;
}

languageSwitch(document.getElementById("lang"), show);
show();
