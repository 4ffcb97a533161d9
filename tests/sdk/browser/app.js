'use strict';
/*
 * Logs in with the published SDK's browser build, from this page's origin, against the
 * gateway named in the query string (tests/sdk/test_browser_sdk.py drives it):
 *
 *   /?apiKey=&http=<gateway URL>&mqtt=<gateway ws URL>/mqtt&userId=&displayName=
 *
 * The outcome goes to window.__result (`done` once settled) and onto the page.
 */
(function () {
  const query = new URLSearchParams(window.location.search);
  const params = Object.fromEntries(query.entries());
  const result = { done: false, ok: false, origin: window.location.origin, steps: [], error: null };
  window.__result = result;
  const started = Date.now();
  const step = (name, data) => result.steps.push({ at: Date.now() - started, name, data: data ?? null });

  function describe(error) {
    if (!error) return null;
    return {
      name: String(error.name || ''),
      message: String(error.message || error),
      code: error.code === undefined ? null : String(error.code),
      status: error.response ? error.response.status : null,
    };
  }

  function show() {
    const status = document.getElementById('status');
    status.textContent = result.ok ? 'logged in' : (result.done ? 'login failed' : 'running…');
    status.className = result.ok ? 'ok' : (result.done ? 'failed' : '');
    const shown = JSON.parse(JSON.stringify(result));
    if (shown.token && shown.token.accessToken) {
      shown.token.accessToken = `${shown.token.accessToken.slice(0, 16)}…`;
    }
    document.getElementById('result').textContent = JSON.stringify(shown, null, 2);
  }

  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

  const sessionHandler = {
    sessionWillRenewAccessToken(renewal) {
      step('sessionWillRenewAccessToken');
      renewal.renew();
    },
  };

  async function main() {
    document.getElementById('origin').textContent = window.location.origin;
    document.getElementById('gateway').textContent = params.http;
    if (!window.Amity || !window.Amity.Client) throw new Error('the SDK bundle did not load');
    const { Client } = window.Amity;
    const client = Client.createClient(params.apiKey, 'sg', {
      apiEndpoint: { http: params.http, mqtt: params.mqtt },
    });
    step('createClient', { version: client.version });
    const returned = await Client.login(
      { userId: params.userId, displayName: params.displayName }, sessionHandler);
    const user = Client.getActiveUser ? Client.getActiveUser() : null;
    result.login = returned;
    result.sessionState = client.sessionState;
    result.token = client.token ? { ...client.token } : null;
    result.user = user ? { _id: user._id, userId: user.userId, path: user.path } : null; // all the SDK keeps
    step('login', { returned, sessionState: client.sessionState });
    // The SDK itself fetches the chat settings during login; read them once more here, so
    // the page proves it can read a proxied answer cross-origin with the access token.
    const settings = await client.http.get('/api/v3/network-settings/chat');
    result.chatSettings = { status: settings.status, data: settings.data };
    step('chatSettings', { status: settings.status });
    result.ok = returned === true && client.sessionState === 'established';
    // Login starts socket.io and MQTT (WebSockets to the gateway) without awaiting them:
    // give them a bounded moment, so the test sees where they went.
    const deadline = Date.now() + Number(params.realtimeMs || 3000);
    const connected = () => Boolean(client.ws && client.ws.connected)
      && Boolean(client.mqtt && client.mqtt.connected);
    while (!connected() && Date.now() < deadline) await sleep(50);
    result.realtime = {
      socketioConnected: Boolean(client.ws && client.ws.connected),
      mqttConnected: Boolean(client.mqtt && client.mqtt.connected),
    };
    step('realtime', result.realtime);
  }

  main().then(
    () => {},
    error => {
      result.error = describe(error);
      step('error', result.error);
    },
  ).finally(() => {
    result.done = true;
    show();
  });
})();
