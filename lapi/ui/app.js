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
      tr.appendChild(typeof c === "object" ? el("td", c.text, c.cls) : el("td", c));
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

function when(iso) {
  if (!iso) return "never";
  const t = new Date(iso);
  return isNaN(t) ? "" : t.toLocaleString();
}

function drawChart(start, counts) {
  const W = 720, H = 160, top = 14, bottom = 18;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.setAttribute("role", "img");
  const max = Math.max(1, ...counts);
  const bw = W / counts.length;
  const t0 = new Date(start);
  counts.forEach((n, i) => {
    const h = (H - top - bottom) * n / max;
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", String(i * bw + 1));
    r.setAttribute("y", String(H - bottom - h));
    r.setAttribute("width", String(bw - 2));
    r.setAttribute("height", String(h));
    const hour = new Date(t0.getTime() + i * 3600e3);
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = hour.toLocaleString() + ": " + n;
    r.appendChild(tip);
    svg.appendChild(r);
    if (n > 0) {
      const v = document.createElementNS(SVG, "text");
      v.setAttribute("x", String(i * bw + bw / 2));
      v.setAttribute("y", String(H - bottom - h - 3));
      v.setAttribute("text-anchor", "middle");
      v.textContent = String(n);
      svg.appendChild(v);
    }
    if (i % 3 === 0) {
      const l = document.createElementNS(SVG, "text");
      l.setAttribute("x", String(i * bw + bw / 2));
      l.setAttribute("y", String(H - 4));
      l.setAttribute("text-anchor", "middle");
      l.textContent = String(hour.getHours()).padStart(2, "0") + "h";
      svg.appendChild(l);
    }
  });
  document.getElementById("chart").replaceChildren(svg);
}

function render(s) {
  drawChart(s.hour_start, s.alerts_per_hour || []);
  fillTable("scenarios", s.top_scenarios, (r) => [r.name, { text: r.count, cls: "num" }]);
  fillTable("sources", s.top_sources, (r) => [r.name, { text: r.count, cls: "num" }]);
  fillTable("decisions", s.decisions, (d) => [
    d.value, d.scope, d.simulated ? d.type + " (simulated)" : d.type, d.scenario, d.origin, duration(d.expires_in),
  ]);
  const n = (s.decisions || []).length;
  document.getElementById("dcount").textContent = "(" + n + (s.decisions_truncated ? ", newest only" : "") + ")";
  fillTable("bouncers", s.bouncers, (b) => [
    b.revoked ? b.name + " (revoked)" : b.name, b.ip, b.type, b.version, when(b.last_pull),
  ]);
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function refresh() {
  const banner = document.getElementById("error");
  try {
    const resp = await fetch("/ui/api/summary", { cache: "no-store", credentials: "same-origin" });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    render(await resp.json());
    banner.hidden = true;
  } catch (e) {
    banner.textContent = "Cannot load data from the LAPI: " + e.message;
    banner.hidden = false;
  }
}

refresh();
setInterval(refresh, 10000);
