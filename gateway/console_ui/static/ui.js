// Small building blocks: elements without innerHTML, dialogs, menus, switches, copying.

import { ApiError, SessionEnded } from "./api.js";

let counter = 0;

/** A unique element id. */
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * h("button", {type: "button", onclick: f, class: "primary"}, "Save"): an element.
 * Text children are text nodes (never parsed as HTML); null/false children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else if (name === "value" || name === "checked" || name === "disabled") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** Say something to screen readers without moving focus. */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  window.setTimeout(() => { region.textContent = message; }, 50);
}

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  timeZoneName: "short",
});

/** A <time> element: local date and time shown, the UTC ISO string as its datetime/title. */
export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, iso);
  return h("time", { datetime: iso, title: iso }, DATE_FORMAT.format(date));
}

/** "in 24 hours", "in 5 minutes", "now": how far `iso` is from now. */
export function fromNow(iso) {
  const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  if (!Number.isFinite(seconds) || seconds <= 30) return "now";
  const plural = (n, unit) => `in ${n} ${unit}${n === 1 ? "" : "s"}`;
  if (seconds < 90) return plural(seconds, "second");
  if (seconds < 90 * 60) return plural(Math.round(seconds / 60), "minute");
  if (seconds < 48 * 3600) return plural(Math.round(seconds / 3600), "hour");
  return plural(Math.round(seconds / 86400), "day");
}

/**
 * An element that shows an error next to what caused it (role=alert, hidden when empty).
 * `show(error)` accepts an ApiError, a SessionEnded (ignored: the page is gone) or text.
 */
export function errorSlot(id = uid("error")) {
  const element = h("p", { class: "error", id, role: "alert", hidden: true });
  return {
    element,
    id,
    show(error) {
      if (error instanceof SessionEnded) return;
      let text;
      if (error instanceof ApiError) text = error.display;
      else if (typeof error === "string") text = error;
      else {
        console.error(error); // a bug in this page: the details stay in the console
        text = "Something went wrong in the console. Reload the page and try again.";
      }
      element.textContent = text;
      element.hidden = false;
    },
    clear() {
      element.textContent = "";
      element.hidden = true;
    },
  };
}

/** A status line for successes (role=status: announced, not intrusive). */
export function statusSlot() {
  const element = h("p", { class: "status", role: "status" });
  return {
    element,
    show(text) { element.textContent = text; },
    clear() { element.textContent = ""; },
  };
}

/** Mark a button busy while `work` runs; resolves to what `work` returns. */
export async function busy(button, work, label) {
  const before = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  if (label) button.textContent = label;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    if (label) button.textContent = before;
  }
}

/**
 * A switch: <button role="switch" aria-checked> labelled by its visible label and
 * described by its description. `onchange(next)` is awaited; the switch shows the new
 * state only once it resolves (and stays as it was when it throws).
 */
export function toggle({ label, description, checked, disabled = false, onchange, key }) {
  const id = uid("switch");
  const labelId = `${id}-label`;
  const descriptionId = description ? `${id}-description` : null;
  const button = h("button", {
    type: "button", role: "switch", id, class: "switch",
    "aria-checked": checked ? "true" : "false",
    "aria-labelledby": labelId,
    "aria-describedby": descriptionId,
    "data-key": key,
    disabled,
  }, h("span", { class: "switch-track", "aria-hidden": "true" },
    h("span", { class: "switch-thumb" })));
  const state = h("span", { class: "switch-state", "aria-hidden": "true" }, checked ? "On" : "Off");
  const set = (on) => {
    button.setAttribute("aria-checked", on ? "true" : "false");
    state.textContent = on ? "On" : "Off";
  };
  let pending = false; // the button stays focusable while its change is under way
  button.addEventListener("click", async () => {
    if (pending) return;
    const next = button.getAttribute("aria-checked") !== "true";
    pending = true;
    button.setAttribute("aria-busy", "true");
    try {
      const accepted = await onchange(next);
      if (accepted !== false) set(next);
    } finally {
      pending = false;
      button.removeAttribute("aria-busy");
    }
  });
  const row = h("div", { class: `switch-row${disabled ? " is-disabled" : ""}` },
    button,
    h("div", { class: "switch-text" },
      h("span", { class: "switch-label", id: labelId }, label, " ", state),
      description ? h("span", { class: "hint", id: descriptionId }, description) : null));
  return { row, button, set };
}

/** Copy text; the button says so for a moment. */
export async function copyText(text, button) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    // Not a secure context, or clipboard access refused: the old way.
    const area = h("textarea", { class: "offscreen", readonly: true, "aria-hidden": "true" });
    area.value = text;
    (button?.closest("dialog") || document.body).append(area);
    area.select();
    try { copied = document.execCommand("copy"); } catch { copied = false; }
    area.remove();
    button?.focus();
  }
  if (button) {
    const before = button.dataset.label || button.textContent;
    const beforeName = button.dataset.name || button.getAttribute("aria-label") || "";
    button.dataset.label = before;
    button.dataset.name = beforeName;
    const now = copied ? "Copied" : "Copy failed: select and copy it";
    button.textContent = now;
    if (beforeName) button.setAttribute("aria-label", now);
    window.setTimeout(() => {
      button.textContent = before;
      if (beforeName) button.setAttribute("aria-label", beforeName);
    }, 2000);
  }
  announce(copied ? "Copied to the clipboard." : "Copying failed: select the text and copy it.");
  return copied;
}

/**
 * A secret in a read-only field with Copy, and (when `hidden`) Reveal/Hide.
 * Returns the wrapper element.
 */
export function secretField({ label, value, hidden = false, multiline = false }) {
  const id = uid("secret");
  const field = multiline
    ? h("textarea", { id, readonly: true, rows: 8, class: "mono", spellcheck: "false" })
    : h("input", {
      id, readonly: true, class: "mono", spellcheck: "false", autocomplete: "off",
      type: hidden ? "password" : "text",
    });
  field.value = value;
  const copy = h("button", { type: "button", class: "secondary", "aria-label": `Copy ${label}`,
    title: `Copy ${label}` }, "Copy");
  copy.addEventListener("click", () => copyText(value, copy));
  let reveal = null;
  if (hidden) {
    reveal = h("button", { type: "button", class: "secondary", "aria-pressed": "false",
      "aria-controls": id }, "Reveal");
    reveal.addEventListener("click", () => {
      const show = field.type === "password";
      field.type = show ? "text" : "password";
      reveal.setAttribute("aria-pressed", show ? "true" : "false");
      reveal.textContent = show ? "Hide" : "Reveal";
    });
  }
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("div", { class: "secret" }, field, h("div", { class: "secret-actions" }, reveal, copy)));
}

/**
 * A modal dialog (<dialog>.showModal(): the page behind is inert, Escape cancels).
 * Focus goes to `[autofocus]` or the first control, and back to the opener when it closes.
 * Returns {dialog, body, footer, close, onClose, setBusy}.
 */
export function openDialog({ title, description, className = "" }) {
  const opener = document.activeElement;
  const titleId = uid("dialog-title");
  const body = h("div", { class: "dialog-body" });
  const footer = h("div", { class: "dialog-actions" });
  const heading = h("h2", { id: titleId, tabindex: "-1" }, title);
  const dialog = h("dialog", { class: `dialog ${className}`, "aria-labelledby": titleId },
    heading, description ? h("p", { class: "dialog-description" }, description) : null,
    body, footer);
  let isBusy = false;
  const closers = [];
  dialog.addEventListener("cancel", (event) => {
    if (isBusy) event.preventDefault(); // a request is under way: let it finish
  });
  dialog.addEventListener("close", () => {
    dialog.remove();
    for (const closer of closers) closer();
    const target = opener && opener.isConnected ? opener : document.querySelector("main h1");
    if (target instanceof HTMLElement) target.focus();
  });
  document.body.append(dialog);
  const controller = {
    dialog,
    heading,
    body,
    footer,
    close: () => { if (dialog.open) dialog.close(); },
    onClose: (callback) => closers.push(callback),
    setBusy: (value) => {
      isBusy = value;
      dialog.setAttribute("aria-busy", value ? "true" : "false");
    },
    setTitle: (text) => { heading.textContent = text; },
    focus: () => focusFirst(dialog),
  };
  dialog.showModal();
  focusFirst(dialog);
  return controller;
}

function focusFirst(container) {
  const preferred = container.querySelector("[autofocus]")
    || container.querySelector(".dialog-body input:not([disabled]), .dialog-body textarea:not([disabled])")
    || container.querySelector(".dialog-actions button.primary:not([disabled]), .dialog-actions button.danger:not([disabled])")
    || container.querySelector("button:not([disabled])");
  if (preferred instanceof HTMLElement) preferred.focus();
}

/**
 * Ask before doing something. `action()` runs on confirm; its error is shown inside the
 * dialog (which stays open). Resolves to action's result, or undefined when cancelled.
 */
export function confirmAction({ title, message, confirmLabel, danger = false, action }) {
  return new Promise((resolve) => {
    const ui = openDialog({ title });
    const error = errorSlot();
    let result;
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    const confirm = h("button", { type: "button", class: danger ? "danger" : "primary" },
      confirmLabel);
    cancel.addEventListener("click", () => ui.close());
    confirm.addEventListener("click", async () => {
      error.clear();
      ui.setBusy(true);
      try {
        result = await busy(confirm, action);
        ui.setBusy(false);
        ui.close();
      } catch (problem) {
        ui.setBusy(false);
        if (problem instanceof SessionEnded) { ui.close(); return; }
        error.show(problem);
        confirm.focus();
      }
    });
    replace(ui.body, ...(Array.isArray(message) ? message : [message]), error.element);
    replace(ui.footer, cancel, confirm);
    ui.onClose(() => resolve(result));
    // A destructive action starts on Cancel: Enter alone must not destroy anything.
    (danger ? cancel : confirm).focus();
  });
}

/**
 * A menu button ("…"): arrow keys move between items, Escape closes it and returns focus.
 * `items`: [{label, onselect}].
 */
export function menuButton({ label, items, text = "…" }) {
  const menuId = uid("menu");
  const button = h("button", {
    type: "button", class: "icon-button", "aria-haspopup": "menu", "aria-expanded": "false",
    "aria-controls": menuId, "aria-label": label, title: label,
  }, text);
  const entries = items.map((item) => h("button", {
    type: "button", role: "menuitem", tabindex: "-1", class: "menu-item",
  }, item.label));
  const menu = h("div", { role: "menu", id: menuId, class: "menu", hidden: true,
    "aria-label": label }, entries);
  const wrap = h("div", { class: "menu-wrap" }, button, menu);

  const outside = (event) => { if (!wrap.contains(event.target)) close(false); };
  function open(focusIndex = 0) {
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    entries[Math.max(0, Math.min(focusIndex, entries.length - 1))]?.focus();
    document.addEventListener("pointerdown", outside, true);
  }
  function close(refocus = true) {
    if (menu.hidden) return;
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("pointerdown", outside, true);
    if (refocus) button.focus();
  }
  button.addEventListener("click", () => (menu.hidden ? open() : close()));
  button.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { event.preventDefault(); open(0); }
    if (event.key === "ArrowUp") { event.preventDefault(); open(entries.length - 1); }
  });
  menu.addEventListener("keydown", (event) => {
    const index = entries.indexOf(document.activeElement);
    const move = { ArrowDown: 1, ArrowUp: -1 }[event.key];
    if (move) {
      event.preventDefault();
      entries[(index + move + entries.length) % entries.length].focus();
    } else if (event.key === "Home") {
      event.preventDefault(); entries[0].focus();
    } else if (event.key === "End") {
      event.preventDefault(); entries[entries.length - 1].focus();
    } else if (event.key === "Escape") {
      event.preventDefault(); event.stopPropagation(); close();
    } else if (event.key === "Tab") {
      close(false);
    }
  });
  entries.forEach((entry, index) => {
    entry.addEventListener("click", () => {
      close(); // focus back on the button first: a dialog opened next returns there
      items[index].onselect();
    });
  });
  return wrap;
}

/**
 * Run `render()` (which rebuilds part of the page) and put focus back on the element
 * with the same data-key as the one focused before, so keyboard users keep their place.
 */
export async function keepingFocus(render) {
  const active = document.activeElement;
  const key = active instanceof HTMLElement ? active.dataset.key : undefined;
  await render();
  if (key && !document.querySelector("dialog[open]")) {
    const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again instanceof HTMLElement) again.focus();
  }
}

/** A <section> with a heading (h2) that labels it. */
export function section(title, ...children) {
  const id = uid("section");
  return h("section", { class: "card", "aria-labelledby": id },
    h("h2", { id }, title), ...children);
}
