// Settings > Security > Webhooks: signed notices to the network's own systems when its
// credentials or security settings change (docs/WEBHOOKS.md).

import { api, ApiError, SessionEnded } from "./api.js";
import {
  busy, confirmAction, errorSlot, h, openDialog, replace, secretField, section, time, uid,
} from "./ui.js";

const MAX_WEBHOOKS = 10;
const MAX_URL = 2000;

// The kinds a subscription may ask for, in the gateway's order, with what they mean.
const EVENT_KINDS = [
  ["admin_token.generated", "Admin token generated"],
  ["admin_token.superseded", "Admin token superseded (with the end of its grace)"],
  ["admin_token.grace_ending", "A superseded token's grace ends within the hour"],
  ["admin_token.revoked", "Admin token revoked"],
  ["admin_token.expiring", "Admin token expiring soon"],
  ["server_key.generated", "Server key generated"],
  ["certificate.added", "Certificate added"],
  ["certificate.deleted", "Certificate deleted"],
  ["network.secure_mode_switched", "Secure mode switched on or off"],
  ["network.mtls_switched", "mTLS switched on or off"],
];
const LABELS = new Map(EVENT_KINDS);

/**
 * The section. `state.webhooks`: the list (null when not loaded); `state.webhooksError`:
 * why it could not be. `refresh()` reloads the page's data and draws it again.
 */
export function webhooksSection({ state, canChange, status, refresh }) {
  const intro = h("p", {}, "The gateway sends a signed JSON notice (", h("code", {}, "POST"),
    ") to your URL when this network's credentials or security settings change. Check the ",
    h("code", {}, "X-Gateway-Signature"), " header with the secret shown when you add one.");
  if (!canChange) {
    return section("Webhooks", intro,
      h("p", { class: "muted" }, "Only admins can see and manage webhooks."));
  }
  const error = errorSlot();
  if (state.webhooksError) error.show(state.webhooksError);
  const webhooks = state.webhooks || [];
  const full = webhooks.length >= MAX_WEBHOOKS;
  const reasonId = uid("webhook-reason");
  let reason = null;
  if (full) reason = `This network has ${MAX_WEBHOOKS} webhooks, the most it can have.`;
  else if (state.webhooksError) reason = "The webhooks could not be loaded.";
  const add = h("button", {
    type: "button", class: "primary", "data-key": "add-webhook", disabled: Boolean(reason),
    "aria-describedby": reason ? reasonId : null,
  }, "+ Add webhook");
  add.addEventListener("click", () => addWebhook({ status, refresh }));
  const list = webhooks.length
    ? h("div", { class: "table-wrap" }, h("table", { class: "table webhooks" },
      h("caption", { class: "visually-hidden" }, "Webhooks of this network"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "URL"),
        h("th", { scope: "col" }, "Events"),
        h("th", { scope: "col" }, "Deliveries"),
        h("th", { scope: "col" }, "Added"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, webhooks.map((webhook) => webhookRow(webhook, { error, status, refresh })))))
    : (state.webhooksError ? null : h("p", { class: "muted empty" }, "No webhooks yet."));
  return section("Webhooks", intro,
    h("div", { class: "toolbar" }, add,
      reason ? h("p", { class: "hint", id: reasonId }, reason) : null),
    error.element, list);
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function eventsCell(events) {
  const label = (kind) => LABELS.get(kind) || kind;
  if (events.length === EVENT_KINDS.length) return "All events";
  if (events.length === 1) return label(events[0]);
  return h("details", {}, h("summary", {}, `${events.length} of ${EVENT_KINDS.length} events`),
    h("ul", {}, events.map((kind) => h("li", {}, label(kind)))));
}

function deliveryState(deliveries) {
  const parts = [];
  if (deliveries.failed) {
    parts.push(h("span", { class: "badge danger" }, `${deliveries.failed} given up`));
  }
  if (deliveries.pending) parts.push(h("span", { class: "badge count" }, `${deliveries.pending} waiting`));
  if (deliveries.lastError) {
    parts.push(h("span", { class: "hint" }, `Last attempt failed: ${deliveries.lastError}`));
  }
  if (deliveries.lastDeliveredAt) {
    parts.push(h("span", { class: "hint" }, "Last delivered ", time(deliveries.lastDeliveredAt)));
  }
  return parts.length ? parts : h("span", { class: "muted" }, "Nothing sent yet");
}

function webhookRow(webhook, { error, status, refresh }) {
  const host = hostOf(webhook.url);
  const test = h("button", { type: "button", class: "secondary",
    "data-key": `test:${webhook.webhookId}`,
    "aria-label": `Send a test event to ${host}` }, "Send test event");
  test.addEventListener("click", async () => {
    error.clear();
    status.clear();
    let answer;
    try {
      answer = await busy(test, () => api.testWebhook(webhook.webhookId), "Sending…");
    } catch (problem) {
      error.show(problem);
      return;
    }
    if (answer.delivered) {
      status.show(`The test event was delivered to ${host}.`);
    } else if (answer.error) {
      error.show(`The test event was not delivered to ${host}: ${answer.error}. It will be`
        + " retried.");
    } else {
      status.show(`The test event is on its way to ${host}: no answer yet.`);
    }
    await refresh().catch(() => {});
  });
  const remove = h("button", { type: "button", class: "danger-outline",
    "data-key": `delete:${webhook.webhookId}`,
    "aria-label": `Delete the webhook to ${host}` }, "Delete");
  remove.addEventListener("click", () => deleteWebhook(webhook, { status, refresh }));
  return h("tr", { "data-webhook": webhook.webhookId },
    h("th", { scope: "row", class: "mono url" }, webhook.url),
    h("td", {}, eventsCell(webhook.events)),
    h("td", {}, deliveryState(webhook.deliveries)),
    h("td", {}, time(webhook.createdAt), webhook.createdBy ? ` by ${webhook.createdBy}` : ""),
    h("td", { class: "actions" }, test, " ", remove));
}

async function deleteWebhook(webhook, { status, refresh }) {
  const done = await confirmAction({
    title: "Delete this webhook?",
    message: [h("p", {}, "Nothing more is sent to ", h("code", {}, webhook.url),
      ", including notices still waiting to be delivered. This cannot be undone.")],
    confirmLabel: "Delete webhook",
    danger: true,
    action: async () => {
      await api.deleteWebhook(webhook.webhookId);
      return true;
    },
  });
  if (!done) return;
  status.show(`The webhook to ${hostOf(webhook.url)} was deleted.`);
  await refresh();
  document.querySelector('[data-key="add-webhook"]:not([disabled])')?.focus();
}

function addWebhook({ status, refresh }) {
  const ui = openDialog({ title: "Add a webhook" });
  const formId = uid("webhook-form");
  const urlId = uid("webhook-url");
  const urlError = errorSlot(`${urlId}-error`);
  const eventsError = errorSlot();
  const formError = errorSlot();
  const url = h("input", { id: urlId, name: "url", type: "url", required: true,
    maxlength: String(MAX_URL), autocomplete: "off", spellcheck: "false",
    placeholder: "https://hooks.example.com/gateway",
    "aria-describedby": `${urlId}-hint ${urlId}-error` });
  const boxes = EVENT_KINDS.map(([kind, label]) => {
    const id = uid("webhook-event");
    const box = h("input", { id, type: "checkbox", name: "events", value: kind, checked: true });
    box.addEventListener("change", () => eventsError.clear());
    return { kind, box, row: h("div", { class: "checkbox" }, box,
      h("label", { for: id }, label, " ", h("code", { class: "hint" }, kind))) };
  });
  const create = h("button", { type: "submit", class: "primary", form: formId }, "Add webhook");
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  cancel.addEventListener("click", () => ui.close());
  url.addEventListener("input", () => {
    urlError.clear();
    url.removeAttribute("aria-invalid");
  });

  const form = h("form", { id: formId, class: "form", novalidate: true },
    h("div", { class: "field" },
      h("label", { for: urlId }, "URL ", h("span", { class: "required" }, "(required)")),
      h("p", { class: "hint", id: `${urlId}-hint` }, "An https:// (or http://) address of"
        + " your own service. Redirects are not followed; answer 2xx within 10 seconds."),
      url, urlError.element),
    h("fieldset", { class: "event-group" }, h("legend", {}, "Events"),
      boxes.map((item) => item.row), eventsError.element),
    formError.element);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const events = boxes.filter((item) => item.box.checked).map((item) => item.kind);
    if (!url.value.trim()) {
      urlError.show("URL: enter the address the notices are sent to.");
      url.setAttribute("aria-invalid", "true");
      url.focus();
      return;
    }
    if (!events.length) {
      eventsError.show("Events: choose at least one.");
      boxes[0].box.focus();
      return;
    }
    formError.clear();
    ui.setBusy(true);
    let created;
    try {
      created = await busy(create, () => api.createWebhook(url.value.trim(), events), "Adding…");
    } catch (problem) {
      ui.setBusy(false);
      if (problem instanceof SessionEnded) { ui.close(); return; }
      if (problem instanceof ApiError && problem.field === "url") {
        urlError.show(problem);
        url.setAttribute("aria-invalid", "true");
        url.focus();
      } else if (problem instanceof ApiError && problem.field?.startsWith("events")) {
        eventsError.show(problem);
        boxes[0].box.focus();
      } else {
        formError.show(problem);
        create.focus();
      }
      return;
    }
    ui.setBusy(false);
    showSecret(ui, created);
    status.show(`A webhook to ${hostOf(created.url)} was added.`);
    refresh().catch(() => {});
  });
  replace(ui.body, form);
  replace(ui.footer, cancel, create);
  url.focus();
}

function showSecret(ui, created) {
  ui.setTitle("Your webhook's signing secret");
  const done = h("button", { type: "button", class: "primary" }, "Done");
  done.addEventListener("click", () => ui.close());
  replace(ui.body,
    h("p", { class: "callout warning once", role: "note" },
      h("strong", {}, "This secret will not be shown again."),
      " Store it with the service at ", h("code", {}, created.url), ": it checks every"
      + " notice's X-Gateway-Signature with it."),
    secretField({ label: "Signing secret", value: created.secret }),
    h("p", { class: "hint" }, "The signature is sha256= and the hex HMAC-SHA256 of the"
      + " X-Gateway-Timestamp value, a dot, and the raw body, keyed with this secret."
      + " Refuse timestamps more than 5 minutes off, and use X-Gateway-Delivery to drop"
      + " repeats."));
  replace(ui.footer, done);
  ui.body.querySelector(".secret-actions button")?.focus();
}
