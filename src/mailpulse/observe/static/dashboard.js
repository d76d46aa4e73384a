// mailpulse dashboard: live charts (uPlot), campaign and journey figures, the message view.
// Plain script, no build step; it reads only this server's /admin JSON with the session cookie.
"use strict";

(() => {
  const LIVE_EVERY = 1000; // ms between chart updates
  const HISTORY = 300; // seconds the charts show
  const TABLES_EVERY = 3000; // ms between campaign and journey updates
  const CAMPAIGNS_SHOWN = 20;
  const COLORS = ["#2f6fde", "#e0702c", "#2a9d6f", "#b8438f", "#7a5cd6", "#8a8f99"];
  const CHARTS = [
    ["throughput", "Throughput", "/s"],
    ["latency", "Event → SMTP 250 latency", " ms"],
    ["stages", "Mean time per stage", " ms"],
    ["errors", "Errors and deferrals", "/s"],
    ["outcomes", "Delivery, bounces, complaints (60 s)", " %"],
    ["queues", "Queue depths", ""],
    ["backlog", "Backlog age: the oldest message due", " s"],
    ["cpu", "CPU (% of one core)", " %"],
    ["memory", "Resident memory", " MB"],
  ];

  const $ = (selector) => document.querySelector(selector);
  const plots = new Map();

  class Refused extends Error {}

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) {
      window.location.assign("/dashboard/login");
      throw new Refused("signed out");
    }
    let body = null;
    try {
      body = await r.json();
    } catch (_) {
      throw new Error(`${url}: ${r.status} ${r.statusText}`);
    }
    if (!r.ok) {
      const error = new Error((body && body.error) || `${r.status} ${r.statusText}`);
      error.status = r.status;
      throw error;
    }
    return body;
  }

  // ---- numbers ----------------------------------------------------------------------------
  function num(v, digits = 0) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }
  function short(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return `${num(v / 1e6, 1)}M`;
    if (a >= 1e3) return `${num(v / 1e3, 1)}k`;
    if (a > 0 && a < 1) return String(Number(v.toPrecision(2)));
    return num(v, a < 10 && a !== 0 ? 1 : 0);
  }
  function tick(v, unit) {
    if (unit === " ms" && Math.abs(v) >= 1000) return `${num(v / 1000, 1)} s`;
    return short(v) + unit.trim();
  }
  function fixed(v, unit, digits = 1) {
    return v === null || v === undefined ? "–" : `${num(v, digits)}${unit}`;
  }
  function last(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }
  const MOMENT = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" };
  // The latest figures of a chart's series added up (the server's and the couriers').
  function total(series) {
    const known = Object.values(series).map(last).filter((v) => v !== null);
    return known.length ? known.reduce((a, b) => a + b, 0) : null;
  }
  function when(seconds, precise = false) {
    if (!seconds) return "–";
    const options = precise ? { ...MOMENT, fractionalSecondDigits: 3 } : MOMENT;
    return new Date(seconds * 1000).toLocaleString("sv-SE", options);
  }
  function setOutput(id, text, raw) {
    const el = document.getElementById(id);
    el.textContent = text;
    if (raw !== undefined) el.dataset.value = raw === null ? "" : String(raw);
  }

  // ---- charts -----------------------------------------------------------------------------
  function makePlot(key, title, unit, names) {
    const box = document.createElement("div");
    box.className = "chart";
    box.id = `chart-${key}`;
    const h = document.createElement("h3");
    h.textContent = title;
    box.append(h);
    $("#charts").append(box);
    const opts = {
      width: Math.max(300, box.clientWidth - 16),
      height: 190,
      legend: { live: true },
      scales: { x: { time: true } },
      axes: [{}, { size: 64, values: (u, ticks) => ticks.map((t) => tick(t, unit)) }],
      series: [{}, ...names.map((name, i) => ({ label: name, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false }))],
    };
    const plot = new uPlot(opts, [[], ...names.map(() => [])], box);
    plots.set(key, { plot, box, names });
    return plots.get(key);
  }

  function drawCharts(live) {
    for (const [key, title, unit] of CHARTS) {
      const series = live.charts[key];
      const names = Object.keys(series);
      let entry = plots.get(key);
      if (!entry || entry.names.join() !== names.join()) {
        if (entry) {
          entry.plot.destroy();
          entry.box.remove();
        }
        entry = makePlot(key, title, unit, names);
      }
      entry.plot.setData([live.t, ...names.map((n) => series[n])]);
    }
  }

  window.addEventListener("resize", () => {
    for (const { plot, box } of plots.values()) plot.setSize({ width: Math.max(300, box.clientWidth - 16), height: 190 });
  });

  function fillTiles(live) {
    const c = live.charts;
    setOutput("tile-events-rate", num(last(c.throughput["events/s"]), 1));
    setOutput("tile-messages-rate", num(last(c.throughput["messages/s"]), 1));
    for (const q of ["p50", "p95", "p99"]) setOutput(`tile-${q}`, fixed(last(c.latency[q]), " ms"));
    setOutput("tile-delivered", fixed(last(c.outcomes["delivered %"]), " %"));
    setOutput("tile-bounced", fixed(last(c.outcomes["bounced %"]), " %", 2));
    setOutput("tile-complaints", fixed(last(c.outcomes["complaints %"]), " %", 3));
    setOutput("tile-queue", num(last(c.queues.send)));
    setOutput("tile-cpu", fixed(total(c.cpu), " %", 0));
    setOutput("tile-rss", fixed(total(c.memory), " MB", 0));
    for (const [name, value] of Object.entries(live.totals)) setOutput(`total-${name}`, num(value), value);
  }

  // The charts' points: the last HISTORY seconds, asked for whole once, then only the points
  // after the newest one held (the server works out no more than those).
  let history = null;

  function merge(live) {
    if (history === null) {
      history = { t: live.t, charts: live.charts };
      return;
    }
    history.t.push(...live.t);
    for (const [key, series] of Object.entries(live.charts)) {
      for (const [name, points] of Object.entries(series)) history.charts[key][name].push(...points);
    }
    const newest = history.t[history.t.length - 1];
    const stale = history.t.findIndex((t) => t >= newest - HISTORY);
    if (stale > 0) {
      history.t.splice(0, stale);
      for (const series of Object.values(history.charts)) for (const points of Object.values(series)) points.splice(0, stale);
    }
  }

  async function refreshLive() {
    try {
      const since = history && history.t.length ? `&since=${history.t[history.t.length - 1]}` : "";
      const live = await getJSON(`/admin/dashboard/live?seconds=${HISTORY}${since}`);
      merge(live);
      fillTiles({ ...history, totals: live.totals });
      drawCharts(history);
      const status = $("#status");
      status.textContent = `live · updated ${new Date(live.at * 1000).toLocaleTimeString("sv-SE")}`;
      status.classList.remove("down");
    } catch (error) {
      if (error instanceof Refused) return;
      $("#status").textContent = `not updating: ${error.message}`;
      $("#status").classList.add("down");
    }
    setTimeout(refreshLive, LIVE_EVERY);
  }

  // ---- campaigns and journeys ---------------------------------------------------------------
  function cells(row, values) {
    for (const value of values) {
      const td = document.createElement("td");
      if (value instanceof Node) td.append(value);
      else td.textContent = value;
      row.append(td);
    }
    return row;
  }

  async function statsBy(kind) {
    // GET /admin/stats: the KPIs computed from the lifecycle events, by campaign or journey.
    try {
      const body = await getJSON(`/admin/stats?by=${kind}`);
      return new Map(body.rows.map((r) => [String(r.key), r]));
    } catch (error) {
      if (error instanceof Refused) throw error;
      return null; // not available: the figures the campaign and journey APIs have
    }
  }

  // `stats`: the row of /admin/stats, {} when it has none (no message in the range), null
  // when the stats are not available.
  function kpiCells(stats, fallback) {
    const pick = (name) => (stats && stats[name] !== undefined ? stats[name] : fallback[name] ?? (stats ? 0 : null));
    return [
      num(pick("sent")),
      num(pick("delivered")),
      num(pick("opened")),
      num(pick("clicked")),
      num(pick("converted")),
      num(pick("revenue"), 2),
      num(pick("unsubscribed")),
      num(pick("bounced")),
      num(pick("complained")),
    ];
  }

  // Messages that ended (sent, bounced, suppressed...) of those queued so far, and of the
  // audience when it is known: the progress of a campaign's long work.
  function progressOf(c) {
    const messages = c.messages || {};
    const ended = Object.entries(messages)
      .filter(([status]) => status !== "queued" && status !== "deferred")
      .reduce((sum, [, n]) => sum + n, 0);
    const whole = Math.max(c.audience || 0, c.queued);
    const bar = document.createElement("progress");
    bar.max = Math.max(whole, 1);
    bar.value = ended;
    const box = document.createElement("span");
    box.title = "messages ended / queued so far (of the audience)";
    box.append(bar, ` ${num(ended)} / ${num(c.queued)}${c.audience ? ` of ${num(c.audience)}` : ""}`);
    return box;
  }

  function armRows(c) {
    const test = c.ab_test;
    if (!test || !test.figures) return [];
    const decided = test.decision ? test.decision.winner : null;
    return test.figures.map((f) => {
      const tr = document.createElement("tr");
      tr.className = "arm";
      const verdict = f.p === null || f.p === undefined ? "best so far" : `z ${num(f.z, 2)} · p ${num(f.p, 3)}`;
      const mark = decided === f.id ? " ✓ winner" : "";
      return cells(tr, [
        `variant ${f.id}${mark}`,
        `${test.winner_by} ${num(100 * f.rate, 1)} %`,
        verdict,
        num(f.sent),
        "",
        num(f.opens),
        num(f.clicks),
        num(f.conversions),
        "",
        "",
        "",
        "",
      ]);
    });
  }

  function fillTable(table, rows, empty) {
    const body = table.tBodies[0];
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = table.tHead.rows[0].cells.length;
      td.className = "empty";
      td.textContent = empty;
      tr.append(td);
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren(...rows);
  }

  async function refreshCampaigns() {
    const [list, stats] = await Promise.all([getJSON("/admin/campaigns"), statsBy("campaign")]);
    const shown = list.slice(-CAMPAIGNS_SHOWN).reverse();
    const details = await Promise.all(shown.map((c) => getJSON(`/admin/campaigns/${encodeURIComponent(c.id)}`)));
    const rows = [];
    for (const c of details) {
      const e = c.engagement || {};
      const m = c.messages || {};
      const fallback = { ...e, delivered: m.sent, bounced: m.bounced };
      const tr = document.createElement("tr");
      tr.dataset.campaign = c.id;
      rows.push(cells(tr, [c.name || c.id, c.held ? `${c.status} (held)` : c.status, progressOf(c), ...kpiCells(stats && (stats.get(c.id) || {}), fallback)]));
      rows.push(...armRows(c));
    }
    fillTable($("#campaigns"), rows, "no campaign yet");
  }

  async function refreshJourneys() {
    const [body, stats] = await Promise.all([getJSON("/admin/journeys"), statsBy("journey")]);
    const rows = body.journeys.map((j) => {
      const tr = document.createElement("tr");
      tr.dataset.journey = j.id;
      return cells(tr, [j.name || j.id, j.status, num(j.active), ...kpiCells(stats && (stats.get(j.id) || {}), j.engagement || {})]);
    });
    fillTable($("#journeys"), rows, "no journey");
  }

  function span(seconds) {
    if (!seconds) return "now"; // a gauge judged as it is
    if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
    if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
    return `${num(seconds, seconds < 10 ? 1 : 0)} s`;
  }

  async function refreshAlerts() {
    const body = await getJSON("/admin/alerts");
    const rows = body.alerts.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.alert = a.name;
      tr.className = a.state;
      tr.title = `${a.summary}\n${a.expr}`;
      return cells(tr, [
        a.name,
        a.state,
        a.value_shown ?? "not judged",
        `${a.op} ${a.threshold_shown}`,
        span(a.window),
        a.since ? when(a.since) : "",
        a.fired_at ? when(a.fired_at) : "",
        a.resolved_at ? when(a.resolved_at) : "",
      ]);
    });
    fillTable($("#alerts"), rows, "no alert rule");
    const badge = $("#firing");
    badge.textContent = `${body.firing} firing`;
    badge.hidden = !body.firing;
  }

  async function refreshTables() {
    try {
      await Promise.all([refreshCampaigns(), refreshJourneys(), refreshAlerts()]);
    } catch (error) {
      if (error instanceof Refused) return;
    }
    setTimeout(refreshTables, TABLES_EVERY);
  }

  // ---- the message view ---------------------------------------------------------------------
  function showSearchError(text) {
    const p = $("#search-error");
    p.textContent = text;
    p.hidden = !text;
  }

  const DETAILS = ["smtp_code", "smtp_status", "text", "reason", "attempts", "next_attempt_at", "until", "url", "machine", "why", "revenue", "event", "feedback_type", "topic"];

  function detailText(details) {
    const said = [];
    for (const name of DETAILS) {
      if (details[name] === undefined || details[name] === null || details[name] === "") continue;
      const value = name.endsWith("_at") || name === "until" ? when(details[name]) : details[name];
      said.push(`${name.replaceAll("_", " ")} ${value}`);
    }
    return said.join(" · ");
  }

  async function showTimeline(key) {
    try {
      const body = await getJSON(`/admin/messages/${encodeURIComponent(key)}`);
      const m = body.message;
      $("#timeline-title").textContent = `${m.template} to ${m.email || m.contact_id} — ${m.status}${m.message_id ? ` — ${m.message_id}` : ""}`;
      const items = body.events.map((ev) => {
        const li = document.createElement("li");
        const t = document.createElement("time");
        t.textContent = when(ev.at, true);
        const what = document.createElement("span");
        what.className = "what";
        what.textContent = ev.event;
        const details = document.createElement("span");
        details.className = "details";
        details.textContent = detailText(ev.details);
        li.append(t, what, details);
        return li;
      });
      $("#timeline-events").replaceChildren(...items);
      $("#timeline").hidden = false;
      showSearchError(items.length ? "" : "no lifecycle event of this message is in the log");
    } catch (error) {
      if (!(error instanceof Refused)) showSearchError(error.message);
    }
  }

  async function search(event) {
    event.preventDefault();
    const q = $("#q").value.trim();
    $("#timeline").hidden = true;
    if (!q) {
      showSearchError("type a contact id, an email address or a Message-ID");
      return;
    }
    try {
      const body = await getJSON(`/admin/messages?q=${encodeURIComponent(q)}`);
      const rows = body.messages.map((m) => {
        const tr = document.createElement("tr");
        const open = document.createElement("button");
        open.type = "button";
        open.className = "link";
        open.textContent = "timeline";
        open.addEventListener("click", () => showTimeline(m.key));
        return cells(tr, [when(m.created_at), m.template, m.campaign || m.journey || "", m.email, m.status, m.message_id, open]);
      });
      $("#found tbody").replaceChildren(...rows);
      $("#found").hidden = !rows.length;
      showSearchError(rows.length ? "" : "the contact has no message yet");
      if (body.found === "message" && rows.length) await showTimeline(body.messages[0].key);
    } catch (error) {
      if (error instanceof Refused) return;
      $("#found").hidden = true;
      showSearchError(error.message);
    }
  }

  $("#search").addEventListener("submit", search);
  refreshLive();
  refreshTables();
})();
