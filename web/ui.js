// Small helpers every page part uses.

export const $ = (id) => document.getElementById(id);

/// A button; with `whom`, it says (to screen readers and as a tooltip) whom it acts on.
export function button(label, onClick, whom) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (whom) {
    b.setAttribute("aria-label", `${label}: ${whom}`);
    b.title = `${label}: ${whom}`;
  }
  b.addEventListener("click", onClick);
  return b;
}

