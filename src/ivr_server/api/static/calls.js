/* ivr-server live view: the Active calls card, its End call buttons, and the timeline of the
 * call clicked (GET /calls/{id}/timeline, refreshed every second while the call runs).
 *
 * app.js calls window.ivrCalls(window.ivrDom, app) with app = {api, token(), showBanner,
 * dropToken, requestState} and gets renderCalls back. User data is drawn as text chips.
 */
"use strict";

window.ivrCalls = ({ h, $, replace, pretty, fmtInt, shortConn, callTone }, app) => {
  const MAX_CALL_ROWS = 300; // rows drawn in the calls table
  const TIMELINE_REFRESH_MS = 1000; // a running call's timeline is read again this often

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
    const rows = sorted.slice(0, MAX_CALL_ROWS).map((call) => {
      const row = h(
        "tr",
        {
          "data-testid": `call-${call.call_id}`,
          "data-call-id": call.call_id,
          "data-state": callTone(call.state),
          "data-selected": call.call_id === timeline.callId,
          class: "clickable",
          title: "Click to see the call's timeline",
        },
        h("td", { class: "nowrap" }, h("span", { class: "mono callid", title: call.call_id }, call.call_id)),
        call.mode === "Network"
          ? h(
              "td",
              { class: "nowrap", "data-testid": `mode-${call.call_id}` },
              `${call.ivr ?? ""} · `,
              h("span", { class: "badge info", title: "Network mode: the call waits at a routing DN until the router routes it" }, "Network"),
              h("span", { class: "sub" }, `routing DN ${call.routing_dn ?? call.dn ?? "–"}${call.switch ? ` · ${call.switch}` : ""}`),
            )
          : h(
              "td",
              { class: "nowrap" },
              `${call.ivr ?? ""} · ${call.port ?? ""}`,
              h("span", { class: "sub" }, `DN ${call.dn ?? "–"}${call.switch ? ` · ${call.switch}` : ""}`),
            ),
        h(
          "td",
          { class: "nowrap" },
          h("span", { class: "pill", "data-state": callTone(call.state) }, pretty(call.state)),
          call.treatment ? h("span", { class: "sub" }, `treatment ${call.treatment}`) : null,
        ),
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
        app.token() ? h("td", { class: "nowrap" }, endCallButton(call)) : null,
      );
      row.addEventListener("click", (event) => {
        if (!event.target.closest("button")) showTimeline(call.call_id);
      });
      return row;
    });
    const table = h(
      "table",
      null,
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["CallId", "IVR · port", "State", "ConnID", "ANI / DNIS", "Route DN", "User data", app.token() ? "" : null]
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
        title:
          call.mode === "Network"
            ? `End this Network call on the server (the IVR gets EndCall Timeout)`
            : `End this call on the server (the IVR gets EndCall Timeout) and free port ${call.port} of ${call.ivr}`,
      },
      "End call",
    );
    button.addEventListener("click", () => endCall(call, button));
    return button;
  }

  async function endCall(call, button) {
    const shown = String(call.call_id).length > 60 ? `${String(call.call_id).slice(0, 60)}…` : call.call_id;
    const network = call.mode === "Network";
    const where = network ? `at routing DN ${call.routing_dn ?? call.dn}` : `on port ${call.port} of ${call.ivr}`;
    if (!window.confirm(`End call ${shown} ${where}?\nIts IVR gets EndCall (Timeout)${network ? "" : " and the port is freed"}.`)) return;
    button.disabled = true;
    try {
      // a Network call has no port: it is ended by its CallId
      const path = network
        ? `/calls/${encodeURIComponent(call.call_id)}/end-call`
        : `/ivrs/${encodeURIComponent(call.ivr)}/ports/${encodeURIComponent(call.port)}/end-call`;
      const response = await fetch(app.api + path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${app.token()}` },
        body: JSON.stringify(network ? {} : { call_id: call.call_id }),
        cache: "no-store",
      });
      if (!response.ok) {
        let reason = `HTTP ${response.status}`;
        try {
          reason = (await response.json()).error || reason;
        } catch {
          /* not JSON */
        }
        if (response.status === 401) app.dropToken("The API token was refused");
        app.showBanner(`Cannot end call ${shown}: ${reason}`);
      }
    } catch (err) {
      app.showBanner(`Cannot end call ${shown}: ${err.message}`);
    } finally {
      button.disabled = false;
      app.requestState();
    }
  }

  // ------------------------------------------------------------------ the timeline of a call

  const timeline = { callId: null, timer: null, ended: false };

  function showTimeline(callId) {
    timeline.callId = callId;
    timeline.ended = false;
    $("timeline-card").hidden = false;
    $("timeline-call").textContent = callId;
    for (const row of document.querySelectorAll("#calls tr[data-call-id]")) {
      row.toggleAttribute("data-selected", row.dataset.callId === callId);
    }
    readTimeline();
  }

  function closeTimeline() {
    timeline.callId = null;
    clearTimeout(timeline.timer);
    $("timeline-card").hidden = true;
    for (const row of document.querySelectorAll("#calls tr[data-selected]")) row.removeAttribute("data-selected");
  }

  async function readTimeline() {
    clearTimeout(timeline.timer);
    const callId = timeline.callId;
    if (callId === null) return;
    const status = $("timeline-status");
    if (!app.token()) {
      status.textContent = "";
      replace("timeline", h("p", { class: "empty", "data-testid": "timeline-empty" }, "Sign in to see the call's timeline."));
      return;
    }
    try {
      const response = await fetch(`${app.api}/calls/${encodeURIComponent(callId)}/timeline`, {
        headers: { Accept: "application/json", Authorization: `Bearer ${app.token()}` },
        cache: "no-store",
      });
      if (callId !== timeline.callId) return; // another call was clicked meanwhile
      if (response.status === 404) {
        status.textContent = "no longer kept";
        timeline.ended = true;
        replace("timeline", h("p", { class: "empty", "data-testid": "timeline-empty" }, "This call's timeline is no longer kept."));
        return;
      }
      if (response.status === 401) {
        app.dropToken("The API token was refused");
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const answer = await response.json();
      timeline.ended = answer.ended;
      status.textContent = answer.ended ? "ended" : "live";
      status.dataset.state = answer.ended ? "ended" : "live";
      renderTimeline(answer.entries);
    } catch (err) {
      status.textContent = `cannot read it: ${err.message}`;
    }
    if (!timeline.ended && callId === timeline.callId) {
      timeline.timer = setTimeout(readTimeline, TIMELINE_REFRESH_MS);
    }
  }

  function errorText(error) {
    if (!error) return null;
    const name = error.name ?? error.code ?? "error";
    return h(
      "div",
      { class: "tl-error" },
      h("strong", null, name),
      error.request ? ` (${error.request})` : "",
      `: ${error.explanation}`,
      error.switch_text ? h("span", { class: "sub" }, `switch said: ${error.switch_text}`) : null,
    );
  }

  function renderTimeline(entries) {
    if (!entries || entries.length === 0) {
      replace("timeline", h("p", { class: "empty", "data-testid": "timeline-empty" }, "Nothing recorded."));
      return;
    }
    const rows = entries.map((entry, index) =>
      h(
        "tr",
        { "data-testid": `tl-${index}`, "data-kind": entry.kind, "data-name": entry.name },
        h("td", { class: "nowrap mono", title: new Date(entry.time * 1000).toISOString() }, `+${entry.offset.toFixed(3)} s`),
        h("td", { class: "nowrap" }, h("span", { class: "pill", "data-kind": entry.kind }, entry.kind)),
        h(
          "td",
          null,
          h("span", { class: "mono" }, entry.summary),
          entry.reason ? h("span", { class: "sub" }, entry.reason) : null,
          errorText(entry.error),
        ),
      ),
    );
    replace(
      "timeline",
      h(
        "table",
        null,
        h("thead", null, h("tr", null, ["When", "Kind", "What"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", null, rows),
      ),
    );
  }

  $("timeline-close").addEventListener("click", closeTimeline);

  return { renderCalls };
};
