'use strict';
/*
 * Runs the published @amityco/ts-sdk against a gateway, one scenario per process.
 *
 *   node harness.cjs <scenario> '<json params>'
 *
 * Prints exactly one line on stdout: `SDK-RESULT {json}`. Everything the SDK logs goes to
 * stderr. Every scenario is bounded by `timeoutMs`; the process always exits on its own
 * (the SDK's socket.io and MQTT clients reconnect forever otherwise).
 *
 * What this harness adds around the SDK, and why (nothing here changes what the SDK sends):
 *  - a loopback guard: every TCP/TLS connect and DNS lookup is checked; one that would leave
 *    127.0.0.0/8, ::1 or "localhost" is refused and recorded in `blocked`;
 *  - globalThis.WebSocket from the `ws` package: the SDK's bundled MQTT client is a browser
 *    build and needs it (Node 20 has no global WebSocket);
 *  - an axios adapter that wraps the SDK's own (http) adapter: it records each request and
 *    answer, and puts the request URL on `response.request.url`, which the SDK's response
 *    interceptor passes to `new Request(...)` (undefined under Node's http adapter, so every
 *    2xx answer would otherwise fail with "Failed to parse URL from undefined");
 *  - optionally a shorter period for the SDK's 10-minute access-token watcher (renewal tests).
 */

const net = require('node:net');
const dns = require('node:dns');
const http = require('node:http');
const https = require('node:https');

const RESULT_PREFIX = 'SDK-RESULT ';
const started = Date.now();
const elapsed = () => Date.now() - started;

const result = {
  scenario: process.argv[2],
  ok: false,
  error: null,
  steps: [],
  requests: [],
  websockets: [],
  socketio: [],
  mqtt: [],
  sessionHandler: [],
  connections: [],
  blocked: [],
  dns: [],
};

function step(name, data) {
  result.steps.push({ at: elapsed(), name, ...(data === undefined ? {} : { data }) });
}

// --- stdout is ours: the SDK's console output goes to stderr ----------------------------
for (const level of ['log', 'info', 'debug', 'warn', 'error', 'trace']) {
  console[level] = (...args) => {
    try {
      process.stderr.write(`[sdk ${level}] ${args.map(a => (typeof a === 'string' ? a : safeInspect(a))).join(' ')}\n`);
    } catch {
      /* stderr closed */
    }
  };
}

function safeInspect(value) {
  try {
    return require('node:util').inspect(value, { depth: 3, breakLength: 200 });
  } catch {
    return String(value);
  }
}

let finished = false;
function finish(exitCode) {
  if (finished) return;
  finished = true;
  result.elapsedMs = elapsed();
  const line = RESULT_PREFIX + JSON.stringify(result, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
  process.stdout.write(`${line}\n`, () => process.exit(exitCode));
  setTimeout(() => process.exit(exitCode), 2000).unref();
}

// --- loopback guard ----------------------------------------------------------------------
function isLoopback(host) {
  if (host === undefined || host === null || host === '') return true; // Node's default: localhost
  const h = String(host).toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

function connectTarget(args) {
  let first = args[0];
  if (Array.isArray(first)) first = first[0]; // net.connect() passes its normalised args
  if (first && typeof first === 'object') {
    if (first.path) return { path: String(first.path) };
    return { host: first.host ?? first.hostname ?? 'localhost', port: first.port };
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return { path: first };
  return { host: typeof args[1] === 'string' ? args[1] : 'localhost', port: first };
}

const originalConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(...args) {
  const target = connectTarget(args);
  if (target.path !== undefined) {
    result.connections.push({ at: elapsed(), path: target.path });
    return originalConnect.apply(this, args);
  }
  const where = `${target.host}:${target.port}`;
  result.connections.push({ at: elapsed(), target: where });
  if (!isLoopback(target.host)) {
    result.blocked.push({ at: elapsed(), kind: 'connect', target: where });
    const error = new Error(`harness: connection to ${where} refused (not loopback)`);
    error.code = 'EHARNESSBLOCKED';
    process.nextTick(() => this.destroy(error));
    return this;
  }
  return originalConnect.apply(this, args);
};

function guardLookup(original, promise) {
  return function guardedLookup(hostname, ...rest) {
    result.dns.push({ at: elapsed(), hostname: String(hostname) });
    if (!isLoopback(hostname)) {
      result.blocked.push({ at: elapsed(), kind: 'dns', target: String(hostname) });
      const error = new Error(`harness: DNS lookup of ${hostname} refused (not loopback)`);
      error.code = 'EHARNESSBLOCKED';
      if (promise) return Promise.reject(error);
      const callback = rest.find(arg => typeof arg === 'function');
      if (callback) process.nextTick(() => callback(error));
      return undefined;
    }
    return original.call(this, hostname, ...rest);
  };
}
dns.lookup = guardLookup(dns.lookup, false);
dns.promises.lookup = guardLookup(dns.promises.lookup, true);
for (const name of ['resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCname', 'resolveSrv']) {
  if (typeof dns[name] === 'function') dns[name] = guardLookup(dns[name], false);
  if (typeof dns.promises[name] === 'function') dns.promises[name] = guardLookup(dns.promises[name], true);
}

// http(s).request to a non-loopback host: recorded here, refused by the socket guard above.
for (const [mod, scheme] of [[http, 'http'], [https, 'https']]) {
  for (const name of ['request', 'get']) {
    const original = mod[name];
    mod[name] = function guardedRequest(...args) {
      let host;
      if (typeof args[0] === 'string' || args[0] instanceof URL) host = new URL(String(args[0])).hostname;
      else if (args[0] && typeof args[0] === 'object') host = args[0].hostname ?? args[0].host;
      if (host && !isLoopback(String(host).replace(/:\d+$/, ''))) {
        result.blocked.push({ at: elapsed(), kind: `${scheme}.${name}`, target: String(host) });
      }
      return original.apply(this, args);
    };
  }
}

// --- WebSocket for the SDK's browser MQTT build -----------------------------------------
const WS = require('ws');

class RecordingWebSocket extends WS {
  constructor(url, protocols, options) {
    super(url, protocols, options);
    const entry = { at: elapsed(), url: String(url), protocols: protocols ?? null, events: [] };
    result.websockets.push(entry);
    this.on('open', () => entry.events.push({ at: elapsed(), event: 'open', protocol: this.protocol }));
    // No 'unexpected-response' listener: with one, ws leaves a refused upgrade hanging.
    this.on('error', err => entry.events.push({ at: elapsed(), event: 'error', message: String(err && err.message) }));
    this.on('close', (code, reason) => entry.events.push({ at: elapsed(), event: 'close', code, reason: String(reason) }));
  }
}
globalThis.WebSocket = RecordingWebSocket;

// --- the SDK ------------------------------------------------------------------------------
const params = JSON.parse(process.argv[3] || '{}');

// The SDK checks the access token's expiry every 10 minutes; renewal tests shorten that,
// and pause it once the renewal under test is done (each tick would renew again).
let watcherPaused = false;
if (params.watcherIntervalMs) {
  const originalSetInterval = globalThis.setInterval;
  globalThis.setInterval = function fastWatcher(fn, delay, ...rest) {
    if (delay !== 10 * 60 * 1000) return originalSetInterval.call(this, fn, delay, ...rest);
    const tick = (...args) => (watcherPaused ? undefined : fn(...args));
    return originalSetInterval.call(this, tick, params.watcherIntervalMs, ...rest);
  };
}

const axios = require('axios');
const { Client } = require('@amityco/ts-sdk');

function plainHeaders(headers) {
  if (!headers) return {};
  const raw = typeof headers.toJSON === 'function' ? headers.toJSON() : headers;
  const out = {};
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined || value === null || typeof value === 'object') continue;
    out[key] = String(value);
  }
  return out;
}

function parseBody(data) {
  if (typeof data !== 'string') return data ?? null;
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

function instrument(client) {
  const instance = client.http;
  const base = axios.getAdapter(instance.defaults.adapter);
  instance.defaults.adapter = async config => {
    const url = instance.getUri(config);
    const entry = {
      at: elapsed(),
      method: String(config.method).toUpperCase(),
      url,
      headers: plainHeaders(config.headers),
      body: parseBody(config.data),
    };
    result.requests.push(entry);
    try {
      const response = await base(config);
      // The SDK's response interceptor builds `new Request(response.request.url, ...)`.
      if (response.request && response.request.url === undefined) {
        try {
          response.request.url = url;
        } catch {
          /* read-only: leave it */
        }
      }
      entry.status = response.status;
      entry.response = parseBody(response.data);
      entry.responseHeaders = plainHeaders(response.headers);
      return response;
    } catch (error) {
      entry.status = error.response ? error.response.status : null;
      entry.response = error.response ? parseBody(error.response.data) : null;
      entry.error = String(error.message || error);
      throw error;
    }
  };
}

function watchRealtime(client) {
  const ws = client.ws;
  if (ws) {
    for (const event of ['connect', 'connect_error', 'connect_timeout', 'error', 'disconnect', 'reconnect_attempt']) {
      ws.on(event, arg => {
        result.socketio.push({ at: elapsed(), event, detail: arg === undefined ? null : String(arg && (arg.message || arg)) });
      });
    }
  }
}

function watchMqtt(client) {
  const mqtt = client.mqtt;
  if (!mqtt) return;
  for (const event of ['connect', 'error', 'close', 'offline', 'reconnect']) {
    mqtt.on(event, arg => result.mqtt.push({ at: elapsed(), event, detail: arg === undefined ? null : String(arg && (arg.message || arg)) }));
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await sleep(25);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function describeError(error) {
  return {
    name: error && error.name,
    message: String(error && (error.message || error)),
    code: error && error.code !== undefined ? error.code : null,
  };
}

async function freshAuthToken() {
  // What the customer's server does in secure mode: ask the gateway for an auth token.
  const url = `${params.http}/api/v3/authentication/token?userId=${encodeURIComponent(params.userId)}`;
  const response = await fetch(url, { headers: { 'x-server-key': params.serverKey } });
  const body = await response.json();
  if (response.status !== 200) throw new Error(`auth token: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

function getClientState() {
  try {
    return Client.getActiveClient().sessionState;
  } catch {
    return null;
  }
}

const sessionHandler = {
  sessionWillRenewAccessToken(renewal) {
    const entry = { at: elapsed(), action: null, sessionState: getClientState() };
    result.sessionHandler.push(entry);
    watcherPaused = true; // one renewal under test: no further watcher ticks
    if (params.serverKey) {
      entry.action = 'renewWithAuthToken';
      freshAuthToken().then(
        token => renewal.renewWithAuthToken(token),
        error => {
          entry.error = String(error.message);
          renewal.unableToRetrieveAuthToken();
        },
      );
    } else {
      entry.action = 'renew';
      renewal.renew();
    }
  },
};

function createClient() {
  const client = Client.createClient(params.apiKey, params.region || 'sg', {
    apiEndpoint: { http: params.http, mqtt: params.mqtt },
    debugSession: 'gateway-e2e',
  });
  instrument(client);
  watchRealtime(client);
  return client;
}

async function login(client) {
  const loginParams = { userId: params.userId, displayName: params.displayName };
  if (params.authToken) loginParams.authToken = params.authToken;
  const ok = await Client.login(loginParams, sessionHandler);
  watchMqtt(client);
  const user = Client.getActiveUser ? Client.getActiveUser() : null;
  step('login', {
    returned: ok,
    sessionState: client.sessionState,
    userId: client.userId,
    user: user ? { _id: user._id, userId: user.userId, displayName: user.displayName } : null,
    token: client.token ? { ...client.token } : null,
  });
  return ok;
}

async function probe(client, label) {
  if (!params.probePath) return;
  try {
    const response = await client.http.get(params.probePath);
    step(`probe:${label}`, { status: response.status, body: response.data });
  } catch (error) {
    step(`probe:${label}`, { error: describeError(error) });
  }
}

async function settle(client) {
  // Give socket.io and MQTT (started without awaiting by login) a bounded chance to connect.
  const ms = params.settleMs ?? 1500;
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const mqttDone = !client.mqtt || client.mqtt.connected;
    const wsDone = !client.ws || client.ws.connected;
    if (params.waitRealtime && mqttDone && wsDone) break;
    await sleep(50);
  }
  step('realtime', {
    socketioConnected: Boolean(client.ws && client.ws.connected),
    mqttConnected: Boolean(client.mqtt && client.mqtt.connected),
  });
  // What the SDK does once connected (MQTT topic subscriptions) needs a moment too.
  if (params.afterRealtimeMs) await sleep(params.afterRealtimeMs);
}

const scenarios = {
  async login(client) {
    await login(client);
    await probe(client, 'after-login');
    await settle(client);
    step('logout', { returned: await Client.logout() });
  },

  async login_refused(client) {
    try {
      const ok = await login(client);
      step('login-returned', { returned: ok });
    } catch (error) {
      step('login-threw', describeError(error));
    }
    step('state', { sessionState: client.sessionState, token: client.token ?? null });
  },

  async renew(client) {
    await login(client);
    const before = client.token.accessToken;
    if (params.renewAfterMs) {
      step('waiting-before-renewal', { ms: params.renewAfterMs, expiresAt: client.token.expiresAt });
      await sleep(params.renewAfterMs);
    }
    const renewal = Client.renewal();
    if (params.serverKey) renewal.renewWithAuthToken(await freshAuthToken());
    else renewal.renew();
    await waitFor(() => client.token && client.token.accessToken !== before, 8000, 'a renewed token');
    step('renewed', { token: { ...client.token }, sessionState: client.sessionState });
    await probe(client, 'after-renewal');
    step('logout', { returned: await Client.logout() });
  },

  async renew_on_expiry(client) {
    await login(client);
    const before = client.token.accessToken;
    step('waiting-for-watcher', { expiresAt: client.token.expiresAt });
    await waitFor(() => result.sessionHandler.length > 0, params.renewWaitMs ?? 15000,
      'the session handler to be asked to renew');
    await waitFor(() => client.token && client.token.accessToken !== before
      && client.sessionState === 'established', 10000, 'a renewed token');
    step('renewed', { token: { ...client.token }, sessionState: client.sessionState });
    await probe(client, 'after-renewal');
    step('logout', { returned: await Client.logout() });
  },

  async secure_logout(client) {
    await login(client);
    const token = client.token.accessToken;
    await probe(client, 'before-logout');
    const returned = await Client.secureLogout();
    step('secureLogout', { returned, revokedToken: token, sessionState: client.sessionState });
  },
};

async function main() {
  const scenario = scenarios[result.scenario];
  if (!scenario) throw new Error(`unknown scenario ${JSON.stringify(result.scenario)}`);
  const client = createClient();
  step('createClient', { version: client.version });
  await scenario(client);
}

process.on('unhandledRejection', error => {
  step('unhandledRejection', describeError(error));
});
process.on('uncaughtException', error => {
  step('uncaughtException', { ...describeError(error), stack: String(error && error.stack).split('\n').slice(0, 6) });
});

const timeoutMs = params.timeoutMs ?? 20000;
const timer = setTimeout(() => {
  result.error = { name: 'Timeout', message: `scenario did not finish within ${timeoutMs} ms`, code: null };
  finish(3);
}, timeoutMs);

main().then(
  () => {
    clearTimeout(timer);
    result.ok = true;
    finish(0);
  },
  error => {
    clearTimeout(timer);
    result.error = describeError(error);
    result.errorStack = error && error.stack ? String(error.stack) : null;
    finish(1);
  },
);
