/* ivr-server live view: the High availability card (issue 25, docs/ha.md).
 *
 * Loaded after app.js; uses window.ivrDom (dom.js). Reads GET /api/v1/nodes every
 * NODES_INTERVAL ms: this node's role, fencing epoch, store and its state, commit latency
 * (last, median, 99th percentile), batches, queued records, replayed requests, fencing and the
 * last takeover; every node of the site with its slots, lease left, calls, agents and calls
 * waiting at routing points (with the site's totals per routing point). Reads
 * GET /api/v1/nodes/calls every CALLS_INTERVAL ms: every slot's calls from the shared store and
 * which node holds each, so that every node's page shows the same shared state. With [ha]
 * mode = "off" the card stays hidden and the page looks again only every OFF_INTERVAL ms. The
 * token (when signed in: app.js's, window.ivrToken) is sent along; without it the calls
 * come without user data and caller numbers. Everything is written as text, never as HTML.
 */
"use strict";

(() => {
  const { h, $, replace, fmtInt, pretty } = window.ivrDom;
  const API = "/api/v1";
  const NODES_INTERVAL = 2000;
  const CALLS_INTERVAL = 5000;
  const OFF_INTERVAL = 30000;
  const MAX_CALL_ROWS = 200;
  const TOKEN_KEY = "ivr-server.token";

  /** The token app.js uses (signed in), else the one it keeps in sessionStorage. */
  function token() {
    if (typeof window.ivrToken === "function") return window.ivrToken() || "";
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  async function getJSON(path, withToken = true) {
    const headers = { Accept: "application/json" };
    const t = withToken ? token() : "";
    if (t) headers.Authorization = `Bearer ${t}`;
    const response = await fetch(API + path, { headers, cache: "no-store" });
    if (response.status === 401 && t) return getJSON(path, false);
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  const ms = (seconds) => (typeof seconds === "number" ? `${(seconds * 1000).toFixed(2)} ms` : "–");
  const num = (value) => (typeof value === "number" ? fmtInt(value) : "–");

  function fact(label, value, testid) {
    return h("div", { class: "ha-fact", "data-testid": testid }, h("span", { class: "muted small" }, label), h("span", { class: "mono" }, value));
  }

  function roleBadge(role) {
    const tone = role === "leader" ? "info" : role === "standby" ? "warn" : "";
    return h("span", { class: `badge ${tone}`.trim(), "data-testid": "ha-role" }, role || "–");
  }

  function renderThis(doc) {
    const me = doc.this || {};
    const lat = me.commit_latency || {};
    const lost = doc.store_state === "lost";
    const take = me.last_takeover;
    $("ha-node").textContent = doc.node_id ? `${doc.node_id} · ${doc.mode}` : doc.mode;
    replace(
      "ha-this",
      h(
        "div",
        { class: "ha-facts" },
        h("div", { class: "ha-fact" }, h("span", { class: "muted small" }, "Role"), roleBadge(me.role)),
        fact("Epoch", num(me.epoch), "ha-epoch"),
        h(
          "div",
          { class: "ha-fact", "data-testid": "ha-store" },
          h("span", { class: "muted small" }, "Store"),
          h("span", { class: "mono" }, me.store_url || "–"),
          h("span", { class: `badge ${lost ? "bad" : "info"}`, "data-testid": "ha-store-state" }, doc.store_state || "–"),
        ),
        fact("Commit latency (last · p50 · p99)", `${ms(lat.last)} · ${ms(lat.p50)} · ${ms(lat.p99)}`, "ha-latency"),
        fact("Batches", num(me.batches), "ha-batches"),
        fact("Queued records", num(me.queued), "ha-queued"),
        fact("Replayed requests", num(me.replayed), "ha-replayed"),
        fact("Fenced", num(me.fenced_count), "ha-fenced"),
        me.adopted_calls !== undefined ? fact("Calls adopted", num(me.adopted_calls), "ha-adopted") : null,
        take ? fact("Last takeover", `${ms(take.seconds)} · ${num(take.calls)} calls`, "ha-takeover") : null,
      ),
    );
  }

  function renderNodes(doc) {
    const nodes = doc.nodes || [];
    const head = ["Node", "Role", "Slots (epoch, lease left)", "Calls", "Agents", "Ready", "Waiting"].map((t) => h("th", { scope: "col" }, t));
    const rows = nodes.map((node) =>
      h(
        "tr",
        { "data-testid": `ha-node-${node.id}`, "data-role": node.role ?? "" },
        h("td", { class: "nowrap mono" }, node.id || "–", node.self ? h("span", { class: "sub" }, "this node") : null),
        h("td", null, roleBadge(node.role)),
        h("td", { class: "mono small" }, (node.slots || []).map((s) => `${s.slot} (${s.epoch}, ${s.lease_left.toFixed(1)} s)`).join(", ") || "–"),
        h("td", { "data-testid": `ha-node-${node.id}-calls` }, num(node.calls)),
        h("td", null, num(node.agents)),
        h("td", null, num(node.ready)),
        h("td", { title: "Calls waiting at routing points" }, num(node.waiting)),
      ),
    );
    const totals = doc.totals || {};
    const points = (doc.routing_points || []).map((rp) => `${rp.dn}: ${num(rp.waiting)}`).join(", ");
    $("ha-totals").textContent =
      `${num(totals.nodes)} node(s) · ${num(totals.calls)} calls · ${num(totals.ready)} agents ready` +
      (points ? ` · waiting at ${points}` : "");
    replace("ha-nodes", h("table", null, h("thead", null, h("tr", null, head)), h("tbody", null, rows)));
  }

  function renderCalls(doc) {
    const calls = doc.calls || [];
    $("ha-calls-count").textContent = doc.total ? String(doc.total) : "";
    if (calls.length === 0) {
      replace("ha-calls", h("p", { class: "empty", "data-testid": "ha-calls-empty" }, "No call in the store."));
      return;
    }
    const head = ["CallId", "IVR · port", "State", "Node", "Slot", "User data"].map((t) => h("th", { scope: "col" }, t));
    const rows = calls.slice(0, MAX_CALL_ROWS).map((call) =>
      h(
        "tr",
        { "data-testid": `ha-call-${call.call_id}`, "data-node": call.node ?? "" },
        h("td", { class: "mono nowrap" }, call.call_id ?? call.key),
        h("td", { class: "nowrap" }, `${call.ivr || "–"} · ${call.port ?? "–"}`),
        h("td", null, pretty(call.state) || "–"),
        h("td", { class: "mono" }, call.node ?? h("span", { class: "badge warn" }, "none (not adopted yet)")),
        h("td", { class: "mono" }, call.slot),
        h(
          "td",
          { class: "small" },
          Array.isArray(call.user_data)
            ? call.user_data.map((item) => `${item.name}=${item.value ?? "[…]"}`).join(", ") || "–"
            : h("span", { class: "muted" }, doc.redacted ? "sign in" : "–"),
        ),
      ),
    );
    const more = doc.total > rows.length ? h("p", { class: "more" }, `and ${fmtInt(doc.total - rows.length)} more`) : null;
    replace("ha-calls", h("table", null, h("thead", null, h("tr", null, head)), h("tbody", null, rows)), more);
  }

  let mode = null;

  async function loadNodes() {
    let next = NODES_INTERVAL;
    try {
      const doc = await getJSON("/nodes");
      mode = doc.mode;
      const card = $("ha-card");
      card.hidden = mode === "off";
      if (mode === "off") next = OFF_INTERVAL;
      else {
        renderThis(doc);
        renderNodes(doc);
      }
    } catch (err) {
      if (mode && mode !== "off") replace("ha-this", h("p", { class: "empty" }, `HA state unavailable: ${err.message}`));
    }
    setTimeout(loadNodes, next);
  }

  async function loadCalls() {
    if (mode && mode !== "off") {
      try {
        renderCalls(await getJSON(`/nodes/calls?limit=${MAX_CALL_ROWS}`));
      } catch (err) {
        replace("ha-calls", h("p", { class: "empty" }, `Calls of the store unavailable: ${err.message}`));
      }
    }
    setTimeout(loadCalls, mode === "off" ? OFF_INTERVAL : CALLS_INTERVAL);
  }

  loadNodes();
  loadCalls();
})();
