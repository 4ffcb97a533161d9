// Calls to the gateway's admin API. The browser sends the HttpOnly console cookie
// (`gateway_console`) itself: no token is ever kept by this code.

/** An error answer of the gateway, or a failure to reach it, ready to show to a person. */
export class ApiError extends Error {
  constructor(status, message, { code = null, field = null, retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }

  /** What to show: the gateway's own message, with what to do where that helps. */
  get display() {
    let text = this.message;
    if (this.status === 429 && this.retryAfter) {
      text += ` Try again in ${describeSeconds(this.retryAfter)}.`;
    }
    if (this.status === 401 && this.message === "client certificate required") {
      text += ". mTLS is on for this network: use a browser that presents one of its"
        + " client certificates.";
    }
    return text;
  }
}

/** Thrown instead of an ApiError once the session has ended (the page is replaced). */
export class SessionEnded extends Error {
  constructor() {
    super("The console session has ended.");
    this.name = "SessionEnded";
  }
}

// Answers meaning "this cookie no longer stands for anyone" (revoked, logged out, expired).
const SESSION_GONE = new Set(["Unauthorized", "Invalid token", "token expired"]);

let onSessionEnded = () => {};

/** Called once when a request finds the console session gone. */
export function setSessionEndedHandler(handler) {
  onSessionEnded = handler;
}

function describeSeconds(value) {
  const seconds = Number.parseInt(value, 10);
  if (!Number.isFinite(seconds)) return "a moment";
  if (seconds < 90) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minutes`;
}

function fieldOf(body) {
  const detail = body && body.data && Array.isArray(body.data.detail) ? body.data.detail : [];
  if (detail.length && typeof detail[0].field === "string") return detail[0].field;
  const match = typeof body?.message === "string" && /^([A-Za-z][\w.]*)(?::| )/.exec(body.message);
  return match ? match[1] : null;
}

/**
 * One request. `body` is sent as JSON; `headers` are added. Resolves to the parsed JSON
 * answer (or null when there is none); rejects with ApiError (or SessionEnded).
 */
export async function request(method, path, { body, headers = {}, session = true } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    cache: "no-store",
    headers: { Accept: "application/json", ...headers },
  };
  // Writes are JSON even without a body: the gateway refuses cookie writes that are not
  // (a form on another site cannot send application/json without a CORS preflight).
  if (body !== undefined || (method !== "GET" && method !== "HEAD")) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "Cannot reach the gateway. Check your connection and try again.");
  }
  const text = await response.text().catch(() => "");
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.ok) return data;
  const message = data && typeof data.message === "string" && data.message
    ? data.message
    : `The gateway answered HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}.`;
  if (session && response.status === 401 && SESSION_GONE.has(message)) {
    onSessionEnded();
    throw new SessionEnded();
  }
  throw new ApiError(response.status, message, {
    code: data && typeof data.code === "number" ? data.code : null,
    field: data ? fieldOf(data) : null,
    retryAfter: response.headers.get("Retry-After"),
  });
}

export const api = {
  login: (apiKey, username, password) => request("POST", "/console/v1/login", {
    body: { username, password }, headers: { "x-api-key": apiKey }, session: false,
  }),
  logout: () => request("POST", "/console/v1/logout", { session: false }),
  admins: () => request("GET", "/api/v3/admins"),
  adminToken: () => request("GET", "/api/v1/admin-token"),
  generateAdminToken: () => request("POST", "/api/v1/admin-token"),
  revokeAdminToken: (username) => request("DELETE", "/api/v1/admin-token", { body: { username } }),
  network: () => request("GET", "/api/v3/networks/me"),
  updateNetwork: (changes) => request("PUT", "/api/v3/networks/me", { body: changes }),
  serverKeyInfo: () => request("GET", "/api/v3/networks/server-key"),
  generateServerKey: () => request("POST", "/api/v3/networks/server-key"),
  certificates: () => request("GET", "/api/v3/networks/certificates"),
  createCertificate: (name, csr) => request("POST", "/api/v3/networks/certificates", {
    body: { name, csr },
  }),
  deleteCertificate: (id) => request(
    "DELETE", `/api/v3/networks/certificates/${encodeURIComponent(id)}`,
  ),
  webhooks: () => request("GET", "/api/v3/webhooks"),
  createWebhook: (url, events) => request("POST", "/api/v3/webhooks", { body: { url, events } }),
  deleteWebhook: (id) => request("DELETE", `/api/v3/webhooks/${encodeURIComponent(id)}`),
  testWebhook: (id) => request("POST", `/api/v3/webhooks/${encodeURIComponent(id)}/test`),
  pushSetting: () => request("GET", "/api/v3/notification/setting?level=network"),
  updatePushSetting: (changes) => request("POST", "/api/v3/notification/setting", {
    body: { level: "network", ...changes },
  }),
  // One page, newest first; `before` is the previous page's nextBefore. Empty filters
  // are left out (the gateway refuses an empty one).
  auditLogs: ({ limit, before, action, actor } = {}) => {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries({ limit, before, action, actor })) {
      if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
    }
    return request("GET", `/api/v3/audit-logs?${query}`);
  },
  // The user with its ban state: the gateway's own path (the platform's
  // /api/v3/users/{userId} belongs to the upstream).
  userState: (userId) => request("GET", `/api/v3/users/${encodeURIComponent(userId)}/ban`),
  banUser: (userId) => request("POST", `/api/v3/users/${encodeURIComponent(userId)}/ban`),
  unbanUser: (userId) => request("DELETE", `/api/v3/users/${encodeURIComponent(userId)}/ban`),
  revokeUserSessions: (userId) => request(
    "DELETE", `/api/v4/sessions/users/${encodeURIComponent(userId)}`,
  ),
};
