// Chooses German or English from the browser (or the visitor's earlier choice) and fills
// every element that carries data-i18n / data-i18n-placeholder / data-i18n-label.
import de from "./i18n/de.js";
import en from "./i18n/en.js";

const LANGS = { de, en };
const KEY = "plenum.lang";

export function currentLang() {
  const chosen = localStorage.getItem(KEY);
  if (chosen && LANGS[chosen]) return chosen;
  return (navigator.language || "en").toLowerCase().startsWith("de") ? "de" : "en";
}

export function t(key) {
  const strings = LANGS[currentLang()];
  return strings[key] ?? en[key] ?? key;
}

export function apply(root = document) {
  document.documentElement.lang = currentLang();
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}

/// Wires a button that switches to the other language.
export function languageSwitch(button, onChange) {
  button.textContent = t("language");
  button.addEventListener("click", () => {
    localStorage.setItem(KEY, currentLang() === "de" ? "en" : "de");
    apply();
    button.textContent = t("language");
    onChange?.();
  });
}
