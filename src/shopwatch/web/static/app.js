// shopwatch live alerts page. Plain JS, no build step; every value from the server is
// written with textContent (alert messages carry attacker-controlled strings).
"use strict";

(() => {
  const POLL_MS = 2000;
  const FULL_EVERY = 15; // ticks between full reloads (catches alerts with late event times)
  const FIRST_LIMIT = 200;
  const MAX_ROWS = 500;

  const state = {
    alerts: new Map(), // id -> alert (contract JSON)
    shown: new Set(), // ids rendered at least once (new ones flash)
    loaded: false, // the first answer of this filter setting is rendered
    verdicts: new Map(), // id -> verdict given in this page
    newest: null, // newest @timestamp seen (RFC 3339 string)
    selected: null,
    generation: 0, // bumped when filters change; stale answers are dropped
    ticks: 0,
    timer: null,
  };

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };

  class Unauthorized extends Error {}

  async function api(path, options = {}) {
    const response = await fetch(path, {
      credentials: "same-origin",
      cache: "no-store",
      ...options,
      headers: { Accept: "application/json", ...(options.headers || {}) },
    });
    if (response.status === 401) {
      window.location.assign("/login");
      throw new Unauthorized("session ended");
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw new Error((body && body.error) || `HTTP ${response.status}`);
    }
    return body;
  }

  function filters() {
    return {
      category: $("filter-category").value,
      severity: $("filter-severity").value,
      entity: $("filter-entity").value.trim(),
    };
  }

  function alertsUrl(extra) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...filters(), ...extra })) {
      if (v !== "" && v !== null && v !== undefined) params.set(k, v);
    }
    return `/api/alerts?${params.toString()}`;
  }

  // -- formatting -----------------------------------------------------------------

  const categoryLabel = (c) => String(c || "").replaceAll("_", " ");

  function fmtNumber(value, digits = 0) {
    if (value === undefined || value === null || Number.isNaN(Number(value))) return "–";
    const n = Number(value);
    if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
    return n.toLocaleString("en-US", { maximumFractionDigits: digits });
  }

  function splitTime(iso) {
    // "2024-11-29T08:30:00.123Z" -> ["2024-11-29", "08:30:00"]
    const [day, rest] = String(iso).split("T");
    return [day, (rest || "").slice(0, 8)];
  }

  const todayUtc = () => new Date().toISOString().slice(0, 10);

  function entityText(entity) {
    return Object.values(entity || {}).join(" · ");
  }

  // -- table ----------------------------------------------------------------------

  function sortedAlerts() {
    const list = Array.from(state.alerts.values());
    list.sort((a, b) => {
      if (a["@timestamp"] !== b["@timestamp"]) return a["@timestamp"] < b["@timestamp"] ? 1 : -1;
      return a["alert.id"] < b["alert.id"] ? 1 : -1;
    });
    return list;
  }

  function row(alert) {
    const id = alert["alert.id"];
    const tr = el("tr", { "data-id": id, tabindex: "0" });
    if (state.loaded && !state.shown.has(id)) tr.classList.add("fresh");
    if (id === state.selected) tr.classList.add("selected");

    const [day, time] = splitTime(alert["@timestamp"]);
    const tdTime = el("td", { class: "col-time", title: alert["@timestamp"] });
    if (day !== todayUtc()) tdTime.append(el("span", { class: "day" }, day));
    tdTime.append(document.createTextNode(time));

    const tdSev = el("td", { class: "col-sev" });
    tdSev.append(el("span", { class: `sev ${alert.severity}` }, alert.severity));

    const tdCat = el("td", { class: "col-cat cat" }, categoryLabel(alert["rule.category"]));

    const tdRule = el("td", { class: "col-rule" }, alert["rule.name"]);
    tdRule.append(el("span", { class: "rule-id" }, alert["rule.id"]));

    const entity = alert.entity || {};
    const tdEntity = el("td", {
      class: "col-entity",
      title: Object.entries(entity).map(([k, v]) => `${k}: ${v}`).join("\n"),
    }, entityText(entity));

    const tdMsg = el("td", { class: "msg" }, alert.message);
    const verdict = state.verdicts.get(id);
    if (verdict) tdMsg.append(el("span", { class: `verdict-tag ${verdict}` }, categoryLabel(verdict)));

    const tdRisk = el("td", { class: "col-risk" }, alert.risk_score);
    tr.append(tdTime, tdSev, tdCat, tdRule, tdEntity, tdMsg, tdRisk);
    return tr;
  }

  function render() {
    const list = sortedAlerts().slice(0, MAX_ROWS);
    if (state.alerts.size > MAX_ROWS) {
      state.alerts = new Map(list.map((a) => [a["alert.id"], a]));
    }
    const body = document.createDocumentFragment();
    for (const alert of list) body.append(row(alert));
    $("alert-rows").replaceChildren(body);
    for (const alert of list) state.shown.add(alert["alert.id"]);
    state.loaded = true;
    $("empty").hidden = list.length > 0;
    const f = filters();
    const filtered = f.category || f.severity || f.entity;
    $("shown").textContent = `${list.length} alert${list.length === 1 ? "" : "s"} shown${filtered ? " (filtered)" : ""}`;
  }

  function merge(alerts) {
    let changed = false;
    for (const alert of alerts) {
      const id = alert["alert.id"];
      if (!state.alerts.has(id)) changed = true;
      state.alerts.set(id, alert);
      if (state.newest === null || alert["@timestamp"] > state.newest) state.newest = alert["@timestamp"];
    }
    return changed;
  }

  // -- polling --------------------------------------------------------------------

  function setLive(ok, text) {
    const live = $("live");
    live.className = `live ${ok ? "on" : "off"}`;
    live.textContent = text;
  }

  async function refreshAlerts(full) {
    const generation = state.generation;
    const url = full || state.newest === null
      ? alertsUrl({ limit: FIRST_LIMIT })
      : alertsUrl({ since: state.newest, limit: FIRST_LIMIT });
    const alerts = await api(url);
    if (generation !== state.generation) return;
    if (merge(alerts) || full) render();
  }

  function renderStats(stats) {
    const rt = stats.runtime || {};
    const eps = rt.events_per_s ?? rt.events_per_second ?? rt.eps;
    $("c-eps").textContent = fmtNumber(eps, 1);
    $("c-events").textContent = fmtNumber(rt.events ?? rt.events_total);
    $("c-rejected").textContent = fmtNumber(rt.rejected);
    if (rt.lag_s !== undefined) {
      $("c-lag-label").textContent = "lag";
      $("c-lag").textContent = rt.lag_s === null ? "–" : `${fmtNumber(rt.lag_s, 1)} s`;
    } else {
      const p99 = rt.latency_p99_ms;
      $("c-lag").textContent = p99 === undefined || p99 === null ? "–" : `${fmtNumber(p99, 0)} ms`;
    }
    $("c-alerts").textContent = fmtNumber(stats.alerts_total);

    const badges = $("hour-badges");
    const entries = Object.entries(stats.last_hour || {});
    if (entries.length === 0) {
      badges.replaceChildren(el("span", { class: "muted" }, "no alerts in the last hour"));
      return;
    }
    const current = $("filter-category").value;
    badges.replaceChildren(...entries.map(([category, n]) => {
      const badge = el("button", {
        type: "button",
        class: `badge${category === current ? " active" : ""}`,
        "data-category": category,
        title: `Show only ${categoryLabel(category)}`,
      }, categoryLabel(category));
      badge.append(el("b", {}, fmtNumber(n)));
      return badge;
    }));
  }

  async function tick() {
    const generation = state.generation;
    const full = state.ticks % FULL_EVERY === 0;
    state.ticks += 1;
    try {
      const [, stats] = await Promise.all([refreshAlerts(full), api("/api/stats")]);
      renderStats(stats);
      setLive(true, `live · ${new Date().toISOString().slice(11, 19)} UTC`);
    } catch (err) {
      if (err instanceof Unauthorized) return;
      setLive(false, `offline · retrying (${err.message})`);
    }
    if (generation === state.generation) state.timer = window.setTimeout(tick, POLL_MS);
  }

  function restart() {
    state.generation += 1;
    state.alerts.clear();
    state.shown.clear();
    state.loaded = false;
    state.newest = null;
    state.ticks = 0;
    window.clearTimeout(state.timer);
    tick();
  }

  // -- detail ---------------------------------------------------------------------

  function kvRows(table, entries, withFilter) {
    const rows = entries.map(([key, value]) => {
      const tr = el("tr");
      const shown = typeof value === "object" && value !== null ? JSON.stringify(value, null, 1) : String(value);
      const td = el("td", {}, shown);
      if (withFilter) {
        const button = el("button", { type: "button", class: "quiet", "data-entity": String(value), title: "Show only alerts about this" }, "filter");
        td.append(button);
      }
      tr.append(el("th", {}, key), td);
      return tr;
    });
    if (rows.length === 0) rows.push(el("tr", {}, ""));
    table.replaceChildren(...rows);
  }

  function techniqueLink(id) {
    if (!id) return document.createTextNode("—");
    const path = String(id).replace(".", "/");
    if (!/^T\d{4}(\/\d{3})?$/.test(path)) return document.createTextNode(id);
    return el("a", {
      href: `https://attack.mitre.org/techniques/${path}/`,
      target: "_blank",
      rel: "noopener noreferrer",
    }, id);
  }

  function renderFeedback(items) {
    $("d-feedback").replaceChildren(...items.map((f) => {
      const when = String(f.created_at).replace("T", " ").slice(0, 19);
      const li = el("li", {}, `${categoryLabel(f.verdict)} · ${f.analyst} · ${when} UTC`);
      if (f.note) li.append(el("div", { class: "muted" }, f.note));
      return li;
    }));
  }

  async function openDetail(id) {
    state.selected = id;
    for (const tr of $("alert-rows").children) tr.classList.toggle("selected", tr.dataset.id === id);
    const aside = $("detail");
    aside.hidden = false;
    aside.dataset.id = id;
    $("feedback-status").textContent = "";
    $("d-note").value = "";
    try {
      const [alert, feedback] = await Promise.all([
        api(`/api/alerts/${encodeURIComponent(id)}`),
        api(`/api/alerts/${encodeURIComponent(id)}/feedback`),
      ]);
      if (state.selected !== id) return;
      const sev = $("d-severity");
      sev.className = `sev ${alert.severity}`;
      sev.textContent = alert.severity;
      $("d-risk").textContent = `risk ${alert.risk_score}/100`;
      $("d-message").textContent = alert.message;
      $("d-time").textContent = String(alert["@timestamp"]).replace("T", " ").replace("Z", " UTC");
      $("d-rule").textContent = alert["rule.name"];
      $("d-rule-id").textContent = alert["rule.id"];
      $("d-category").textContent = categoryLabel(alert["rule.category"]);
      $("d-technique").replaceChildren(techniqueLink(alert["threat.technique.id"]));
      const ids = alert["event.ids"] || [];
      $("d-events").textContent = `${ids.length}${ids.length >= 1000 ? "+" : ""} event${ids.length === 1 ? "" : "s"}`;
      $("d-id").textContent = alert["alert.id"];
      kvRows($("d-entity"), Object.entries(alert.entity || {}), true);
      kvRows($("d-details"), Object.entries(alert.details || {}), false);
      const first = ids.slice(0, 8).map((e) => el("li", {}, e));
      if (ids.length > 8) first.push(el("li", {}, `… and ${ids.length - 8} more`));
      $("d-event-ids").replaceChildren(...first);
      renderFeedback(feedback);
    } catch (err) {
      if (!(err instanceof Unauthorized)) $("feedback-status").textContent = `Could not load the alert: ${err.message}`;
    }
  }

  function closeDetail() {
    state.selected = null;
    $("detail").hidden = true;
    for (const tr of $("alert-rows").children) tr.classList.remove("selected");
  }

  async function sendVerdict(verdict) {
    const id = state.selected;
    if (!id) return;
    const status = $("feedback-status");
    status.textContent = "Saving…";
    try {
      const saved = await api(`/api/alerts/${encodeURIComponent(id)}/feedback`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ verdict, note: $("d-note").value }),
      });
      state.verdicts.set(id, verdict);
      status.textContent = `Marked ${categoryLabel(saved.verdict)} by ${saved.analyst}.`;
      $("d-note").value = "";
      renderFeedback(await api(`/api/alerts/${encodeURIComponent(id)}/feedback`));
      render();
    } catch (err) {
      if (!(err instanceof Unauthorized)) status.textContent = `Not saved: ${err.message}`;
    }
  }

  // -- wiring ---------------------------------------------------------------------

  function wire() {
    $("filter-category").addEventListener("change", restart);
    $("filter-severity").addEventListener("change", restart);
    let typing = null;
    $("filter-entity").addEventListener("input", () => {
      window.clearTimeout(typing);
      typing = window.setTimeout(restart, 350);
    });
    $("filter-clear").addEventListener("click", () => {
      $("filter-category").value = "";
      $("filter-severity").value = "";
      $("filter-entity").value = "";
      restart();
    });
    $("hour-badges").addEventListener("click", (event) => {
      const badge = event.target.closest("[data-category]");
      if (!badge) return;
      const select = $("filter-category");
      select.value = select.value === badge.dataset.category ? "" : badge.dataset.category;
      restart();
    });
    const rows = $("alert-rows");
    rows.addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-id]");
      if (tr) openDetail(tr.dataset.id);
    });
    rows.addEventListener("keydown", (event) => {
      const tr = event.target.closest("tr[data-id]");
      if (tr && event.key === "Enter") openDetail(tr.dataset.id);
    });
    $("d-close").addEventListener("click", closeDetail);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeDetail();
    });
    $("detail").addEventListener("click", (event) => {
      const verdict = event.target.closest("[data-verdict]");
      if (verdict) {
        sendVerdict(verdict.dataset.verdict);
        return;
      }
      const entity = event.target.closest("[data-entity]");
      if (entity) {
        $("filter-entity").value = entity.dataset.entity;
        restart();
      }
    });
  }

  wire();
  tick();
})();
