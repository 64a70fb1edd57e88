/* ivr-server live view: the Agents and Statistics cards.
 *
 * app.js calls window.ivrPanels(window.ivrDom) (dom.js: the DOM and formatting helpers) and
 * gets the renderers back. Everything the server sends is written as text (never innerHTML).
 *
 * Agents: every agent logged in on any DN of any switch (state.switches[].dns[].agent), not only
 * on IVR ports: an extension's agent (POST /api/v1/agents/{switch}/{dn}/login) is listed too.
 * Statistics: state.stats, i.e. GET /api/v1/stats: "statistics" (every configured
 * [[statistics]] entry with what a request would get now) as one table, each other list
 * (routing_points, queues, agent_groups, ivrs) as a table of its own, any plain figure as a line.
 */
"use strict";

window.ivrPanels = ({ h, replace, $, pretty, norm, fmtInt }) => {
  const MAX_AGENT_ROWS = 300; // rows drawn in the agents table

  // ---------------------------------------------------------------- agents

  /** Every logged-in agent, in switch and DN configuration order: {switch, dn, type, agent, port}
   *  where port is the IVR port on that DN ({ivr, number, call: its CallId or null}) or null. */
  function agentsOf(state) {
    const ports = new Map();
    for (const ivr of state.ivrs || []) {
      for (const port of ivr.ports || []) {
        if (port.switch && port.dn) ports.set(`${port.switch}\u0000${port.dn}`, { ivr: ivr.name, number: port.number, call: port.call?.call_id ?? null });
      }
    }
    const rows = [];
    for (const sw of state.switches || []) {
      for (const dn of sw.dns || []) {
        if (!dn.agent) continue;
        rows.push({ switch: sw.name, dn: dn.number, type: dn.type, agent: dn.agent, port: ports.get(`${sw.name}\u0000${dn.number}`) ?? null });
      }
    }
    return rows;
  }

  /** The colour of an agent's state: ready (green) or not-ready (amber). */
  const agentTone = (agent) => (norm(agent.state) === "ready" ? "ready" : "not-ready");

  /** The summary's figures: agents ready, agents logged in (every DN of every switch). */
  function agentCounts(state) {
    const agents = agentsOf(state);
    return { ready: agents.filter((row) => agentTone(row.agent) === "ready").length, loggedIn: agents.length };
  }

  function renderAgents(rows) {
    const ready = rows.filter((row) => agentTone(row.agent) === "ready").length;
    $("agents-count").textContent = rows.length ? String(rows.length) : "";
    $("agents-summary").textContent = rows.length ? `${fmtInt(ready)} ready · ${fmtInt(rows.length - ready)} not ready` : "";
    if (rows.length === 0) {
      replace("agents", h("p", { class: "empty", "data-testid": "agents-empty" }, "No agent logged in."));
      return;
    }
    const lines = rows.slice(0, MAX_AGENT_ROWS).map(({ switch: sw, dn, type, agent, port }) =>
      h(
        "tr",
        {
          "data-testid": `agent-${sw}-${dn}`,
          "data-agent-id": agent.agent_id,
          "data-agent-state": agent.state,
          "data-state": agentTone(agent),
        },
        h("td", { class: "nowrap" }, h("span", { class: "mono" }, agent.agent_id)),
        h(
          "td",
          { class: "nowrap" },
          h("span", { class: "pill", "data-state": agentTone(agent) }, pretty(agent.state)),
          port?.call ? h("span", { class: "sub", title: `Call ${port.call}` }, "port in call") : null,
        ),
        h("td", { class: "nowrap", title: agent.work_mode ?? "" }, pretty(agent.work_mode) || "–"),
        h("td", { class: "nowrap" }, agent.queue ? h("span", { class: "mono" }, agent.queue) : h("span", { class: "muted" }, "–")),
        h(
          "td",
          { class: "nowrap" },
          h("span", { class: "mono" }, dn),
          h("span", { class: "sub" }, port ? `${port.ivr} · port ${port.number}` : pretty(type)),
        ),
        h("td", { class: "nowrap" }, sw),
      ),
    );
    const head = ["Agent", "State", "Work mode", "Queue", "DN", "Switch"].map((t) => h("th", { scope: "col" }, t));
    const more = rows.length > MAX_AGENT_ROWS ? h("p", { class: "more" }, `and ${fmtInt(rows.length - MAX_AGENT_ROWS)} more`) : null;
    replace("agents", h("table", null, h("thead", null, h("tr", null, head)), h("tbody", null, lines)), more);
  }

  // ---------------------------------------------------------------- statistics

  const GROUP_TITLES = { routing_points: "Routing points", queues: "Queues", agent_groups: "Agent groups", ivrs: "IVRs" };
  const HEADERS = { dn: "DN", ewt: "Expected wait", max_wait: "Longest wait", not_ready: "Not ready", logged_in: "Logged in" };
  const SECONDS = new Set(["ewt", "max_wait"]);
  const TIME_STATS = new Set(["expectedwaittime", "currmaxcallwaitingtime"]);
  const isRecord = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

  /** The statistics without what changes on every read and is not shown (computed_at), so that
   *  the card is redrawn only when a figure changes. */
  function statsShown(stats) {
    if (!isRecord(stats) || !Array.isArray(stats.statistics)) return stats ?? null;
    return { ...stats, statistics: stats.statistics.map((item) => (isRecord(item) ? { ...item, computed_at: undefined } : item)) };
  }

  function fmtSeconds(v) {
    if (!Number.isFinite(v)) return "–";
    return `${v < 10 && !Number.isInteger(v) ? v.toFixed(1) : fmtInt(v)} s`;
  }

  function fmtValue(key, v) {
    if (v === null || v === undefined || v === "") return "–";
    if (typeof v === "number") return SECONDS.has(key) ? fmtSeconds(v) : Number.isInteger(v) ? fmtInt(v) : v.toFixed(2);
    if (typeof v === "boolean") return v ? "yes" : "no";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  const cell = (key, v) => h("td", { class: "nowrap", "data-col": key }, fmtValue(key, v));

  /** A configured statistic's value as a PeekStatReq would get it now. */
  function statValue(item) {
    if (item.result !== undefined && item.result !== "Success") {
      return [h("span", { class: "badge bad" }, item.result), item.reason ? h("span", { class: "sub" }, item.reason) : null];
    }
    const text = item.text ?? (Number.isFinite(item.value) ? String(item.value) : "–");
    const unit = TIME_STATS.has(norm(item.stat_type)) && text !== "–" ? " s" : "";
    return [
      h("b", null, `${text}${unit}`),
      item.last_known ? h("span", { class: "badge warn", title: "The last value computed: the current one could not be" }, "last known") : null,
    ];
  }

  function namedTable(items) {
    const rows = items.filter(isRecord).map((item) => {
      const every = Number(item.update_frequency);
      return h(
        "tr",
        { "data-testid": `statistic-${item.name}`, "data-result": item.result ?? "", "data-value": item.text ?? "" },
        h("td", { class: "nowrap" }, h("span", { class: "mono" }, item.name), item.server_name ? h("span", { class: "sub" }, item.server_name) : null),
        h("td", { class: "nowrap" }, item.stat_type ?? "", h("span", { class: "sub" }, [item.object_type, item.object_id].filter(Boolean).join(" "))),
        h("td", { class: "nowrap", "data-col": "value" }, statValue(item)),
        h("td", { class: "nowrap muted" }, every > 0 ? `every ${fmtSeconds(every)}` : "each request"),
      );
    });
    const head = ["Name", "Statistic · object", "Value", "Computed"].map((t) => h("th", { scope: "col" }, t));
    return h("table", { "data-testid": "stats-statistics" }, h("thead", null, h("tr", null, head)), h("tbody", null, rows));
  }

  /** A list of objects as a table: a column per field (a DN's switch under the DN), a row per
   *  object. */
  function groupTable(key, items) {
    const fields = [...new Set(items.flatMap((item) => Object.keys(item)))];
    const cols = fields.includes("dn") ? fields.filter((col) => col !== "switch") : fields;
    const label = (col) => HEADERS[col] ?? pretty(col);
    const rows = items.map((item) => {
      const id = [item.switch, item.dn ?? item.name].filter((v) => v !== undefined && v !== null).join("-");
      return h(
        "tr",
        { "data-testid": `stats-${key}-${id}` },
        cols.map((col) =>
          col === "dn"
            ? h("td", { class: "nowrap", "data-col": col }, h("span", { class: "mono" }, fmtValue(col, item.dn)), item.switch ? h("span", { class: "sub" }, item.switch) : null)
            : cell(col, item[col]),
        ),
      );
    });
    return h(
      "div",
      { class: "stat-group table-wrap" },
      h("h3", null, GROUP_TITLES[key] ?? pretty(key)),
      h("table", { "data-testid": `stats-${key}` }, h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col" }, label(c))))), h("tbody", null, rows)),
    );
  }

  /** Plain and nested figures as [label, value] rows: field names prettified, object names
   *  (DNs, queues, IVRs) kept as they are; three levels at most. */
  function flatStats(stats, prefix = "", depth = 0, out = []) {
    for (const [key, value] of Object.entries(stats || {})) {
      const part = /^[a-z][a-z0-9_]*$/.test(key) ? pretty(key) : key;
      const name = prefix ? `${prefix} · ${part}` : part;
      if (isRecord(value)) {
        if (depth < 2) flatStats(value, name, depth + 1, out);
      } else if (["number", "string", "boolean"].includes(typeof value)) {
        out.push([name, value]);
      }
    }
    return out;
  }

  function renderStats(stats) {
    const lists = Object.entries(isRecord(stats) ? stats : {}).filter(([, v]) => Array.isArray(v) && v.length > 0);
    const named = lists.filter(([k]) => k === "statistics").flatMap(([, v]) => v);
    const groups = lists.filter(([k, v]) => k !== "statistics" && v.every(isRecord));
    const figures = flatStats(Object.fromEntries(Object.entries(isRecord(stats) ? stats : {}).filter(([, v]) => !Array.isArray(v)))).slice(0, 24);
    $("stats-card").hidden = named.length === 0 && groups.length === 0 && figures.length === 0;
    replace(
      "stats",
      named.length ? h("div", { class: "table-wrap" }, namedTable(named)) : null,
      groups.length ? h("div", { class: "stat-groups" }, groups.map(([k, v]) => groupTable(k, v))) : null,
      figures.length
        ? h("dl", { class: "kv", "data-testid": "stats-figures" }, figures.map(([k, v]) => [h("dt", null, k), h("dd", null, fmtValue("", v))]))
        : null,
    );
  }

  return { agentsOf, agentCounts, renderAgents, statsShown, renderStats };
};
