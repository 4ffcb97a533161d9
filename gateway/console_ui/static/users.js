// Users: look one of the network's end users up by userId; ban, lift the ban, revoke
// every session of theirs. Admins act; moderators may look only (the gateway's rules).

import { api, ApiError, SessionEnded } from "./api.js";
import {
  confirmAction, errorSlot, h, keepingFocus, replace, statusSlot, time, uid,
} from "./ui.js";

export async function renderUsers(container, ctx) {
  const canChange = ctx.isAdmin;
  const status = statusSlot();
  const inputId = uid("user-id");
  const lookupError = errorSlot(`${inputId}-error`);
  const input = h("input", { id: inputId, name: "userId", type: "text", required: true,
    autocomplete: "off", autocapitalize: "none", spellcheck: "false", class: "mono",
    "aria-describedby": `${inputId}-hint ${inputId}-error` });
  const submit = h("button", { type: "submit", class: "primary" }, "Look up");
  const form = h("form", { class: "card lookup", role: "search", novalidate: true,
    "aria-label": "Look a user up" },
  h("div", { class: "field" },
    h("label", { for: inputId }, "User ID"),
    h("p", { class: "hint", id: `${inputId}-hint` }, "The userId your app signs the user"
      + " in with (case-sensitive)."),
    h("div", { class: "lookup-row" }, input, submit),
    lookupError.element));
  const result = h("div", { class: "user-result" });
  replace(container,
    h("p", { class: "lead" }, "The network's end users: see whether one is banned, ban them"
      + " or lift the ban, and sign them out everywhere."),
    canChange ? null : h("p", { class: "notice" }, "You are a moderator: you can look users"
      + " up; an admin of the network can ban them and revoke their sessions."),
    form, status.element, result);

  let shown = null; // the user on show, as the gateway last answered
  let sequence = 0;

  function showProblem(problem) {
    lookupError.show(problem);
    if (problem instanceof ApiError) input.setAttribute("aria-invalid", "true");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    lookupError.clear();
    status.clear();
    input.removeAttribute("aria-invalid");
    const userId = input.value.trim();
    if (!userId) {
      lookupError.show("Enter a user ID.");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    sequence += 1;
    const mine = sequence;
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await api.userState(userId);
    } catch (problem) {
      if (mine !== sequence) return;
      shown = null;
      replace(result);
      showProblem(problem);
      if (!(problem instanceof SessionEnded)) input.focus();
      return;
    } finally {
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
    }
    if (mine !== sequence || !ctx.isCurrent()) return;
    shown = answer.users[0];
    draw();
    result.querySelector("h2")?.focus(); // what was found is read out next
  });

  // After an action: the user as the gateway now has it (what was done, and by whom else).
  async function reload() {
    try {
      const answer = await api.userState(shown.userId);
      shown = answer.users[0];
    } catch (problem) {
      lookupError.show(problem);
      return;
    }
    if (ctx.isCurrent()) await keepingFocus(draw);
  }

  function draw() {
    const user = shown;
    const headingId = uid("user");
    const banned = user.isGlobalBanned;
    const details = h("dl", { class: "details" },
      h("dt", {}, "User ID"), h("dd", { class: "mono user-id" }, user.userId),
      h("dt", {}, "Display name"), h("dd", { class: "display-name" },
        user.displayName || h("span", { class: "muted" }, "None")),
      h("dt", {}, "Status"), h("dd", { class: "ban-state" }, banned
        ? h("span", { class: "badge danger" }, "Banned")
        : h("span", { class: "badge ok" }, "Not banned")),
      h("dt", {}, "Internal ID"), h("dd", { class: "mono" }, user._id),
      h("dt", {}, "First seen"), h("dd", {}, time(user.createdAt)),
      h("dt", {}, "Updated"), h("dd", {}, time(user.updatedAt)));
    let actions = null;
    if (canChange) {
      const ban = h("button", { type: "button", "data-key": "ban",
        class: banned ? "secondary" : "danger-outline",
        "aria-label": banned ? `Lift the ban on ${user.userId}` : `Ban user ${user.userId}`,
      }, banned ? "Lift the ban" : "Ban user");
      ban.addEventListener("click", () => (banned ? liftBan(user) : banUser(user)));
      const revoke = h("button", { type: "button", class: "danger-outline",
        "data-key": "revoke", "aria-label": `Revoke sessions of ${user.userId}` },
      "Revoke sessions");
      revoke.addEventListener("click", () => revokeSessions(user));
      actions = h("div", { class: "toolbar user-actions" }, ban, revoke);
    }
    replace(result, h("section", { class: "card user", "aria-labelledby": headingId,
      "data-user-id": user.userId },
    h("h2", { id: headingId, tabindex: "-1" }, "User ", h("span", { class: "mono" }, user.userId)),
    details,
    banned ? h("p", { class: "hint" }, "A banned user cannot start a session, and their"
      + " calls and live connections are refused.") : null,
    actions));
  }

  async function banUser(user) {
    const done = await confirmAction({
      title: `Ban ${user.userId}?`,
      message: [
        h("p", {}, "They cannot start a session from now on, and their calls and live"
          + " connections are refused. Their tokens are kept: lifting the ban lets them"
          + " work again."),
        h("p", {}, "User ID: ", h("strong", { class: "confirm-user" }, user.userId)),
      ],
      confirmLabel: "Ban user",
      danger: true,
      action: async () => { await api.banUser(user.userId); return true; },
    });
    if (!done) return;
    status.show(`${user.userId} is banned.`);
    await reload();
  }

  async function liftBan(user) {
    const done = await confirmAction({
      title: `Lift the ban on ${user.userId}?`,
      message: [h("p", {}, "They can start sessions again, and tokens issued before the ban"
        + " work again.")],
      confirmLabel: "Lift the ban",
      action: async () => { await api.unbanUser(user.userId); return true; },
    });
    if (!done) return;
    status.show(`The ban on ${user.userId} was lifted.`);
    await reload();
  }

  async function revokeSessions(user) {
    const done = await confirmAction({
      title: `Revoke every session of ${user.userId}?`,
      message: [
        h("p", {}, "Every access token of this user stops working now, on every device,"
          + " and their live connections close. They sign in again to go on."),
        h("p", {}, "User ID: ", h("strong", { class: "confirm-user" }, user.userId)),
      ],
      confirmLabel: "Revoke sessions",
      danger: true,
      action: async () => { await api.revokeUserSessions(user.userId); return true; },
    });
    if (!done) return;
    status.show(`Every session of ${user.userId} was revoked.`);
    await reload();
  }
}
