// Audit Log: the network's admin actions, newest first, a page at a time. The filters
// are sent to the gateway (`action`, `actor`), so every page is a page of matches.

import { api } from "./api.js";
import { errorSlot, h, replace, time, uid } from "./ui.js";

const PAGE_SIZE = 20;

// Suggestions only: the field takes any action, or a group such as `user`.
const ACTIONS = [
  "admin_token.generate", "admin_token.revoke", "certificate.create", "certificate.delete",
  "console.login", "console.login_failed", "network.mtls", "network.secure_mode",
  "notification_setting.update", "security_configs.update", "server_key.generate",
  "sessions.revoke_user", "user.ban", "user.unban",
];

export async function renderAudit(container, ctx) {
  const lead = h("p", { class: "lead" }, "Who did what in this network's console and admin"
    + " API, from where. Newest first; no secret is ever recorded.");
  if (!ctx.isAdmin) { // the gateway answers 403 to moderators: say so instead of asking
    replace(container, lead, h("p", { class: "notice" }, "You are a moderator: only admins"
      + " of the network can read the audit log."));
    return;
  }

  // cursors[n] is the `before` of page n (null: the newest page).
  const state = { filters: { action: "", actor: "" }, cursors: [null], page: 0, next: null };
  let sequence = 0; // answers to a superseded request are dropped

  const actionId = uid("audit-action");
  const actorId = uid("audit-actor");
  const listId = uid("audit-actions");
  const action = h("input", { id: actionId, name: "action", type: "text", list: listId,
    autocomplete: "off", spellcheck: "false", class: "mono",
    "aria-describedby": `${actionId}-hint` });
  const actor = h("input", { id: actorId, name: "actor", type: "text", autocomplete: "off",
    autocapitalize: "none", spellcheck: "false", "aria-describedby": `${actorId}-hint` });
  const apply = h("button", { type: "submit", class: "primary" }, "Apply filters");
  const clear = h("button", { type: "button", class: "secondary" }, "Clear filters");
  const form = h("form", { class: "card filters", role: "search", novalidate: true,
    "aria-label": "Filter the audit log" },
  h("div", { class: "filter-fields" },
    h("div", { class: "field" },
      h("label", { for: actionId }, "Action"),
      h("p", { class: "hint", id: `${actionId}-hint` }, "One action, such as ",
        h("code", {}, "user.ban"), ", or a group, such as ", h("code", {}, "user"), "."),
      action,
      h("datalist", { id: listId }, ACTIONS.map((value) => h("option", { value })))),
    h("div", { class: "field" },
      h("label", { for: actorId }, "Username"),
      h("p", { class: "hint", id: `${actorId}-hint` }, "Who acted (for failed sign-ins, the"
        + " username tried)."),
      actor)),
  h("div", { class: "filter-actions" }, apply, clear));

  const error = errorSlot();
  const summary = h("p", { class: "page-summary", role: "status", tabindex: "-1" });
  const table = h("div", { class: "table-wrap" });
  const newer = h("button", { type: "button", class: "secondary", disabled: true }, "← Newer");
  const older = h("button", { type: "button", class: "secondary", disabled: true }, "Older →");
  const pageLabel = h("span", { class: "page-number" });
  const pager = h("nav", { class: "pager", "aria-label": "Audit log pages" },
    newer, pageLabel, older);
  replace(container, lead, form, error.element, summary, table, pager);

  async function load(page) {
    sequence += 1;
    const mine = sequence;
    error.clear();
    table.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await api.auditLogs({ limit: PAGE_SIZE, before: state.cursors[page],
        ...state.filters });
    } catch (problem) {
      if (mine === sequence) { // a SessionEnded is not shown: the sign-in page replaces this
        table.removeAttribute("aria-busy");
        error.show(problem);
      }
      return false;
    }
    if (mine !== sequence || !ctx.isCurrent()) return false;
    table.removeAttribute("aria-busy");
    state.page = page;
    state.next = answer.nextBefore ?? null;
    state.cursors[page + 1] = state.next;
    state.cursors.length = page + 2; // older cursors were for another walk
    draw(answer.auditLogs);
    return true;
  }

  function draw(entries) {
    const filtered = state.filters.action || state.filters.actor;
    const first = state.page * PAGE_SIZE + 1;
    if (!entries.length) {
      summary.textContent = filtered ? "No entries match these filters."
        : (state.page ? "No older entries." : "No entries yet.");
    } else {
      summary.textContent = `Entries ${first}–${first + entries.length - 1}, newest first`
        + `${filtered ? ", matching the filters" : ""}.`;
    }
    replace(table, entries.length ? entryTable(entries, ctx) : null);
    newer.disabled = state.page === 0;
    older.disabled = state.next === null;
    pageLabel.textContent = `Page ${state.page + 1}`;
  }

  // A pager button that turns disabled would drop focus to the page: keep it in the pager.
  async function turn(page, button) {
    await busyPager(() => load(page));
    if (document.activeElement === document.body || button.disabled) {
      const target = [button, newer, older].find((candidate) => !candidate.disabled);
      (target || summary).focus();
    }
  }

  async function busyPager(work) {
    pager.setAttribute("aria-busy", "true");
    try {
      return await work();
    } finally {
      pager.removeAttribute("aria-busy");
    }
  }

  newer.addEventListener("click", () => turn(Math.max(0, state.page - 1), newer));
  older.addEventListener("click", () => turn(state.page + 1, older));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    state.filters = { action: action.value.trim(), actor: actor.value.trim() };
    state.cursors = [null];
    if (await load(0)) summary.focus(); // the answer to the search is read out next
  });
  clear.addEventListener("click", async () => {
    action.value = "";
    actor.value = "";
    state.filters = { action: "", actor: "" };
    state.cursors = [null];
    await load(0);
    action.focus();
  });

  await load(0);
}

function entryTable(entries, ctx) {
  const rows = entries.map((entry) => h("tr", { "data-id": entry.id, "data-action": entry.action },
    h("th", { scope: "row", class: "when" }, time(entry.time)),
    h("td", { class: "actor" }, entry.actor),
    h("td", { class: "actor-role" }, entry.actorRole
      ? ctx.roleLabel(entry.actorRole) : h("span", { class: "muted" }, "—")),
    h("td", { class: "action" }, h("code", {}, entry.action),
      typeof entry.count === "number" // folded failed sign-ins: how many in that minute
        ? [" ", h("span", { class: "badge count" },
          `${entry.count} attempt${entry.count === 1 ? "" : "s"}`)]
        : null),
    h("td", { class: "target" }, entry.target ?? h("span", { class: "muted" }, "—")),
    h("td", { class: "mono source" }, entry.sourceAddress ?? "—"),
    h("td", { class: "mono request-id" }, entry.requestId ?? "—")));
  return h("table", { class: "table audit" },
    h("caption", { class: "visually-hidden" }, "Audit log entries, newest first"),
    h("thead", {}, h("tr", {},
      ["Time", "Actor", "Role", "Action", "Target", "Source address", "Request ID"].map(
        (title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, rows));
}
