/* ivr-server live view.
 *
 * Plain JavaScript, no build step, no dependencies. Reads GET /api/v1/state and GET /api/v1/rates
 * and listens to the WebSocket /api/v1/events: every switch event schedules a re-read of the
 * state (at most one request in flight, at most one every STATE_MIN_INTERVAL ms), the rates are
 * re-read at the server's sampling period (5 s by default), and the WebSocket reconnects with a
 * growing back-off when it drops. Everything the server sends is written with textContent (never innerHTML): user data
 * comes from IVRs and is untrusted.
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
  const MAX_CALL_ROWS = 300; // rows drawn in the calls table
  const SVG_NS = "http://www.w3.org/2000/svg";
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

  function setToken(token) {
    TOKEN = token || null;
    try {
      if (TOKEN) sessionStorage.setItem(TOKEN_KEY, TOKEN);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* kept in this page only */
    }
  }

  const RATE_SERIES = [
    ["calls_started", "Calls started"],
    ["calls_completed", "Calls completed"],
    ["documents_in", "Documents in"],
    ["documents_out", "Documents out"],
    ["errors", "Errors"],
  ];

  // ------------------------------------------------------------------ DOM helpers

  /** h("div", {class: "x", "data-testid": "y"}, child, [children], "text") */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  const $ = (id) => document.getElementById(id);

  function replace(id, ...children) {
    const el = $(id);
    el.replaceChildren();
    append(el, children);
  }

  // ------------------------------------------------------------------ formatting

  const pad2 = (n) => String(n).padStart(2, "0");

  function clock(date) {
    return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
  }

  /** "ROUTING" / "TREAT_STARTING" / "NotReady" / "not_ready" -> "Routing" / "Treat starting" / "Not ready" */
  function pretty(text) {
    if (text === null || text === undefined || text === "") return "";
    const words = String(text)
      .replace(/([a-z])([A-Z])/g, "$1 $2")
      .replace(/[_-]+/g, " ")
      .trim()
      .toLowerCase();
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  /** Lower-case letters only: "NotReady", "NOT_READY", "not-ready" -> "notready". */
  const norm = (text) => String(text ?? "").toLowerCase().replace(/[^a-z]/g, "");

  function fmtInt(n) {
    return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
  }

  function fmtRate(v) {
    if (!Number.isFinite(v)) return "–";
    if (v === 0) return "0";
    if (Math.abs(v) < 0.1) return v.toFixed(2);
    if (Math.abs(v) < 10) return v.toFixed(1);
    return Math.round(v).toLocaleString("en-US");
  }

  /** An instant as seconds or milliseconds since the epoch, or an ISO 8601 string -> Date. */
  function toDate(value) {
    if (value === null || value === undefined || value === "") return null;
    if (typeof value === "number") return new Date(value > 1e12 ? value : value * 1000);
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  let skew = 0; // server clock minus browser clock, ms (from state.server.time)

  function age(date) {
    if (!date) return "";
    const secs = Math.max(0, Math.round((Date.now() + skew - date.getTime()) / 1000));
    if (secs < 60) return `${secs}s`;
    const mins = Math.floor(secs / 60);
    if (mins < 60) return `${mins}m ${pad2(secs % 60)}s`;
    const hours = Math.floor(mins / 60);
    if (hours < 48) return `${hours}h ${pad2(mins % 60)}m`;
    return `${Math.floor(hours / 24)}d ${hours % 24}h`;
  }

  const shortConn = (conn) => (conn ? String(conn).replace(/^0+(?=.{8})/, "") : "");

  // ------------------------------------------------------------------ state classification

  const NOT_READY_AGENT = new Set(["notready", "loggedin", "acw", "aftercallwork", "walkaway"]);

  /** The tile state of a port: in-call, unavailable, ready, not-ready or idle. */
  function portState(ivr, port) {
    if (port.call) return "in-call";
    if (ivr.enabled === false || port.available === false) return "unavailable";
    const agent = port.agent ? norm(port.agent.state) : "";
    if (agent === "ready") return "ready";
    if (NOT_READY_AGENT.has(agent)) return "not-ready";
    return "idle";
  }

  /** The colour of a call state's pill. */
  function callTone(state) {
    const st = norm(state);
    if (st === "detached") return "unavailable";
    if (st.startsWith("rout") || st.startsWith("treat") || st === "cancelling") return "not-ready";
    if (st === "dialing" || st.startsWith("await") || st === "alerting") return "idle";
    return "in-call";
  }

  // ------------------------------------------------------------------ rendering: agents, statistics (panels.js)

  const panels = window.ivrPanels({ h, replace, $, pretty, norm, fmtInt });

  // ------------------------------------------------------------------ rendering: summary

  const lastRendered = new Map();

  /** Run render(data) only when data changed since the last time this section was drawn. */
  function section(name, data, render) {
    const key = JSON.stringify(data ?? null);
    if (lastRendered.get(name) === key) return;
    lastRendered.set(name, key);
    render(data);
  }

  function renderSummary(state) {
    const ivrs = state.ivrs || [];
    const ports = ivrs.flatMap((ivr) => (ivr.ports || []).map((p) => portState(ivr, p)));
    const inCall = ports.filter((st) => st === "in-call").length;
    const agents = panels.agentCounts(state); // on every DN of every switch, not only on ports
    const waiting = (state.routing_points || []).reduce((n, rp) => n + (rp.waiting || []).length, 0);
    const switches = state.switches || [];
    const up = switches.filter((sw) => sw.link_up).length;

    replace("kpi-calls", fmtInt((state.calls || []).length));
    replace("kpi-waiting", fmtInt(waiting));
    replace("kpi-ports", fmtInt(inCall), h("small", null, ` / ${fmtInt(ports.length)}`));
    replace("kpi-agents", fmtInt(agents.ready), h("small", null, ` / ${fmtInt(agents.loggedIn)}`));
    replace("kpi-sessions", fmtInt((state.sessions || []).length));
    replace("kpi-links", fmtInt(up), h("small", null, ` / ${fmtInt(switches.length)}`));
    $("kpi-links").parentElement.dataset.state = up < switches.length ? "unavailable" : "ready";
  }

  function renderServerInfo(server) {
    server = server || {};
    const parts = [];
    if (server.version) parts.push(`v${server.version}`);
    if (Array.isArray(server.listen) && server.listen.length) parts.push(`IVRs on ${server.listen.join(", ")}`);
    const started = toDate(server.started_at);
    if (started) parts.push(`up ${age(started)}`);
    $("server-info").textContent = parts.join(" · ");
    $("server-info").title = server.version_string ? `LoginResp IServerVer: ${server.version_string}` : "";
    const flow = norm(server.flow_control);
    $("flow-control").hidden = !(flow === "on" || flow === "true");
  }

  // ------------------------------------------------------------------ rendering: links

  function renderSwitches(switches) {
    if (!switches || switches.length === 0) {
      replace("switches", h("p", { class: "empty" }, "No switches configured."));
      return;
    }
    const rows = switches.map((sw) => {
      const dns = sw.dns || [];
      const registered = dns.filter((dn) => dn.registered).length;
      const inService = dns.filter((dn) => dn.in_service !== false).length;
      const up = Boolean(sw.link_up);
      return h(
        "div",
        { class: "row", "data-testid": `switch-${sw.name}`, "data-link": up ? "up" : "down" },
        h(
          "div",
          { class: "row-head" },
          h("span", { class: "row-title", title: sw.name }, sw.name),
          h("span", { class: "pill", "data-state": up ? "ready" : "unavailable" }, up ? "Link up" : "Link down"),
        ),
        h(
          "div",
          { class: "row-meta" },
          sw.tserver ? h("span", null, "T-Server ", h("b", null, sw.tserver)) : null,
          h("span", null, `${fmtInt(dns.length)} DNs`),
          h("span", null, `${fmtInt(registered)} registered`),
          inService < dns.length ? h("span", null, `${fmtInt(dns.length - inService)} out of service`) : null,
        ),
      );
    });
    replace("switches", h("div", { class: "rows" }, rows));
  }

  // ------------------------------------------------------------------ rendering: IVRs and ports

  function portTile(ivr, port) {
    const state = portState(ivr, port);
    const call = port.call;
    const agent = port.agent;
    let main;
    if (call) main = pretty(call.state) || "In call";
    else if (state === "unavailable") main = ivr.enabled === false ? "IVR disabled" : "Unavailable";
    else main = "Idle";
    const agentLine = agent
      ? `${pretty(agent.state) || "Agent"}${agent.agent_id ? ` · ${agent.agent_id}` : ""}`
      : "No agent";

    const tip = [`Port ${port.number} of ${ivr.name}`, `DN ${port.dn ?? "–"}${port.switch ? ` on ${port.switch}` : ""}`];
    if (call) tip.push(`Call ${call.call_id} · ${pretty(call.state)}${call.conn_id ? ` · ConnID ${call.conn_id}` : ""}`);
    if (agent) {
      tip.push(
        `Agent ${agent.agent_id ?? ""} ${pretty(agent.state)}` +
          `${agent.queue ? ` · queue ${agent.queue}` : ""}${agent.work_mode ? ` · ${pretty(agent.work_mode)}` : ""}`,
      );
    }
    if (port.available === false) tip.push("Port unavailable");

    return h(
      "div",
      {
        class: "port",
        role: "listitem",
        title: tip.join("\n"),
        "aria-label": tip.join(", "),
        "data-testid": `port-${ivr.name}-${port.number}`,
        "data-state": state,
        "data-call-id": call ? call.call_id : null,
        "data-agent-state": agent ? agent.state : null,
      },
      h(
        "div",
        { class: "port-top" },
        h("span", { class: "port-num" }, port.number),
        h("span", { class: "port-dn" }, port.dn ?? ""),
      ),
      h("div", { class: "port-line main" }, main),
      h("div", { class: "port-line" }, agentLine),
    );
  }

  function renderIvrs(ivrs) {
    if (!ivrs || ivrs.length === 0) {
      replace("ivrs", h("p", { class: "empty" }, "No IVRs configured."));
      return;
    }
    const blocks = ivrs.map((ivr) => {
      const ports = ivr.ports || [];
      const states = ports.map((p) => portState(ivr, p));
      const count = (st) => states.filter((x) => x === st).length;
      const summary = [
        `${count("in-call")} in call`,
        `${count("ready")} ready`,
        count("not-ready") ? `${count("not-ready")} not ready` : null,
        count("unavailable") ? `${count("unavailable")} unavailable` : null,
        `${ports.length} ports`,
      ].filter(Boolean);
      return h(
        "div",
        { class: "ivr", "data-testid": `ivr-${ivr.name}` },
        h(
          "div",
          { class: "ivr-head" },
          h("h3", null, ivr.name),
          ivr.enabled === false
            ? h("span", { class: "badge bad" }, "disabled")
            : h("span", { class: "badge good" }, "enabled"),
          ivr.legacy_mode ? h("span", { class: "badge", title: "The server logs the ports' agents in itself" }, "legacy mode") : null,
          h("span", { class: "ivr-summary" }, summary.join(" · ")),
        ),
        ports.length
          ? h("div", { class: "ports", role: "list" }, ports.map((p) => portTile(ivr, p)))
          : h("p", { class: "empty" }, "No ports."),
      );
    });
    replace("ivrs", blocks);
  }

  // ------------------------------------------------------------------ rendering: calls

  function udataValue(item) {
    if (Array.isArray(item.list)) {
      return item.list
        .map((sub) => (Array.isArray(sub.list) ? `${sub.name}=[${sub.list.length}]` : `${sub.name}=${sub.value ?? ""}`))
        .join(", ");
    }
    return item.value === null || item.value === undefined ? "" : String(item.value);
  }

  function udataChips(items) {
    if (!items || items.length === 0) return h("span", { class: "muted" }, "–");
    return h(
      "div",
      { class: "udata" },
      items.map((item) => {
        const isList = Array.isArray(item.list);
        const value = udataValue(item);
        const shown = isList && value === "" ? "(empty list)" : value;
        return h(
          "span",
          {
            class: isList ? "chip list" : "chip",
            title: `${item.name}${item.type ? ` (${item.type})` : ""} = ${value}`,
            "data-key": item.name,
            "data-value": value,
          },
          h("span", { class: "k" }, item.name),
          h("span", { class: "v" }, shown === "" ? "\u00a0" : shown),
        );
      }),
    );
  }

  function portKey(call) {
    const n = Number.parseInt(call.port, 10);
    return [String(call.ivr ?? ""), Number.isNaN(n) ? Infinity : n, String(call.port ?? ""), String(call.call_id)];
  }

  function compareCalls(a, b) {
    const ka = portKey(a);
    const kb = portKey(b);
    for (let i = 0; i < ka.length; i++) {
      if (ka[i] < kb[i]) return -1;
      if (ka[i] > kb[i]) return 1;
    }
    return 0;
  }

  function renderCalls(calls) {
    calls = calls || [];
    $("calls-count").textContent = calls.length ? String(calls.length) : "";
    if (calls.length === 0) {
      replace("calls", h("p", { class: "empty", "data-testid": "calls-empty" }, "No active calls."));
      return;
    }
    const sorted = [...calls].sort(compareCalls);
    const rows = sorted.slice(0, MAX_CALL_ROWS).map((call) =>
      h(
        "tr",
        { "data-testid": `call-${call.call_id}`, "data-call-id": call.call_id, "data-state": callTone(call.state) },
        h("td", { class: "nowrap" }, h("span", { class: "mono callid", title: call.call_id }, call.call_id)),
        h(
          "td",
          { class: "nowrap" },
          `${call.ivr ?? ""} · ${call.port ?? ""}`,
          h("span", { class: "sub" }, `DN ${call.dn ?? "–"}${call.switch ? ` · ${call.switch}` : ""}`),
        ),
        h("td", { class: "nowrap" }, h("span", { class: "pill", "data-state": callTone(call.state) }, pretty(call.state))),
        h(
          "td",
          { class: "nowrap" },
          h("span", { class: "mono", title: call.conn_id ?? "" }, shortConn(call.conn_id) || "–"),
          call.last_event ? h("span", { class: "sub" }, call.last_event) : null,
        ),
        h(
          "td",
          { class: "nowrap" },
          call.ani ? h("span", { class: "mono" }, call.ani) : h("span", { class: "muted" }, "–"),
          h("span", { class: "sub" }, call.dnis ? `to ${call.dnis}` : ""),
        ),
        h("td", { class: "nowrap" }, call.route_dn ? h("span", { class: "mono" }, call.route_dn) : h("span", { class: "muted" }, "–")),
        h(
          "td",
          { "data-testid": `udata-${call.call_id}` },
          call.user_data === null ? h("span", { class: "muted", title: "Sign in to see user data" }, "hidden") : udataChips(call.user_data),
        ),
        TOKEN ? h("td", { class: "nowrap" }, endCallButton(call)) : null,
      ),
    );
    const table = h(
      "table",
      null,
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["CallId", "IVR · port", "State", "ConnID", "ANI / DNIS", "Route DN", "User data", TOKEN ? "" : null]
            .filter((t) => t !== null)
            .map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      h("tbody", null, rows),
    );
    const more = calls.length > MAX_CALL_ROWS ? h("p", { class: "more" }, `and ${fmtInt(calls.length - MAX_CALL_ROWS)} more`) : null;
    replace("calls", table, more);
  }

  /** "End call": ends the call on the server's side (the IVR gets EndCall Timeout, the port is
   *  free), addressed by its port, and only if the port still has this call. */
  function endCallButton(call) {
    const button = h(
      "button",
      {
        type: "button",
        class: "btn small danger",
        "data-testid": `end-call-${call.call_id}`,
        title: `End this call on the server (the IVR gets EndCall Timeout) and free port ${call.port} of ${call.ivr}`,
      },
      "End call",
    );
    button.addEventListener("click", () => endCall(call, button));
    return button;
  }

  async function endCall(call, button) {
    const shown = String(call.call_id).length > 60 ? `${String(call.call_id).slice(0, 60)}…` : call.call_id;
    if (!window.confirm(`End call ${shown} on port ${call.port} of ${call.ivr}?\nIts IVR gets EndCall (Timeout) and the port is freed.`)) return;
    button.disabled = true;
    try {
      const path = `/ivrs/${encodeURIComponent(call.ivr)}/ports/${encodeURIComponent(call.port)}/end-call`;
      const response = await fetch(API + path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ call_id: call.call_id }),
        cache: "no-store",
      });
      if (!response.ok) {
        let reason = `HTTP ${response.status}`;
        try {
          reason = (await response.json()).error || reason;
        } catch {
          /* not JSON */
        }
        if (response.status === 401) dropToken("The API token was refused");
        showBanner(`Cannot end call ${shown}: ${reason}`);
      }
    } catch (err) {
      showBanner(`Cannot end call ${shown}: ${err.message}`);
    } finally {
      button.disabled = false;
      requestState();
    }
  }

  // ------------------------------------------------------------------ rendering: routing points

  const ROUTERS = {
    builtin: ["Built-in rules", "good"],
    external: ["External router (API)", "info"],
    webhook: ["Webhook", "info"],
  };

  function routerLabel(rp) {
    const mode = rp.router === null || rp.router === undefined ? "none" : String(rp.router);
    if (mode === "none" || mode === "") {
      return h("span", { class: "badge warn", title: "Calls get the default route when the Router Timeout expires" }, "No router: default route on timeout");
    }
    const [label, tone] = ROUTERS[mode] || [pretty(mode), "info"];
    return [h("span", { class: `badge ${tone}` }, label), rp.url ? h("span", { class: "mono", title: rp.url }, rp.url) : null];
  }

  function renderRoutingPoints(points) {
    if (!points || points.length === 0) {
      replace("routing-points", h("p", { class: "empty" }, "No routing points."));
      return;
    }
    const rows = points.map((rp) => {
      const waiting = rp.waiting || [];
      const id = `${rp.switch}-${rp.dn}`;
      return h(
        "div",
        { class: "row rp", "data-testid": `rp-${id}`, "data-waiting": waiting.length },
        h(
          "div",
          { class: "row-head" },
          h(
            "div",
            { class: "row-title" },
            h("span", { class: "mono" }, rp.dn),
            h("span", { class: "muted small" }, ` · ${rp.switch}`),
          ),
          h(
            "span",
            { class: "rp-count" },
            h("span", { "data-testid": `rp-waiting-${id}` }, String(waiting.length)),
            h("small", null, "waiting"),
          ),
        ),
        h(
          "div",
          { class: "row-meta" },
          routerLabel(rp),
        ),
        waiting.length
          ? h(
              "ul",
              { class: "waiting" },
              waiting.map((w) => {
                const since = toDate(w.since ?? w.waiting_since ?? w.queued_at);
                const label = w.call_id ?? shortConn(w.conn_id);
                return h(
                  "li",
                  { title: `ConnID ${w.conn_id ?? "–"}${w.call_id ? ` · CallId ${w.call_id}` : ""}`, "data-conn-id": w.conn_id },
                  label,
                  since ? h("span", { class: "sub" }, age(since)) : null,
                );
              }),
            )
          : null,
      );
    });
    replace("routing-points", h("div", { class: "rows" }, rows));
  }

  // ------------------------------------------------------------------ rendering: sessions

  function monitorText(monitor) {
    if (monitor === null || monitor === undefined || monitor === false || monitor === "") return "";
    if (Array.isArray(monitor)) return monitor.join(", ");
    if (typeof monitor === "object") {
      return Object.entries(monitor)
        .filter(([, v]) => v)
        .map(([k]) => k)
        .join(", ");
    }
    return monitor === true ? "" : String(monitor);
  }

  function renderSessions(sessions) {
    sessions = sessions || [];
    $("sessions-count").textContent = sessions.length ? String(sessions.length) : "";
    if (sessions.length === 0) {
      replace("sessions", h("p", { class: "empty" }, "No IVR connected."));
      return;
    }
    const rows = sessions.map((sn) => {
      const opened = toDate(sn.opened_at);
      const monitor = monitorText(sn.monitor);
      return h(
        "div",
        { class: "row", "data-testid": `session-${sn.id}`, "data-client": sn.client_name ?? "" },
        h(
          "div",
          { class: "row-head" },
          h("span", { class: "row-title" }, sn.client_name || h("span", { class: "muted" }, "not logged in")),
          sn.version ? h("span", { class: "badge info" }, `v${sn.version}`) : null,
        ),
        h(
          "div",
          { class: "row-meta" },
          h("span", { class: "mono" }, sn.peer ?? ""),
          opened ? h("span", { title: opened.toLocaleString() }, `for ${age(opened)}`) : null,
        ),
        h(
          "div",
          { class: "row-meta" },
          h("span", null, `${fmtInt(sn.documents_in)} in · ${fmtInt(sn.documents_out)} out`),
          sn.monitor === true ? h("span", { class: "badge info" }, "monitoring") : monitor ? h("span", null, `monitors ${monitor}`) : null,
        ),
      );
    });
    replace("sessions", h("div", { class: "rows" }, rows));
  }

  // ------------------------------------------------------------------ rendering: rates

  /** Accepts {series: {name: [v...]}} , {name: [v...]}, or {samples: [{name: v, ...}]};
   *  a value may also be [t, v] or {v|value}. Returns {interval, series: Map(name -> numbers)}. */
  function parseRates(json) {
    const series = new Map();
    if (!json || typeof json !== "object") return { interval: 5, series };
    const interval = Number(json.interval ?? json.interval_s ?? json.step ?? json.sample_interval ?? 5) || 5;
    const num = (v) => {
      if (Array.isArray(v)) v = v[v.length - 1];
      else if (v && typeof v === "object") v = v.v ?? v.value ?? v.rate;
      const n = Number(v);
      return Number.isFinite(n) ? n : 0;
    };
    if (Array.isArray(json.samples)) {
      for (const sample of json.samples) {
        for (const [key, value] of Object.entries(sample || {})) {
          if (["t", "time", "ts", "timestamp", "at"].includes(key)) continue;
          if (!series.has(key)) series.set(key, []);
          series.get(key).push(num(value));
        }
      }
      return { interval, series };
    }
    const source = json.series && typeof json.series === "object" ? json.series : json;
    for (const [key, value] of Object.entries(source)) {
      if (Array.isArray(value)) series.set(key, value.map(num));
    }
    return { interval, series };
  }

  function sparkline(values, color) {
    const W = 240;
    const H = 44;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    svg.style.setProperty("--c", color);
    svg.append(s("line", { class: "base", x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }));
    if (values.length < 2) return svg;
    const max = Math.max(...values, 1e-9);
    const step = W / (values.length - 1);
    const pts = values.map((v, i) => [i * step, H - 1 - (Math.max(0, v) / max) * (H - 4)]);
    const line = pts.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
    svg.append(s("path", { class: "area", d: `${line}L${W},${H}L0,${H}Z` }));
    svg.append(s("path", { class: "line", d: line }));
    return svg;
  }

  function renderRates(json) {
    const { interval, series } = parseRates(json);
    const known = new Map(RATE_SERIES);
    const keys = [...RATE_SERIES.map(([k]) => k).filter((k) => series.has(k)), ...[...series.keys()].filter((k) => !known.has(k))];
    if (keys.length === 0) {
      replace("rates", h("p", { class: "empty" }, "No rates yet."));
      return;
    }
    const colors = ["--chart-1", "--chart-2", "--chart-3", "--chart-4", "--chart-5"];
    const cards = keys.map((key, i) => {
      const values = series.get(key);
      const last = values.length ? values[values.length - 1] : NaN;
      const peak = values.length ? Math.max(...values) : NaN;
      const minutes = Math.round((values.length * interval) / 60);
      const color = key === "errors" ? "var(--chart-5)" : `var(${colors[i % 4]})`;
      return h(
        "div",
        {
          class: "spark",
          "data-testid": `rate-${key}`,
          "data-value": Number.isFinite(last) ? last : "",
          "data-samples": values.length,
        },
        h(
          "div",
          { class: "spark-head" },
          h("span", { class: "spark-label" }, known.get(key) || pretty(key)),
          h("span", { class: "spark-value" }, fmtRate(last), h("small", null, "/s")),
        ),
        h(
          "div",
          { class: "spark-chart" },
          sparkline(values, color),
          h(
            "div",
            { class: "spark-foot" },
            h("span", null, minutes >= 1 ? `−${minutes} min` : values.length > 1 ? `−${Math.round(values.length * interval)} s` : "collecting…"),
            h("span", null, `peak ${fmtRate(peak)}`),
          ),
        ),
      );
    });
    replace("rates", cards);
  }

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
    if (response.status === 401 && token && token === TOKEN) {
      dropToken("The API token was refused"); // a stale or mistyped token: carry on without it
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

  function showBanner(text) {
    const banner = $("banner");
    banner.textContent = text || "";
    banner.hidden = !text;
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
      if (serverTime) skew = serverTime.getTime() - Date.now();
      render(state);
      stateOk = true;
      showBanner("");
      $("updated").textContent = `Updated ${clock(new Date())}`;
    } catch (err) {
      stateOk = false;
      showBanner(`Cannot read the server's state: ${err.message}. Retrying…`);
    } finally {
      stateInFlight = false;
      setLive();
      if (statePending) requestState();
    }
  }

  function render(state) {
    $("calls-note").hidden = state.redacted !== true;
    section("signed-in", Boolean(TOKEN), () => lastRendered.delete("calls"));
    section("summary", [state.ivrs, state.calls, state.sessions, state.routing_points, state.switches], () => renderSummary(state));
    renderServerInfo(state.server); // cheap, and the uptime moves on
    section("switches", state.switches, renderSwitches);
    section("ivrs", state.ivrs, renderIvrs);
    section("calls", state.calls, renderCalls);
    section("routing_points", state.routing_points, renderRoutingPoints);
    section("sessions", state.sessions, renderSessions);
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
      renderRates(json);
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
      lastRendered.delete("sessions");
      lastRendered.delete("routing_points");
      requestState();
    }, 30000);
    connect();
  }

  start();
})();
