"use strict";
// Every value from the API goes through textContent or setAttribute, never
// through HTML parsing: alert fields (scenarios, sources) are
// attacker-influenced.

const SVG = "http://www.w3.org/2000/svg";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fillTable(id, rows, cells) {
  const tbody = document.querySelector("#" + id + " tbody");
  const ncols = document.querySelectorAll("#" + id + " thead th").length;
  const frag = document.createDocumentFragment();
  if (!rows || rows.length === 0) {
    const tr = el("tr");
    const td = el("td", "none", "muted");
    td.colSpan = ncols;
    tr.appendChild(td);
    frag.appendChild(tr);
  }
  for (const r of rows || []) {
    const tr = el("tr");
    for (const c of cells(r)) {
      if (c !== null && typeof c === "object") {
        const td = el("td", c.text, c.cls);
        if (c.title) td.title = c.title;
        tr.appendChild(td);
      } else {
        tr.appendChild(el("td", c));
      }
    }
    frag.appendChild(tr);
  }
  tbody.replaceChildren(frag);
}

function duration(sec) {
  if (sec <= 0) return "0s";
  const d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600);
  const m = Math.floor(sec % 3600 / 60), s = Math.floor(sec % 60);
  if (d) return d + "d" + h + "h";
  if (h) return h + "h" + m + "m";
  if (m) return m + "m" + s + "s";
  return s + "s";
}

// Fixed locale: the page must read the same whatever the browser's language.
const NUM = new Intl.NumberFormat("en-US");

// count is a whole number; null means the component never reported it.
function count(n) {
  if (n === null || n === undefined) return { text: "\u2013", cls: "num muted", title: "not reported" };
  return { text: NUM.format(n), cls: "num" };
}

function bytes(n) {
  if (n === null || n === undefined) return count(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return { text: (u === 0 ? String(v) : v.toFixed(1)) + " " + units[u], cls: "num", title: NUM.format(n) + " bytes" };
}

function when(iso) {
  if (!iso) return "never";
  const t = new Date(iso);
  return isNaN(t) ? "" : t.toLocaleString();
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

// The SVG scales with the page width (CSS height: auto), so its text scales
// with it and stays readable on wide screens.
function drawChart(start, counts) {
  const W = 900, H = 170, top = 16, bottom = 20;
  const svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "alerts per hour" });
  const max = Math.max(1, ...counts);
  const bw = W / Math.max(1, counts.length);
  const t0 = new Date(start);
  svg.appendChild(svgEl("line", { x1: 0, x2: W, y1: H - bottom + 0.5, y2: H - bottom + 0.5, class: "axis" }));
  counts.forEach((n, i) => {
    const h = (H - top - bottom) * n / max;
    const hour = new Date(t0.getTime() + i * 3600e3);
    const r = svgEl("rect", { x: i * bw + 1, y: H - bottom - h, width: bw - 2, height: h });
    r.appendChild(svgEl("title", {}, hour.toLocaleString() + ": " + n));
    svg.appendChild(r);
    if (n > 0) {
      svg.appendChild(svgEl("text", { x: i * bw + bw / 2, y: H - bottom - h - 3, "text-anchor": "middle" }, n));
    }
    // Count back from the newest bar so the current hour is labelled.
    if ((counts.length - 1 - i) % 3 === 0) {
      const label = String(hour.getHours()).padStart(2, "0") + "h";
      svg.appendChild(svgEl("text", { x: i * bw + bw / 2, y: H - 5, "text-anchor": "middle" }, label));
    }
  });
  document.getElementById("chart").replaceChildren(svg);
}

// What each origin means to a person; unknown ones show as they are.
function originKind(o) {
  if (o === "crowdsec" || o.startsWith("crowdsec/")) return "local detection";
  if (o === "cscli" || o === "cscli-import") return "manual";
  if (o === "CAPI") return "community";
  if (o === "lists") return "lists";
  if (o === "console") return "console";
  return "";
}

function originText(o) {
  const k = originKind(o);
  return k && k !== o ? o + " (" + k + ")" : o;
}

// countsText is "ban 3, captcha 1": a count per type or per scope.
function countsText(counts) {
  return Object.entries(counts || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([t, n]) => t + " " + NUM.format(n)).join(", ");
}

// The decision list's filter, sent with every refresh: "" for all, or an
// origin, or "lists" and a list name.
const filter = { origin: "", list: "" };

function filterKey(origin, list) {
  return JSON.stringify([origin, list]);
}

// fillFilter offers every origin and list that has active decisions, and
// keeps the current choice even when its decisions are gone.
function fillFilter(origins) {
  const sel = document.getElementById("dfilter");
  const opts = [{ key: filterKey("", ""), text: "all origins" }];
  for (const o of origins || []) {
    opts.push({ key: filterKey(o.origin, ""), text: originText(o.origin) + ": " + NUM.format(o.count) });
    for (const l of o.lists || []) {
      opts.push({ key: filterKey(o.origin, l.name), text: "\u2003" + l.name + ": " + NUM.format(l.count) });
    }
  }
  const cur = filterKey(filter.origin, filter.list);
  if (!opts.some((o) => o.key === cur)) {
    opts.push({ key: cur, text: (filter.list || originText(filter.origin)) + ": 0" });
  }
  sel.replaceChildren(...opts.map((o) => {
    const e = el("option", o.text);
    e.value = o.key;
    return e;
  }));
  sel.value = cur;
}

// One row per origin, then one per list of origin lists.
function originRows(origins) {
  const rows = [];
  for (const o of origins || []) {
    rows.push({ name: originText(o.origin), count: o.count, types: o.types, scopes: o.scopes });
    for (const l of o.lists || []) rows.push({ name: l.name, count: l.count, types: l.types, scopes: l.scopes, sub: true });
  }
  return rows;
}

function render(s) {
  drawChart(s.hour_start, s.alerts_per_hour || []);
  fillTable("scenarios", s.top_scenarios, (r) => [r.name, { text: r.count, cls: "num" }]);
  fillTable("sources", s.top_sources, (r) => [r.name, { text: r.count, cls: "num" }]);
  const origins = s.decision_origins || [];
  fillTable("origins", originRows(origins), (r) => [
    { text: r.name, cls: r.sub ? "sub" : "" }, { text: NUM.format(r.count), cls: "num" }, countsText(r.types), countsText(r.scopes),
  ]);
  const total = origins.reduce((a, o) => a + o.count, 0);
  document.getElementById("ocount").textContent = "(" + NUM.format(total) + ")";
  fillFilter(origins);
  fillTable("decisions", s.decisions, (d) => [
    d.value, d.scope, d.simulated ? d.type + " (simulated)" : d.type, d.scenario, originText(d.origin),
    { text: duration(d.expires_in), cls: "num", title: "until " + when(d.until) },
  ]);
  const n = (s.decisions || []).length;
  document.getElementById("dcount").textContent = "(" + n + (s.decisions_truncated ? ", newest only" : "") + ")";
  fillTable("bouncers", s.bouncers, (b) => [
    b.revoked ? b.name + " (revoked)" : b.name, b.ip, b.type, b.version, when(b.last_pull),
    count(b.dropped_packets), bytes(b.dropped_bytes),
  ]);
  // One row per source; an agent that reported no source still gets a row
  // so that it shows as alive.
  const sources = [];
  for (const a of s.agents || []) {
    const srcs = a.sources || [];
    if (srcs.length === 0) sources.push({ agent: a, src: null });
    for (const src of srcs) sources.push({ agent: a, src: src });
    if (a.sources_truncated) sources.push({ agent: a, src: null, more: true });
  }
  fillTable("agents", sources, (r) => {
    const name = r.agent.version ? r.agent.machine + " (" + r.agent.version + ")" : r.agent.machine;
    if (!r.src) {
      return [name, { text: r.more ? "more sources not shown" : "no source reported", cls: "muted" },
        count(null), count(null), count(null), when(r.agent.last_report)];
    }
    return [name, r.src.type + ":" + r.src.source, count(r.src.read), count(r.src.parsed), count(r.src.unparsed),
      when(r.agent.last_report)];
  });
  fillTable("notifications", s.notifications, (n) => [
    n.name, n.type, count(n.sent), count(n.failed), count(n.dropped), count(n.queued), count(n.retrying), when(n.last_sent),
    n.last_error ? { text: when(n.last_error_at) + ": " + n.last_error, title: n.last_error } : { text: "none", cls: "muted" },
  ]);
  // Every notification's recent messages, newest first.
  const recent = [];
  for (const n of s.notifications || []) {
    for (const d of n.recent || []) recent.push({ name: n.name, d: d });
  }
  recent.sort((a, b) => (a.d.at < b.d.at ? 1 : a.d.at > b.d.at ? -1 : 0));
  fillTable("deliveries", recent, (r) => [
    when(r.d.at), r.name, count(r.d.alerts), count(r.d.attempts),
    r.d.error ? { text: "failed: " + r.d.error, cls: "bad", title: r.d.error } : { text: "sent", cls: "good" },
  ]);
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function refresh() {
  const banner = document.getElementById("error");
  try {
    const q = new URLSearchParams();
    if (filter.origin) q.set("origin", filter.origin);
    if (filter.list) q.set("list", filter.list);
    const qs = q.toString();
    const resp = await fetch("/ui/api/summary" + (qs ? "?" + qs : ""), { cache: "no-store", credentials: "same-origin" });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    render(await resp.json());
    banner.hidden = true;
  } catch (e) {
    banner.textContent = "Cannot load data from the LAPI: " + e.message;
    banner.hidden = false;
  }
}

document.getElementById("dfilter").addEventListener("change", (e) => {
  [filter.origin, filter.list] = JSON.parse(e.target.value);
  refresh();
});
refresh();
setInterval(refresh, 10000);
