// The console's shell: sign-in, sign-out, the settings navigation and hash routing.
//
// Signing in sets the HttpOnly `gateway_console` cookie; every later API call is
// authenticated by it. Only who is signed in (username, role) is kept in localStorage,
// and the API key (it only names the network) when the person asks to remember it.

import { api, ApiError, setSessionEndedHandler, SessionEnded } from "./api.js";
import { errorSlot, h, replace, uid } from "./ui.js";
import { renderAdmins } from "./admins.js";
import { renderSecurity } from "./security.js";
import { renderPush } from "./push.js";
import { renderUsers } from "./users.js";
import { renderAudit } from "./audit.js";

const PROFILE = "gatewayConsole.profile";
const API_KEY = "gatewayConsole.apiKey";

export const ROLE_LABELS = { "super-admin": "Super Admin", admin: "Admin", moderator: "Moderator" };

const PAGES = [
  { path: "#/settings/admins", title: "Admin Users", render: renderAdmins },
  { path: "#/settings/security", title: "Security", render: renderSecurity },
  { path: "#/settings/push", title: "Push Notifications", render: renderPush },
  { path: "#/users", title: "Users", render: renderUsers, group: "activity" },
  { path: "#/audit-log", title: "Audit Log", render: renderAudit, group: "activity" },
];

// The navigation's groups, in order; a page without `group` is a setting.
const GROUPS = [
  { key: undefined, id: "nav-title", title: "Settings" },
  { key: "activity", id: "nav-activity", title: "Users and activity" },
];

const root = document.getElementById("app");
let shell = null; // {main, nav, header} while signed in
let renderToken = 0;

function loadProfile() {
  try {
    const profile = JSON.parse(localStorage.getItem(PROFILE) || "null");
    if (profile && typeof profile.username === "string" && profile.role in ROLE_LABELS) {
      return profile;
    }
  } catch {
    // a damaged entry: sign in again
  }
  return null;
}

function storedApiKey() {
  return sessionStorage.getItem(API_KEY) || localStorage.getItem(API_KEY) || "";
}

function context() {
  const profile = loadProfile();
  return {
    me: profile,
    apiKey: storedApiKey(),
    roleLabel: (role) => ROLE_LABELS[role] || role,
    isAdmin: profile && (profile.role === "admin" || profile.role === "super-admin"),
    signOut,
  };
}

// -- sign-in ----------------------------------------------------------------------------

function renderSignIn({ message = "", error = "" } = {}) {
  shell = null;
  renderToken += 1;
  document.title = "Sign in · Gateway console";
  const rememberedKey = localStorage.getItem(API_KEY) || "";
  const formError = errorSlot();
  const fields = {};
  const field = (name, label, attrs, hint) => {
    const id = uid(name);
    const slot = errorSlot(`${id}-error`);
    const hintId = hint ? `${id}-hint` : null;
    const input = h("input", { id, name, required: true, "aria-describedby":
      [hintId, slot.id].filter(Boolean).join(" "), ...attrs });
    fields[name] = { input, slot };
    return h("div", { class: "field" },
      h("label", { for: id }, label),
      hint ? h("p", { class: "hint", id: hintId }, hint) : null,
      input, slot.element);
  };
  // Off unless asked for on an earlier sign-in: a shared computer keeps nothing by default.
  const remember = h("input", { type: "checkbox", id: uid("remember"), name: "remember",
    checked: Boolean(rememberedKey) });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card signin-form", novalidate: true, "aria-describedby": formError.id },
    field("apiKey", "API key", { type: "text", autocomplete: "off", spellcheck: "false",
      class: "mono", value: rememberedKey },
    "Names your network: the apiKey printed when the network was created."),
    h("div", { class: "checkbox" }, remember,
      h("label", { for: remember.id }, "Remember the API key on this device")),
    field("username", "Username", { type: "text", autocomplete: "username",
      autocapitalize: "none", spellcheck: "false" }),
    field("password", "Password", { type: "password", autocomplete: "current-password" }),
    formError.element,
    submit);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.clear();
    let firstInvalid = null;
    const values = {};
    for (const [name, { input, slot }] of Object.entries(fields)) {
      slot.clear();
      input.removeAttribute("aria-invalid");
      values[name] = name === "password" ? input.value : input.value.trim();
      if (!values[name]) {
        const label = { apiKey: "the API key", username: "your username",
          password: "your password" }[name];
        slot.show(`Enter ${label}.`);
        input.setAttribute("aria-invalid", "true");
        firstInvalid = firstInvalid || input;
      }
    }
    if (firstInvalid) { firstInvalid.focus(); return; }
    try {
      const answer = await submitting(submit, () =>
        api.login(values.apiKey, values.username, values.password));
      // The answer holds the admin token too: it is not kept (the cookie is the session).
      localStorage.setItem(PROFILE, JSON.stringify({ username: values.username, role: answer.role }));
      sessionStorage.setItem(API_KEY, values.apiKey);
      if (remember.checked) localStorage.setItem(API_KEY, values.apiKey);
      else localStorage.removeItem(API_KEY);
      if (!PAGES.some((page) => page.path === location.hash)) {
        history.replaceState(null, "", PAGES[0].path);
      }
      await renderShell();
    } catch (problem) {
      if (problem instanceof ApiError && problem.field && fields[problem.field]) {
        fields[problem.field].slot.show(problem);
        fields[problem.field].input.setAttribute("aria-invalid", "true");
        fields[problem.field].input.focus();
        return;
      }
      if (problem instanceof ApiError && problem.status === 401) {
        formError.show(`${problem.message}: the API key, username or password is wrong.`);
      } else {
        formError.show(problem);
      }
      fields.password.input.select();
      fields.password.input.focus();
    }
  });

  const notice = h("p", { class: "notice", role: "status" }, message);
  notice.hidden = !message;
  const heading = h("h1", { tabindex: "-1" }, "Sign in to the gateway console");
  replace(root,
    h("main", { id: "main", class: "signin", tabindex: "-1" },
      h("div", { class: "brand brand-large" }, h("span", { class: "logo", "aria-hidden": "true" }), "Gateway console"),
      heading, notice, form));
  root.removeAttribute("aria-busy");
  if (error) formError.show(error);
  const empty = Object.values(fields).find(({ input }) => !input.value);
  (empty ? empty.input : fields.password.input).focus();
}

async function submitting(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  const before = button.textContent;
  button.textContent = "Signing in…";
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = before;
  }
}

let signingOut = false;

/** End the console session (when still open) and show the sign-in page with `message`. */
export async function signOut(message = "You have signed out.") {
  if (signingOut) return;
  signingOut = true;
  try {
    await api.logout();
  } catch {
    // already ended, or the gateway is unreachable: the cookie is dropped either way
  } finally {
    localStorage.removeItem(PROFILE);
    sessionStorage.removeItem(API_KEY);
    document.querySelectorAll("dialog").forEach((dialog) => dialog.remove());
    signingOut = false;
    renderSignIn({ message });
  }
}

setSessionEndedHandler(() => {
  if (!shell) return; // already on the sign-in page
  signOut("Your console session has ended (signed out elsewhere, token revoked or expired)."
    + " Sign in again.");
});

// -- the signed-in shell ------------------------------------------------------------------

async function renderShell() {
  const ctx = context();
  if (!ctx.me) { renderSignIn(); return; }
  const networkLabel = h("span", { class: "network-name" });
  const signOutButton = h("button", { type: "button", class: "secondary" }, "Sign out");
  signOutButton.addEventListener("click", () => signOut());
  const links = [];
  const groups = GROUPS.map((group) => {
    const items = PAGES.filter((page) => page.group === group.key)
      .map((page) => h("li", {}, h("a", { href: page.path }, page.title)));
    links.push(...items);
    return [h("h2", { id: group.id }, group.title),
      h("ul", { "aria-labelledby": group.id }, items)];
  });
  const main = h("main", { id: "main", tabindex: "-1", class: "content" });
  replace(root,
    h("header", { class: "topbar" },
      h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "Gateway console"),
      networkLabel,
      h("div", { class: "who" },
        h("span", {}, "Signed in as ", h("strong", { class: "me" }, ctx.me.username), " ",
          h("span", { class: "badge" }, ctx.roleLabel(ctx.me.role))),
        signOutButton)),
    h("div", { class: "layout" },
      h("nav", { class: "sidenav", "aria-labelledby": GROUPS.map((group) => group.id).join(" ") },
        groups),
      main));
  root.removeAttribute("aria-busy");
  shell = { main, links, networkLabel };
  api.network().then((network) => {
    replace(networkLabel, "Network ", h("strong", {}, network.name), ` (${network.region})`);
  }).catch((problem) => {
    if (!(problem instanceof SessionEnded)) networkLabel.textContent = "";
  });
  await route(false);
}

async function route(moveFocus = true) {
  if (!shell) return;
  let page = PAGES.find((candidate) => candidate.path === location.hash);
  if (!page) {
    page = PAGES[0];
    history.replaceState(null, "", page.path);
  }
  for (const item of shell.links) {
    const link = item.firstChild;
    if (link.getAttribute("href") === page.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${page.title} · Gateway console`;
  renderToken += 1;
  const token = renderToken;
  const container = h("div", { class: "page" });
  const heading = h("h1", { tabindex: "-1" }, page.title);
  replace(shell.main, heading, container);
  if (moveFocus) heading.focus();
  const ctx = context();
  if (!ctx.me) { renderSignIn(); return; }
  try {
    await page.render(container, { ...ctx, isCurrent: () => token === renderToken });
  } catch (problem) {
    if (problem instanceof SessionEnded) return;
    const slot = errorSlot();
    container.append(slot.element);
    slot.show(problem);
  }
}

window.addEventListener("hashchange", () => route(true));

if (loadProfile()) {
  renderShell();
} else {
  renderSignIn();
}
