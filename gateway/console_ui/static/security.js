// Settings > Security: API key, secure mode, the server key, client certificates, mTLS, webhooks.

import { api, ApiError, SessionEnded } from "./api.js";
import {
  busy, confirmAction, errorSlot, h, keepingFocus, openDialog, replace, secretField, section,
  statusSlot, time, toggle, uid,
} from "./ui.js";
import { webhooksSection } from "./webhooks.js";

const MAX_CERTIFICATES = 2;
const MAX_NAME = 30;

export async function renderSecurity(container, ctx) {
  const me = ctx.me;
  const canChange = ctx.isAdmin;
  const state = { network: null, serverKey: null, certificates: null, certificatesError: null,
    serverKeyError: null, mtlsWarnings: [], webhooks: null, webhooksError: null };
  const status = statusSlot();
  const body = h("div", { class: "sections" });
  replace(container,
    h("p", { class: "lead" }, "How this network's clients and servers prove who they are."),
    canChange ? null : h("p", { class: "notice" }, "You are a moderator: you can see these"
      + " settings; an admin of the network can change them."),
    status.element, body);

  async function load() {
    const [network, serverKey, certificates, webhooks] = await Promise.allSettled([
      api.network(),
      canChange ? api.serverKeyInfo() : Promise.resolve(null),
      canChange ? api.certificates() : Promise.resolve(null),
      canChange ? api.webhooks() : Promise.resolve(null),
    ]);
    for (const result of [network, serverKey, certificates, webhooks]) {
      if (result.status === "rejected" && result.reason instanceof SessionEnded) throw result.reason;
    }
    if (network.status === "rejected") throw network.reason;
    state.network = network.value;
    state.serverKey = serverKey.status === "fulfilled" ? serverKey.value : null;
    state.serverKeyError = serverKey.status === "rejected" ? serverKey.reason : null;
    state.certificates = certificates.status === "fulfilled" && certificates.value
      ? certificates.value.certificates : null;
    state.certificatesError = certificates.status === "rejected" ? certificates.reason : null;
    state.webhooks = webhooks.status === "fulfilled" && webhooks.value
      ? webhooks.value.webhooks : null;
    state.webhooksError = webhooks.status === "rejected" ? webhooks.reason : null;
  }

  async function refresh() {
    await load();
    if (ctx.isCurrent()) await keepingFocus(draw);
  }

  function draw() {
    replace(body,
      apiKeySection(state.network, ctx),
      secureModeSection(),
      serverKeySection(),
      certificatesSection(),
      mtlsSection(),
      webhooksSection({ state, canChange, status, refresh }));
  }

  // -- secure mode ------------------------------------------------------------------------

  function secureModeSection() {
    const error = errorSlot();
    const secure = state.network.useSecureAuthentication;
    const control = toggle({
      key: "secure-mode",
      label: "Secure mode",
      description: "Users then need an auth token, obtained by your server with the server"
        + " key, to start a session.",
      checked: secure,
      disabled: !canChange,
      onchange: async (next) => {
        error.clear();
        try {
          state.network = await api.updateNetwork({ useSecureAuthentication: next });
        } catch (problem) {
          error.show(problem);
          return false;
        }
        status.show(`Secure mode is ${next ? "on" : "off"}.`);
        await keepingFocus(draw);
        return true;
      },
    });
    return section("Secure mode", control.row, error.element);
  }

  // -- server key -------------------------------------------------------------------------

  function serverKeySection() {
    if (!canChange) {
      return section("Server key", h("p", { class: "muted" }, "Only admins can see and"
        + " generate the server key."));
    }
    const error = errorSlot();
    if (state.serverKeyError) error.show(state.serverKeyError);
    const info = state.serverKey && state.serverKey.updatedAt
      ? h("p", { class: "server-key-info" }, "Last generated ", time(state.serverKey.updatedAt),
        state.serverKey.updatedBy ? ` by ${state.serverKey.updatedBy}` : "", ".")
      : h("p", { class: "server-key-info" }, "No server key has been generated yet.");
    let action;
    if (me.role === "super-admin") {
      action = h("p", { class: "hint" }, "Super admins cannot generate a server key: an admin"
        + " of the network can.");
    } else {
      action = h("button", { type: "button", class: "secondary", "data-key": "server-key" },
        "Generate new server key");
      action.addEventListener("click", () => generateServerKey());
    }
    return section("Server key",
      h("p", {}, "Your servers send it as ", h("code", {}, "x-server-key"),
        " to get auth tokens for your users. It is stored only as a hash."),
      info, action, error.element);
  }

  function generateServerKey() {
    const ui = openDialog({ title: "Generate a new server key" });
    const error = errorSlot();
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    const proceed = h("button", { type: "button", class: "danger" }, "Continue");
    cancel.addEventListener("click", () => ui.close());
    replace(ui.body,
      h("div", { class: "callout warning", role: "note" },
        h("p", {}, h("strong", {}, "Read this first.")),
        h("ul", {},
          h("li", {}, "The current server key stops working as soon as the new one is made:"
            + " your servers cannot get auth tokens until they use the new key."),
          h("li", {}, "The new key is shown once, in the next step. Have a safe place ready"
            + " to keep it (a secret store), because it will not be shown again."))),
      error.element);
    replace(ui.footer, cancel, proceed);
    cancel.focus();
    proceed.addEventListener("click", async () => {
      error.clear();
      ui.setBusy(true);
      let answer;
      try {
        answer = await busy(proceed, () => api.generateServerKey(), "Generating…");
      } catch (problem) {
        ui.setBusy(false);
        if (problem instanceof SessionEnded) { ui.close(); return; }
        error.show(problem);
        proceed.focus();
        return;
      }
      ui.setBusy(false);
      ui.setTitle("Your new server key");
      const done = h("button", { type: "button", class: "primary" }, "Done");
      done.addEventListener("click", () => ui.close());
      replace(ui.body,
        h("p", { class: "callout warning once", role: "note" },
          h("strong", {}, "This key will not be shown again."),
          " Copy it now and store it safely; the gateway keeps only a hash of it."),
        secretField({ label: "Server key", value: answer.serverKey }));
      replace(ui.footer, done);
      ui.body.querySelector(".secret-actions button")?.focus();
      ui.onClose(() => {
        status.show("A new server key was generated; the previous one no longer works.");
        refresh().catch(() => {});
      });
    });
  }

  // -- certificates -----------------------------------------------------------------------

  function certificatesSection() {
    const intro = h("p", {}, "Client certificates for mTLS, signed by the gateway's CA from"
      + ` a certificate signing request (CSR) you make. At most ${MAX_CERTIFICATES} per network. `,
      h("a", { href: "/api/v3/networks/certificates/ca", download: "gateway-ca.pem" },
        "Download the CA certificate"), ".");
    if (!canChange) {
      return section("Certificates", intro,
        h("p", { class: "muted" }, "Only admins can see and manage certificates."));
    }
    const error = errorSlot();
    if (state.certificatesError) error.show(state.certificatesError);
    const certificates = state.certificates || [];
    const secure = state.network.useSecureAuthentication;
    const full = certificates.length >= MAX_CERTIFICATES;
    const reasonId = uid("create-reason");
    let reason = null;
    if (!secure) reason = "Turn secure mode on to create certificates.";
    else if (full) reason = `This network has ${MAX_CERTIFICATES} certificates, the most it`
      + " can have: delete one to create another.";
    else if (state.certificatesError) reason = "The certificates could not be loaded.";
    const create = h("button", {
      type: "button", class: "primary", "data-key": "create-certificate",
      disabled: Boolean(reason), "aria-describedby": reason ? reasonId : null,
    }, "+ Create Certificate");
    create.addEventListener("click", () => createCertificate());
    const list = certificates.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "table certificates" },
        h("caption", { class: "visually-hidden" }, "Certificates of this network"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Name"),
          h("th", { scope: "col" }, "Fingerprint (SHA-256)"),
          h("th", { scope: "col" }, "Valid from"),
          h("th", { scope: "col" }, "Valid until"),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
        h("tbody", {}, certificates.map(certificateRow))))
      : (state.certificatesError ? null : h("p", { class: "muted empty" }, "No certificates yet."));
    return section("Certificates", intro,
      h("div", { class: "toolbar" }, create,
        reason ? h("p", { class: "hint", id: reasonId }, reason) : null),
      error.element, list);
  }

  function certificateRow(certificate) {
    const expired = new Date(certificate.notAfter).getTime() < Date.now();
    const remove = h("button", { type: "button", class: "danger-outline",
      "data-key": `delete:${certificate.certificateId}`,
      "aria-label": `Delete certificate ${certificate.name}` }, "Delete");
    remove.addEventListener("click", () => deleteCertificate(certificate));
    return h("tr", { "data-certificate": certificate.name },
      h("th", { scope: "row" }, certificate.name),
      h("td", { class: "mono fingerprint" }, certificate.fingerprintSha256),
      h("td", {}, time(certificate.notBefore)),
      h("td", {}, time(certificate.notAfter),
        expired ? h("span", { class: "badge danger" }, "expired") : null),
      h("td", { class: "actions" }, remove));
  }

  async function deleteCertificate(certificate) {
    const done = await confirmAction({
      title: `Delete certificate ${certificate.name}?`,
      message: [h("p", {}, "Clients presenting this certificate are refused from now on"
        + " while mTLS is on. This cannot be undone."),
      h("p", {}, "Fingerprint: ", h("code", { class: "fingerprint" }, certificate.fingerprintSha256))],
      confirmLabel: "Delete certificate",
      danger: true,
      action: async () => {
        await api.deleteCertificate(certificate.certificateId);
        return true;
      },
    });
    if (!done) return;
    status.show(`Certificate ${certificate.name} was deleted.`);
    await refresh();
    body.querySelector('[data-key="create-certificate"]:not([disabled])')?.focus();
  }

  function createCertificate() {
    const ui = openDialog({ title: "Create Certificate" });
    const formId = uid("certificate-form");
    const nameId = uid("certificate-name");
    const csrId = uid("certificate-csr");
    const nameError = errorSlot(`${nameId}-error`);
    const csrError = errorSlot(`${csrId}-error`);
    const formError = errorSlot();
    const name = h("input", { id: nameId, name: "name", type: "text", required: true,
      autocomplete: "off", spellcheck: "false",
      "aria-describedby": `${nameId}-count ${nameId}-error` });
    const count = h("p", { class: "counter", id: `${nameId}-count` }, `0/${MAX_NAME} characters`);
    const csr = h("textarea", { id: csrId, name: "csr", required: true, rows: 9,
      class: "mono", spellcheck: "false",
      placeholder: "-----BEGIN CERTIFICATE REQUEST-----\n…\n-----END CERTIFICATE REQUEST-----",
      "aria-describedby": `${csrId}-hint ${csrId}-error` });
    const create = h("button", { type: "submit", class: "primary", form: formId, disabled: true },
      "Create");
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    cancel.addEventListener("click", () => ui.close());
    const length = () => [...name.value].length;

    function check() {
      const n = length();
      count.textContent = `${n}/${MAX_NAME} characters`;
      const over = n > MAX_NAME;
      count.classList.toggle("over", over);
      if (over) {
        nameError.show(`Certificate Name: at most ${MAX_NAME} characters (${n} now).`);
        name.setAttribute("aria-invalid", "true");
      } else if (name.getAttribute("aria-invalid") === "true" && !nameError.element.dataset.server) {
        nameError.clear();
        name.removeAttribute("aria-invalid");
      }
      create.disabled = over || !name.value.trim() || !csr.value.trim();
    }
    name.addEventListener("input", () => {
      delete nameError.element.dataset.server;
      check();
    });
    csr.addEventListener("input", () => {
      csrError.clear();
      csr.removeAttribute("aria-invalid");
      check();
    });

    const form = h("form", { id: formId, class: "form", novalidate: true },
      h("div", { class: "field" },
        h("label", { for: nameId }, "Certificate Name ", h("span", { class: "required" }, "(required)")),
        name, count, nameError.element),
      h("div", { class: "field" },
        h("label", { for: csrId }, "Certificate signing request (CSR) ",
          h("span", { class: "required" }, "(required)")),
        h("p", { class: "hint", id: `${csrId}-hint` }, "PEM text. Make one with ",
          h("code", {}, "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
            + " -subj /CN=my-client -keyout client.key -out client.csr"),
          " and paste client.csr here; the private key stays with you."),
        csr, csrError.element),
      formError.element);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      check();
      if (create.disabled) return;
      formError.clear();
      ui.setBusy(true);
      let certificate;
      try {
        certificate = await busy(create, () => api.createCertificate(name.value, csr.value),
          "Creating…");
      } catch (problem) {
        ui.setBusy(false);
        if (problem instanceof SessionEnded) { ui.close(); return; }
        check();
        const target = problem instanceof ApiError ? problemField(problem) : null;
        if (target === "name") {
          nameError.show(problem);
          nameError.element.dataset.server = "1";
          name.setAttribute("aria-invalid", "true");
          name.focus();
        } else if (target === "csr") {
          csrError.show(problem);
          csr.setAttribute("aria-invalid", "true");
          csr.focus();
        } else {
          formError.show(problem);
          create.focus();
        }
        return;
      }
      ui.setBusy(false);
      showCreated(ui, certificate);
      refresh().catch(() => {});
    });
    replace(ui.body, form);
    replace(ui.footer, cancel, create);
    name.focus();
  }

  function showCreated(ui, certificate) {
    ui.setTitle(`Certificate ${certificate.name} created`);
    const download = h("button", { type: "button", class: "secondary" }, "Download .pem");
    download.addEventListener("click", () => {
      const url = URL.createObjectURL(new Blob([certificate.certificate],
        { type: "application/x-pem-file" }));
      const link = h("a", { href: url, download: `${certificate.name.replace(/[^\w.-]+/g, "_")}.pem`,
        class: "offscreen" });
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 1000);
    });
    const done = h("button", { type: "button", class: "primary" }, "Done");
    done.addEventListener("click", () => ui.close());
    replace(ui.body,
      h("p", { class: "success" }, "The gateway's CA signed your CSR. Use this certificate"
        + " with the private key you kept."),
      h("dl", { class: "details" },
        h("dt", {}, "Fingerprint (SHA-256)"), h("dd", { class: "mono fingerprint" }, certificate.fingerprintSha256),
        h("dt", {}, "Valid from"), h("dd", {}, time(certificate.notBefore)),
        h("dt", {}, "Valid until"), h("dd", {}, time(certificate.notAfter))),
      secretField({ label: "Certificate (PEM)", value: certificate.certificate, multiline: true }));
    replace(ui.footer, download, done);
    done.focus();
    status.show(`Certificate ${certificate.name} was created.`);
  }

  // -- mTLS -------------------------------------------------------------------------------

  function mtlsSection() {
    const error = errorSlot();
    const secure = state.network.useSecureAuthentication;
    const on = state.network.mtlsEnabled;
    const none = state.certificates !== null && state.certificates.length === 0;
    const advice = h("p", { class: `callout${none && !on ? " warning" : ""}`, role: "note" },
      h("strong", {}, "Create a certificate first. "),
      "With mTLS on, auth-token requests and every admin call, this console's included, must"
      + " present one of this network's certificates; anything else is refused.");
    const control = toggle({
      key: "mtls",
      label: "mTLS (client certificates required)",
      description: secure ? null : "Needs secure mode: turn secure mode on first.",
      checked: on,
      disabled: !canChange || (!secure && !on),
      onchange: async (next) => {
        error.clear();
        if (next) {
          const answer = await confirmAction({
            title: "Turn mTLS on?",
            message: [
              h("p", {}, "From now on, auth-token requests and admin calls, including this"
                + " console's, need a client certificate of this network."),
              none ? h("p", { class: "callout warning" }, h("strong", {}, "This network has no"
                + " certificate yet."), " Every such call will be refused until you create one"
                + " and present it.") : null,
            ],
            confirmLabel: "Turn mTLS on",
            action: () => api.updateNetwork({ mtlsEnabled: true }),
          });
          if (!answer) return false;
          state.network = answer;
          state.mtlsWarnings = answer.warnings || [];
        } else {
          try {
            state.network = await api.updateNetwork({ mtlsEnabled: false });
          } catch (problem) {
            error.show(problem);
            return false;
          }
          state.mtlsWarnings = [];
        }
        status.show(`mTLS is ${next ? "on" : "off"}.`);
        await keepingFocus(draw);
        return true;
      },
    });
    const warnings = state.mtlsWarnings.length
      ? h("ul", { class: "callout warning mtls-warnings", role: "alert" },
        state.mtlsWarnings.map((text) => h("li", {}, text)))
      : null;
    return section("mTLS", advice, control.row, warnings, error.element);
  }

  try {
    await load();
  } catch (problem) {
    if (problem instanceof SessionEnded) throw problem;
    const error = errorSlot();
    replace(body, error.element);
    error.show(problem);
    return;
  }
  if (ctx.isCurrent()) draw();
}

function problemField(problem) {
  if (problem.field === "name" || problem.field === "csr") return problem.field;
  if (problem.status === 409 && /\bnamed\b/.test(problem.message)) return "name";
  return null;
}

function apiKeySection(network, ctx) {
  const key = ctx.apiKey;
  return section("API key",
    h("p", {}, "Client apps send it as ", h("code", {}, "x-api-key"), ". It names this network"
      + " and nothing else: it is not a secret and grants no access by itself."),
    key
      ? secretField({ label: "API key", value: key })
      : h("p", { class: "muted" }, "Sign in again to see the API key here."),
    h("dl", { class: "details" },
      h("dt", {}, "Network"), h("dd", {}, network.name),
      h("dt", {}, "Network ID"), h("dd", { class: "mono" }, network.networkId),
      h("dt", {}, "Region"), h("dd", {}, network.region)));
}
