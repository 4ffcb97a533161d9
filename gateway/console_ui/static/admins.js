// Settings > Admin Users: the network's console users, your admin token, revocation.

import { api, SessionEnded } from "./api.js";
import {
  confirmAction, errorSlot, fromNow, h, keepingFocus, menuButton, openDialog, replace,
  secretField, statusSlot, time,
} from "./ui.js";

export async function renderAdmins(container, ctx) {
  const status = statusSlot();
  const error = errorSlot();
  const table = h("div", { class: "table-wrap" });
  replace(container,
    h("p", { class: "lead" }, "Everyone who can sign in to this console for the network,"
      + " with their role. Use the … menu next to your name for your admin token."),
    status.element, error.element, table);

  async function load() {
    error.clear();
    let answer;
    try {
      answer = await api.admins();
    } catch (problem) {
      error.show(problem);
      return;
    }
    if (!ctx.isCurrent()) return;
    replace(table, adminTable(answer.admins, ctx, { status, error, reload: () => keepingFocus(load) }));
  }
  await load();
}

function canRevoke(me, admin) {
  if (admin.username === me.username) return me.role === "admin" || me.role === "super-admin";
  return me.role === "super-admin" && admin.role !== "super-admin";
}

function adminTable(admins, ctx, page) {
  const me = ctx.me;
  const rows = admins.map((admin) => {
    const mine = admin.username === me.username;
    const name = h("div", { class: "name-cell" },
      h("span", { class: "username" }, admin.username),
      mine ? h("span", { class: "badge you" }, "you") : null,
      mine ? tokenMenu(ctx) : null);
    const revoke = canRevoke(me, admin)
      ? h("button", { type: "button", class: "danger-outline", "data-key": `revoke:${admin.username}`,
        "aria-label": `Revoke the admin token of ${admin.username}` }, "Revoke")
      : null;
    revoke?.addEventListener("click", () => revokeToken(admin.username, ctx, page));
    return h("tr", { "data-username": admin.username },
      h("th", { scope: "row" }, name),
      h("td", {}, h("span", { class: `role role-${admin.role}` }, ctx.roleLabel(admin.role))),
      h("td", {}, time(admin.createdAt)),
      h("td", { class: "actions" }, revoke));
  });
  return h("table", { class: "table" },
    h("caption", { class: "visually-hidden" }, "Console users of this network"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Username"),
      h("th", { scope: "col" }, "Role"),
      h("th", { scope: "col" }, "Created"),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: "4" }, "No console users."))));
}

function tokenMenu(ctx) {
  const items = [{ label: "Show admin token", onselect: () => showToken(ctx) }];
  if (ctx.me.role !== "super-admin") { // generating is not available to super admins
    items.push({ label: "Generate new token…", onselect: () => generateToken() });
  }
  return menuButton({ label: `Admin token options for ${ctx.me.username} (you)`, items });
}

function tokenDetails(token) {
  return h("dl", { class: "details" },
    h("dt", {}, "Issued"), h("dd", { class: "issued" }, time(token.issuedAt)),
    h("dt", {}, "Expires"), h("dd", { class: "expires" }, time(token.expiresAt)));
}

async function showToken(ctx) {
  const ui = openDialog({ title: "Your admin token" });
  const error = errorSlot();
  const close = h("button", { type: "button", class: "secondary" }, "Close");
  close.addEventListener("click", () => ui.close());
  replace(ui.body, h("p", { class: "muted" }, "Loading…"), error.element);
  replace(ui.footer, close);
  close.focus();
  let token;
  try {
    token = await api.adminToken();
  } catch (problem) {
    if (problem instanceof SessionEnded) return;
    replace(ui.body, error.element);
    error.show(problem);
    return;
  }
  const generate = ctx.me.role !== "super-admin"
    ? h("button", { type: "button", class: "secondary" }, "Generate new token…")
    : null;
  generate?.addEventListener("click", () => {
    ui.close();
    generateToken();
  });
  replace(ui.body,
    h("p", {}, "Send it as ", h("code", {}, "Authorization: Bearer <token>"),
      " from scripts. Keep it secret: it acts as you."),
    secretField({ label: "Admin token", value: token.adminToken, hidden: true }),
    tokenDetails(token),
    ctx.me.role === "super-admin"
      ? h("p", { class: "hint" }, "Super admins cannot generate a new token here;"
        + " revoke it and sign in again to get a new one.")
      : null);
  replace(ui.footer, generate, close);
  ui.body.querySelector("button")?.focus();
}

async function generateToken() {
  const answer = await confirmAction({
    title: "Generate a new admin token?",
    message: [
      h("p", {}, "A new admin token replaces your current one. The current token keeps"
        + " working for a grace period only, then stops: update the scripts that use it."),
    ],
    confirmLabel: "Generate",
    action: () => api.generateAdminToken(),
  });
  if (!answer) return;
  const ui = openDialog({ title: "Your new admin token" });
  const done = h("button", { type: "button", class: "primary" }, "Done");
  done.addEventListener("click", () => ui.close());
  replace(ui.body,
    h("p", { class: "success" }, "A new admin token was generated."),
    secretField({ label: "New admin token", value: answer.adminToken }),
    tokenDetails(answer),
    previousTokenNote(answer));
  replace(ui.footer, done);
  ui.body.querySelector("button")?.focus();
}

function previousTokenNote(answer) {
  const until = answer.previousTokenValidUntil;
  if (until === undefined) {
    return h("p", { class: "warning grace" }, "Your previous token keeps working for the"
      + " gateway's grace period (24 hours by default), then stops.");
  }
  if (until === null) return h("p", { class: "grace" }, "You had no other valid token.");
  if (new Date(until).getTime() <= new Date(answer.issuedAt).getTime()) {
    return h("p", { class: "warning grace" }, "Your previous token stopped working immediately.");
  }
  return h("p", { class: "warning grace" }, "Your previous token keeps working until ",
    time(until), ` (${fromNow(until)}), then stops.`);
}

async function revokeToken(username, ctx, page) {
  const self = username === ctx.me.username;
  const done = await confirmAction({
    title: self ? "Revoke your admin token?" : `Revoke the admin token of ${username}?`,
    message: [
      h("p", {}, self
        ? "Every admin token of yours stops working now, including one in its grace period,"
          + " and you will be signed out of the console. Signing in again issues a new token."
        : `Every admin token of ${username} stops working now, including one in its grace`
          + ` period, and ${username} is signed out of the console.`
          + " Signing in again issues a new token."),
      h("p", {}, "Username: ", h("strong", { class: "confirm-username" }, username)),
    ],
    confirmLabel: self ? "Revoke my token" : `Revoke ${username}'s token`,
    danger: true,
    action: async () => {
      await api.revokeAdminToken(username);
      return true;
    },
  });
  if (!done) return;
  if (self) {
    await ctx.signOut("Your admin token was revoked and you were signed out."
      + " Signing in again issues a new token.");
    return;
  }
  page.status.show(`The admin token of ${username} was revoked; ${username} was signed out.`);
  await page.reload();
}
