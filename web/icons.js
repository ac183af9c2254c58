// The client's icons: drawn here (lines on a 24x24 grid, in the text's colour), nothing loaded.
const SVG = "http://www.w3.org/2000/svg";

const PATHS = {
  mic: "M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3zM6 11a6 6 0 0 0 12 0M12 17v4M8 21h8",
  "mic-off": "M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3zM6 11a6 6 0 0 0 12 0M12 17v4M8 21h8M3 3l18 18",
  camera: "M3 7h12v10H3zM15 10l6-3v10l-6-3",
  "camera-off": "M3 7h12v10H3zM15 10l6-3v10l-6-3M3 3l18 18",
  hand: "M8 13V6a1.5 1.5 0 0 1 3 0v5V4.5a1.5 1.5 0 0 1 3 0V11V5.5a1.5 1.5 0 0 1 3 0V12v-3a1.5 1.5 0 0 1 3 0v5c0 4-3 7-7 7c-3 0-4.5-1.5-6-4l-2.5-4a1.5 1.5 0 0 1 2.5-1.7z",
  screen: "M3 4h18v12H3zM8 20h8M12 16v4",
  self: "M12 12a4 4 0 1 0 0-8a4 4 0 0 0 0 8zM4 21a8 8 0 0 1 16 0",
  fullscreen: "M4 9V4h5M20 9V4h-5M4 15v5h5M20 15v5h-5",
  leave: "M10 17l-5-5l5-5M5 12h11M14 4h5v16h-5",
  keyboard: "M3 6h18v12H3zM7 10h1M11 10h1M15 10h1M7 14h10",
  link: "M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1",
  settings: "M4 6h10M18 6h2M4 12h4M12 12h8M4 18h12M20 18h0M14 4v4M8 10v4M16 16v4",
  chat: "M4 5h16v11H9l-5 4z",
  phone: "M5 4h4l2 5l-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2z",
};

/// An icon, hidden from screen readers (the control's text names it).
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", PATHS[name] ?? "");
  svg.append(path);
  return svg;
}

/// Fills a control: its icon, its text (hidden on narrow screens, still read out), and a
/// tooltip that names its keyboard shortcut.
export function labelButton(button, name, text, shortcut) {
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = text;
  button.replaceChildren(icon(name), label);
  button.title = shortcut ? `${text} (${shortcut})` : text;
  if (shortcut) button.setAttribute("aria-keyshortcuts", shortcut);
}
