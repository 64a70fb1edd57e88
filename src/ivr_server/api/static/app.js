/* ivr-server live view: fetching, the event stream, the token, the theme; the page's start.
 *
 * Plain JavaScript, no build step, no dependencies, in five deferred scripts run in this order:
 * dom.js (DOM helpers, formatting, colour rules), panels.js (Agents, Statistics), views.js
 * (summary, Links, Ports, Routing points, Sessions, Rates), calls.js (Active calls, End call) and
 * this one. Reads GET /api/v1/state and GET /api/v1/rates and listens to the WebSocket
 * /api/v1/events: every switch event schedules a re-read of the state (at most one request in
 * flight, at most one every STATE_MIN_INTERVAL ms), the rates are re-read at the server's
 * sampling period (5 s by default), and the WebSocket reconnects with a growing back-off when it
 * drops. Everything the server sends is written as text (never innerHTML): user data comes from
 * IVRs and is untrusted.
 *
 * The API token: user data, caller numbers, the event stream and acting need it. The page keeps it
 * in sessionStorage (this tab only, gone when the tab closes), from the "Sign in" form or from
 * /?access_token=... (then taken out of the address bar). Without it the page shows the public
 * view the server allows ([api] public-read): the state without user data, polled every few
 * seconds, no event stream, no buttons.
 */
"use strict";

(() => {
  const API = "/api/v1";
  const STATE_MIN_INTERVAL = 300; // ms between two state requests, however many events arrive
  const RATES_INTERVAL = 5000; // ms: re-read of the rates, until the server tells its sampling period
  const POLL_LIVE = 15000; // ms: safety-net refresh while the event stream is up
  const POLL_DOWN = 3000; // ms: refresh while the event stream is down
  const MAX_EVENTS = 60; // lines kept in the event log
  const TOKEN_KEY = "ivr-server.token";

  /** The API token: sessionStorage, or ?access_token=... once (then removed from the address). */
  function initialToken() {
    const params = new URLSearchParams(location.search);
    const given = params.get("access_token");
    let token = null;
    try {
      token = sessionStorage.getItem(TOKEN_KEY);
    } catch {
      token = null; // storage may be disabled: the token lives in this page only
    }
    if (given) {
      token = given;
      params.delete("access_token");
      const query = params.toString();
      history.replaceState(null, "", location.pathname + (query ? `?${query}` : "") + location.hash);
    }
    return token || null;
  }

  let TOKEN = initialToken();
  window.ivrToken = () => TOKEN; // for ha.js (the High availability card)

  function setToken(token) {
    TOKEN = token || null;
    try {
      if (TOKEN) sessionStorage.setItem(TOKEN_KEY, TOKEN);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* kept in this page only */
    }
  }

  const { h, $, replace, clock, fmtInt, toDate, setSkew, shortConn, section, forget } = window.ivrDom;
  const panels = window.ivrPanels(window.ivrDom);
  const views = window.ivrViews(window.ivrDom, panels);
  const { renderCalls } = window.ivrCalls(window.ivrDom, { api: API, token: () => TOKEN, showBanner, dropToken, requestState });
  // (showBanner, dropToken and requestState are function declarations below: hoisted)

  // ------------------------------------------------------------------ rendering: event log

  let eventQueue = [];
  let eventTotal = 0;
  let eventFlush = null;

  function queueEvent(msg) {
    eventTotal += 1;
    const at = typeof msg.time === "number" ? new Date(msg.time * 1000) : new Date();
    eventQueue.push({ at, msg });
    if (eventQueue.length > MAX_EVENTS) eventQueue = eventQueue.slice(-MAX_EVENTS);
    if (eventFlush === null) eventFlush = setTimeout(flushEvents, 250);
  }

  function flushEvents() {
    eventFlush = null;
    const list = $("events");
    const placeholder = list.querySelector(".empty");
    if (placeholder) placeholder.remove();
    for (const { at, msg } of eventQueue) {
      const where = [msg.dn, shortConn(msg.conn_id)].filter(Boolean).join(" · ");
      const li = h(
        "li",
        { class: "fresh", title: JSON.stringify(msg, null, 1), "data-event": msg.event ?? "" },
        h("span", { class: "t" }, clock(at)),
        h("span", { class: "n" }, msg.event ?? msg.type ?? "event"),
        h("span", { class: "d" }, where),
      );
      list.prepend(li);
    }
    eventQueue = [];
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
    $("events-total").textContent = `${fmtInt(eventTotal)} received`;
  }

  // ------------------------------------------------------------------ fetching

  async function getJSON(path) {
    const headers = { Accept: "application/json" };
    const token = TOKEN;
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(API + path, { headers, cache: "no-store" });
    if (response.status === 401 && token) {
      // a stale or mistyped token: carry on without it (another request may have dropped it)
      if (token === TOKEN) dropToken("The API token was refused");
      return getJSON(path);
    }
    if (!response.ok) {
      const reason =
        response.status === 401 || response.status === 403
          ? " (reads need the API token on this server: sign in)"
          : "";
      throw new Error(`${path}: HTTP ${response.status}${reason}`);
    }
    return response.json();
  }

  let stateBanner = false; // the banner says the state cannot be read: gone once it can

  /** A message above the cards (a refused token, an End call that failed...): it stays until
   *  another replaces it, a click dismisses it, or signing in with a token. */
  function showBanner(text) {
    const banner = $("banner");
    banner.textContent = text || "";
    banner.hidden = !text;
    stateBanner = false;
  }

  let stateInFlight = false;
  let statePending = false;
  let stateTimer = null;
  let stateStarted = 0;
  let stateOk = false;

  /** Ask for a state refresh: coalesced and throttled to one request per STATE_MIN_INTERVAL. */
  function requestState() {
    statePending = true;
    if (stateInFlight || stateTimer !== null) return;
    const wait = Math.max(0, stateStarted + STATE_MIN_INTERVAL - Date.now());
    stateTimer = setTimeout(loadState, wait);
  }

  async function loadState() {
    stateTimer = null;
    if (!statePending) return;
    statePending = false;
    stateInFlight = true;
    stateStarted = Date.now();
    try {
      const state = await getJSON("/state");
      const serverTime = toDate(state.server && state.server.time);
      if (serverTime) setSkew(serverTime.getTime() - Date.now());
      render(state);
      stateOk = true;
      if (stateBanner) showBanner("");
      $("updated").textContent = `Updated ${clock(new Date())}`;
    } catch (err) {
      stateOk = false;
      showBanner(`Cannot read the server's state: ${err.message}. Retrying…`);
      stateBanner = true;
    } finally {
      stateInFlight = false;
      setLive();
      if (statePending) requestState();
    }
  }

  function render(state) {
    $("calls-note").hidden = state.redacted !== true;
    section("signed-in", Boolean(TOKEN), () => forget("calls"));
    section("summary", [state.ivrs, state.calls, state.sessions, state.routing_points, state.switches], () => views.renderSummary(state));
    views.renderServerInfo(state.server); // cheap, and the uptime moves on
    section("switches", state.switches, views.renderSwitches);
    section("ivrs", state.ivrs, views.renderIvrs);
    section("calls", state.calls, renderCalls);
    section("routing_points", state.routing_points, views.renderRoutingPoints);
    section("sessions", state.sessions, views.renderSessions);
    section("agents", panels.agentsOf(state), panels.renderAgents);
    section("stats", panels.statsShown(state.stats), panels.renderStats);
    document.body.dataset.loaded = "true";
  }

  /** Read the rates, then again after the server's sampling period (1 s to 1 min). */
  async function loadRates() {
    let next = RATES_INTERVAL;
    try {
      const json = await getJSON("/rates");
      const interval = Number(json && json.interval);
      if (Number.isFinite(interval) && interval > 0) next = Math.min(60000, Math.max(1000, interval * 1000));
      views.renderRates(json);
    } catch (err) {
      replace("rates", h("p", { class: "empty" }, `Rates unavailable: ${err.message}`));
    }
    setTimeout(loadRates, next);
  }

  // ------------------------------------------------------------------ event stream

  let socket = null;
  let socketOpen = false;
  let backoff = 500;
  let connects = 0;

  function setLive() {
    const el = $("live");
    let state;
    let text;
    if (!stateOk && document.body.dataset.loaded === "true") [state, text] = ["offline", "Server unreachable"];
    else if (!TOKEN) [state, text] = ["public", "Public view"];
    else if (socketOpen) [state, text] = ["live", "Live"];
    else if (socket === null || document.body.dataset.loaded !== "true") [state, text] = ["connecting", "Connecting…"];
    else [state, text] = ["reconnecting", "Reconnecting…"];
    el.dataset.state = state;
    el.lastElementChild.textContent = text;
    el.title = state === "public" ? "No API token: no user data and no event stream; the state is re-read every few seconds" : "";
  }

  function connect() {
    if (!TOKEN) return; // the event stream carries user data: it needs the token
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${API}/events?access_token=${encodeURIComponent(TOKEN)}`);
    socket = ws;
    ws.addEventListener("open", () => {
      socketOpen = true;
      backoff = 500;
      connects += 1;
      $("live").dataset.connects = String(connects);
      setLive();
      requestState(); // anything missed while the stream was down
    });
    ws.addEventListener("message", (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg === "object") queueEvent(msg);
      requestState();
    });
    ws.addEventListener("close", () => {
      if (socket !== ws) return;
      socketOpen = false;
      setLive();
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    });
  }

  function disconnect() {
    const ws = socket;
    socket = null;
    socketOpen = false;
    if (ws) ws.close();
  }

  // ------------------------------------------------------------------ the token

  function renderToken() {
    const button = $("token-button");
    button.textContent = TOKEN ? "Sign out" : "Sign in";
    button.dataset.signedIn = TOKEN ? "true" : "false";
    $("events-total").textContent = TOKEN ? (eventTotal ? `${fmtInt(eventTotal)} received` : "") : "sign in to see events";
    setLive();
  }

  function useToken(token) {
    disconnect();
    setToken(token);
    $("token-form").hidden = true;
    if (token) showBanner("");
    renderToken();
    backoff = 500;
    connect();
    requestState();
  }

  function dropToken(reason) {
    if (!TOKEN) return;
    useToken(null);
    showBanner(`${reason}: showing the public view. Sign in again to see user data.`);
  }

  function setupToken() {
    const form = $("token-form");
    $("token-button").addEventListener("click", () => {
      if (TOKEN) {
        useToken(null);
        return;
      }
      form.hidden = !form.hidden;
      if (!form.hidden) $("token-input").focus();
    });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("token-input").value.trim();
      $("token-input").value = "";
      if (value) useToken(value);
    });
    renderToken();
    $("banner").addEventListener("click", () => showBanner(""));
  }

  function poll() {
    requestState();
    setTimeout(poll, TOKEN && socketOpen ? POLL_LIVE : POLL_DOWN);
  }

  // ------------------------------------------------------------------ theme

  const THEME_KEY = "ivr-server.theme";

  function applyTheme(theme) {
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
  }

  function setupTheme() {
    let saved = null;
    try {
      saved = localStorage.getItem(THEME_KEY);
    } catch {
      saved = null; // storage may be disabled
    }
    applyTheme(saved);
    $("theme-toggle").addEventListener("click", () => {
      const current =
        document.documentElement.dataset.theme ||
        (window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
      const next = current === "dark" ? "light" : "dark";
      applyTheme(next);
      try {
        localStorage.setItem(THEME_KEY, next);
      } catch {
        /* not kept across reloads then */
      }
    });
  }

  // ------------------------------------------------------------------ start

  function start() {
    setupTheme();
    setupToken();
    poll();
    loadRates();
    setInterval(() => {
      // ages ("for 3m 12s") move on even when nothing else changes
      forget("sessions");
      forget("routing_points");
      requestState();
    }, 30000);
    connect();
  }

  start();
})();
