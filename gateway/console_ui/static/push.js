// Settings > Push Notifications: the network toggle and the events it governs.

import { api, ApiError } from "./api.js";
import { errorSlot, h, keepingFocus, replace, section, statusSlot, toggle } from "./ui.js";

const GROUPS = [
  { title: "Chat", match: (event) => event.moduleName === "chat" },
  { title: "Posts", match: (event) => event.name.startsWith("post.") },
  { title: "Comments", match: (event) => event.name.startsWith("comment.") },
];

const LABELS = {
  "chat/message.created": "New message",
  "social/post.created": "New post",
  "social/post.reacted": "Reaction to a post",
  "social/comment.created": "New comment",
  "social/comment.replied": "Reply to a comment",
  "social/comment.reacted": "Reaction to a comment",
};

function eventKey(event) {
  return `${event.moduleName}/${event.name}`;
}

export async function renderPush(container, ctx) {
  const canChange = ctx.isAdmin; // super admins and admins; moderators read only
  const status = statusSlot();
  const body = h("div", { class: "sections" });
  replace(container,
    h("p", { class: "lead" }, "Which events send push notifications to this network's users."),
    canChange ? null : h("p", { class: "notice" }, "You are a moderator: you can see these"
      + " settings; an admin of the network can change them."),
    status.element, body);

  let setting = await api.pushSetting();
  if (!ctx.isCurrent()) return;
  // Errors to show again after a redraw, by control: a conflict means this page was out
  // of date, so it reloads the setting and keeps the message next to what caused it.
  const kept = new Map();

  function draw() {
    const networkError = errorSlot();
    const networkOn = setting.isPushNotifiable;
    const master = toggle({
      key: "push-network",
      label: "Push notifications for this network",
      description: "Off: no push notification is sent, whatever the events below say. Each"
        + " event keeps its own setting for when this is back on.",
      checked: networkOn,
      disabled: !canChange,
      onchange: async (next) => {
        networkError.clear();
        kept.clear();
        try {
          setting = await api.updatePushSetting({ isPushNotifiable: next });
        } catch (problem) {
          networkError.show(problem);
          return false;
        }
        status.show(`Push notifications are ${next ? "on" : "off"} for the network.`);
        await keepingFocus(draw);
        return true;
      },
    });

    const eventsOff = !networkOn;
    const noteId = "push-events-note";
    const groups = [];
    const placed = new Set();
    for (const group of GROUPS) {
      const events = setting.notifiableEvents.filter((event) => !placed.has(eventKey(event))
        && group.match(event));
      events.forEach((event) => placed.add(eventKey(event)));
      if (events.length) groups.push({ title: group.title, events });
    }
    const rest = setting.notifiableEvents.filter((event) => !placed.has(eventKey(event)));
    if (rest.length) groups.push({ title: "Other", events: rest });

    const fieldsets = groups.map((group) => h("fieldset", {
      class: `event-group${eventsOff ? " is-disabled" : ""}`,
      "aria-describedby": eventsOff ? noteId : null,
    }, h("legend", {}, group.title), group.events.map((event) => eventControl(event, eventsOff))));

    function eventControl(event, off) {
      const error = errorSlot();
      if (kept.has(eventKey(event))) error.show(kept.get(eventKey(event)));
      const control = toggle({
        key: `event:${eventKey(event)}`,
        label: LABELS[eventKey(event)] || `${event.moduleName} ${event.name}`,
        description: h("code", {}, `${event.moduleName} · ${event.name}`),
        checked: event.isPushNotifiable,
        disabled: !canChange || off,
        onchange: async (next) => {
          error.clear();
          kept.clear();
          try {
            setting = await api.updatePushSetting({ notifiableEvents: [
              { moduleName: event.moduleName, name: event.name, isPushNotifiable: next }] });
          } catch (problem) {
            if (problem instanceof ApiError && problem.status === 409) {
              kept.set(eventKey(event), problem);
              try {
                setting = await api.pushSetting();
              } catch {
                // keep what is shown; the message still says what happened
              }
              draw();
              body.querySelector('[data-key="push-network"]:not([disabled])')?.focus();
            } else {
              error.show(problem);
            }
            return false;
          }
          status.show(`${LABELS[eventKey(event)] || event.name}: push ${next ? "on" : "off"}.`);
          await keepingFocus(draw);
          return true;
        },
      });
      control.row.dataset.event = eventKey(event);
      return h("div", { class: "event" }, control.row, error.element);
    }

    replace(body,
      section("Network", master.row, networkError.element),
      section("Events",
        eventsOff
          ? h("p", { class: "hint", id: noteId }, "Push notifications are off for the network:"
            + " turn them on above to change events.")
          : null,
        fieldsets));
  }
  draw();
}
