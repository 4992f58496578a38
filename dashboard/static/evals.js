// psi0 eval page: runs, per-task success with Wilson 95 % intervals, per-episode video and action curves.
// Every piece of text from the server enters the page as a text node (el() below), never as markup.
"use strict";
const main = document.getElementById("main");
const COLORS = ["#3b6ef5", "#e8833a", "#2e9d6a", "#d9534f", "#8e5fd0", "#1fa2b8", "#b5873a"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? "–" : String(c)));
  return node;
}
const pct = (x) => (x === null || x === undefined) ? "–" : (100 * x).toFixed(0) + " %";
const num = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x)) ? "–" : Number(x).toFixed(d);
const ci = (c) => Array.isArray(c) ? `[${pct(c[0])}, ${pct(c[1])}]` : "–";

async function api(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function successBar(rate, interval) {
  const cv = el("canvas", {class: "cibar", width: "160", height: "14"});
  const ctx = cv.getContext("2d");
  ctx.fillStyle = "#e3e6ec"; ctx.fillRect(0, 5, 160, 4);
  if (Array.isArray(interval)) { ctx.fillStyle = "#9fb6f9"; ctx.fillRect(160 * interval[0], 2, 160 * (interval[1] - interval[0]), 10); }
  if (rate !== null && rate !== undefined) { ctx.fillStyle = "#1d2330"; ctx.fillRect(160 * rate - 1, 0, 2, 14); }
  return cv;
}

function runsTable(runs) {
  const table = el("table", {class: "grid"},
    el("thead", {}, el("tr", {}, ...["run", "policy", "task", "success", "95 % CI (Wilson)", "", "episodes", "chunk jump",
      "jerk", "latency p50 / p99 ms", "RTC"].map((h) => el("th", {}, h)))));
  const body = el("tbody");
  for (const r of runs) {
    if (r.error) { body.append(el("tr", {}, el("td", {}, r.name), el("td", {colspan: "10"}, r.error))); continue; }
    const tasks = Object.entries(r.tasks || {});
    tasks.forEach(([task, t], k) => {
      const link = el("a", {href: `#/run/${r.run}`}, r.name);
      body.append(el("tr", {},
        el("td", {}, k === 0 ? link : ""), el("td", {}, k === 0 ? r.policy : ""), el("td", {}, task),
        el("td", {}, pct(t.success_rate)), el("td", {}, ci(t.ci95)), el("td", {}, successBar(t.success_rate, t.ci95)),
        el("td", {}, `${t.successes}/${t.episodes}`), el("td", {}, num(t.mean_chunk_switch_jump, 3)),
        el("td", {}, num(t.mean_jerk, 0)), el("td", {}, `${num(t.mean_latency_ms_p50, 0)} / ${num(t.mean_latency_ms_p99, 0)}`),
        el("td", {}, r.rtc === null || r.rtc === undefined ? "–" : (r.rtc ? "on" : "naive"))));
    });
  }
  table.append(body);
  return table;
}

function plotCurves(curves, part) {
  const cv = el("canvas", {class: "curve", width: "640", height: "160"});
  const ctx = cv.getContext("2d"), w = 640, h = 160, pad = 6;
  const t = curves.t, series = curves[part] || {}, names = Object.keys(series);
  let lo = Infinity, hi = -Infinity;
  for (const n of names) for (const v of series[n]) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!Number.isFinite(lo)) { lo = -1; hi = 1; } if (hi === lo) { hi += 1; lo -= 1; }
  const t1 = t[t.length - 1] || 1;
  const X = (x) => pad + (w - 2 * pad) * x / t1, Y = (y) => h - pad - (h - 2 * pad) * (y - lo) / (hi - lo);
  names.forEach((n, j) => {
    ctx.strokeStyle = COLORS[j % COLORS.length]; ctx.lineWidth = 1.2; ctx.beginPath();
    series[n].forEach((v, k) => (k ? ctx.lineTo(X(t[k]), Y(v)) : ctx.moveTo(X(t[k]), Y(v))));
    ctx.stroke();
  });
  ctx.fillStyle = "#6b7385"; ctx.font = "10px system-ui";
  ctx.fillText(num(hi), 2, 10); ctx.fillText(num(lo), 2, h - 2);
  return el("figure", {}, el("figcaption", {}, part), cv);
}

async function episodeView(run, ep, holder) {
  holder.replaceChildren(el("h3", {}, `${ep.task} · seed ${ep.seed} · ${ep.success ? "success" : "failure"}`));
  if (ep.video) {
    holder.append(el("video", {src: `/evalvideo/${run}/${encodeURIComponent(ep.video)}`, controls: "", width: "480"}));
  }
  if (ep.curves) {
    const data = await api(`/api/evals/${run}/curves/${encodeURIComponent(ep.curves)}`);
    for (const part of ["right_arm", "left_arm", "right_hand", "lower_body"]) holder.append(plotCurves(data.curves, part));
  }
}

async function runView(run) {
  const [runs, eps] = await Promise.all([api("/api/evals"), api(`/api/evals/${run}/episodes`)]);
  const r = runs.find((x) => x.run === run);
  const holder = el("div", {class: "episode"});
  const table = el("table", {class: "grid"}, el("thead", {}, el("tr", {}, ...["task", "seed", "success", "steps",
    "wall s", "chunk jump", "jerk", "latency p50/p99", "late", "underruns", "grasp assist", "video"].map((h) => el("th", {}, h)))));
  const body = el("tbody");
  for (const ep of eps) {
    const row = el("tr", {class: ep.success ? "ok" : "fail", onclick: () => episodeView(run, ep, holder)},
      el("td", {}, ep.task), el("td", {}, ep.seed), el("td", {}, ep.success ? "✓" : "✗"), el("td", {}, ep.steps),
      el("td", {}, num(ep.wall_s, 1)), el("td", {}, num(ep.chunk_switch_jump, 3)), el("td", {}, num(ep.jerk, 0)),
      el("td", {}, `${num(ep.latency_ms_p50, 0)} / ${num(ep.latency_ms_p99, 0)}`), el("td", {}, ep.late),
      el("td", {}, ep.underruns), el("td", {}, ep.grasp_assist ? "on" : "off"), el("td", {}, ep.video ? "▶" : ""));
    body.append(row);
  }
  table.append(body);
  main.replaceChildren(el("p", {}, el("a", {href: "#/"}, "← all runs")), el("h2", {}, r ? `${r.name} — ${r.policy}` : `run ${run}`),
    r ? runsTable([r]) : "", el("h3", {}, "episodes (click one)"), table, holder);
}

async function route() {
  const m = location.hash.match(/^#\/run\/(\d+)$/);
  try {
    if (m) { await runView(Number(m[1])); return; }
    const runs = await api("/api/evals");
    main.replaceChildren(el("h2", {}, "evaluation runs"),
      runs.length ? runsTable(runs) : el("p", {class: "muted"}, "no eval runs under the --evals roots"));
  } catch (e) {
    main.replaceChildren(el("div", {class: "error"}, String(e.message || e)));
  }
}
window.addEventListener("hashchange", route);
route();
