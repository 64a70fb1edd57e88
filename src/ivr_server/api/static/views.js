/* ivr-server live view: the summary, the top bar's server line, and the Links, Ports, Routing
 * points, Sessions and Rates cards. app.js calls window.ivrViews(window.ivrDom, panels) and gets
 * the renderers back; each draws its card from its part of GET /api/v1/state (the rates from
 * GET /api/v1/rates).
 */
"use strict";

window.ivrViews = ({ h, s, $, replace, pretty, norm, fmtInt, fmtRate, toDate, age, shortConn, portState }, panels) => {
  const RATE_SERIES = [
    ["calls_started", "Calls started"],
    ["calls_completed", "Calls completed"],
    ["documents_in", "Documents in"],
    ["documents_out", "Documents out"],
    ["errors", "Errors"],
  ];

  // ------------------------------------------------------------------ rendering: summary

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
    const down =
      rp.router_live === false
        ? h("span", { class: "badge bad", title: "Not heard of lately (external) or failing (webhook): Network calls get EndCall FeatureNotSupported" }, "router down")
        : null;
    return [h("span", { class: `badge ${tone}` }, label), down, rp.url ? h("span", { class: "mono", title: rp.url }, rp.url) : null];
  }

  /** The Network-mode calls at a routing DN, with their state (queued, waiting, routed...). */
  function networkCalls(rp, id) {
    const calls = rp.network_calls || [];
    if (!calls.length) return null;
    return h(
      "ul",
      { class: "waiting network", "data-testid": `rp-network-${id}` },
      calls.map((c) => {
        const since = toDate(c.since);
        return h(
          "li",
          { title: `Network call · ConnID ${c.conn_id ?? "–"} · CallId ${c.call_id}`, "data-call-id": c.call_id },
          c.call_id,
          h("span", { class: "sub" }, pretty(c.state) + (c.treatment ? ` · ${c.treatment}` : "")),
          since ? h("span", { class: "sub" }, age(since)) : null,
        );
      }),
    );
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
            (rp.network_calls || []).length
              ? [h("span", { "data-testid": `rp-network-count-${id}` }, ` ${(rp.network_calls || []).length}`), h("small", null, "network")]
              : null,
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
        networkCalls(rp, id),
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

  return { renderSummary, renderServerInfo, renderSwitches, renderIvrs, renderRoutingPoints, renderSessions, renderRates };
};
