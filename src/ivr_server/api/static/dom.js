/* ivr-server live view: DOM helpers, formatting and the colour rules every card shares.
 *
 * Loaded first of the page's scripts (all deferred, so they run in order): dom.js, panels.js,
 * views.js, calls.js, app.js. The others take what they need from window.ivrDom. Text is always
 * added as text nodes, never as HTML: user data comes from IVRs and is not trusted.
 */
"use strict";

window.ivrDom = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";

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

  // ------------------------------------------------------------------ drawing only what changed

  const lastRendered = new Map();

  /** Run render(data) only when data changed since the last time this section was drawn. */
  function section(name, data, render) {
    const key = JSON.stringify(data ?? null);
    if (lastRendered.get(name) === key) return;
    lastRendered.set(name, key);
    render(data);
  }

  /** Draw this section again at the next state, changed or not (ages, the signed-in state). */
  const forget = (name) => lastRendered.delete(name);

  /** The server's clock minus the browser's, ms (from state.server.time): ages use it. */
  const setSkew = (ms) => {
    skew = ms;
  };

  return { h, s, $, replace, clock, pretty, norm, fmtInt, fmtRate, toDate, age, setSkew, shortConn, portState, callTone, section, forget };
})();
