// psi0 dashboard front end: plain JS, no build step. Hash routes: #/ #/episodes #/episode/<id> #/rejects
"use strict";
const $main = document.getElementById("main");
const COLORS = ["#3b6ef5", "#e8833a", "#2e9d6a", "#d9534f", "#8e5fd0", "#1fa2b8", "#b5873a", "#d45fa8"];
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const fmt = (x, d = 3) => (x === null || x === undefined || Number.isNaN(x)) ? "–" : (Math.abs(x) >= 1000 ? Math.round(x).toLocaleString() : Number(x).toFixed(d));
let cleanup = [];

async function api(path) {
  const r = await fetch(path);
  const body = await r.json().catch(() => ({error: {kind: "bad_response", message: r.statusText}}));
  if (!r.ok) throw body.error || {kind: String(r.status), message: body.detail || r.statusText};
  return body;
}
function errorPanel(e) { return `<div class="error"><b>${esc(e.kind || "error")}</b>: ${esc(e.message || e)}${e.shard ? ` (shard <code>${esc(e.shard)}</code>)` : ""}</div>`; }

// ---- canvas helpers ----------------------------------------------------------------------------
function setupCanvas(cv, h) {
  const dpr = window.devicePixelRatio || 1, w = cv.clientWidth || 600;
  cv.width = w * dpr; cv.height = h * dpr; cv.style.height = h + "px";
  const ctx = cv.getContext("2d"); ctx.scale(dpr, dpr); return [ctx, w, h];
}
function barChart(cv, entries) {
  const rowH = 24, [ctx, w, h] = setupCanvas(cv, Math.max(40, entries.length * rowH + 10));
  const max = Math.max(1, ...entries.map((e) => e[1])), lab = 150;
  ctx.font = "12px system-ui"; ctx.textBaseline = "middle";
  entries.forEach(([k, v], i) => {
    const y = 5 + i * rowH, bw = (w - lab - 50) * v / max;
    ctx.fillStyle = "#1d2330"; ctx.fillText(k, 4, y + rowH / 2 - 2);
    ctx.fillStyle = "#d9534f"; ctx.fillRect(lab, y + 3, bw, rowH - 10);
    ctx.fillStyle = "#6b7385"; ctx.fillText(String(v), lab + bw + 6, y + rowH / 2 - 2);
  });
  if (!entries.length) { ctx.fillStyle = "#6b7385"; ctx.fillText("no rejects 🎉", 4, 20); }
}
function quantileBar(cv, s, i, lo, hi) {
  const [ctx, w, h] = setupCanvas(cv, 18), X = (v) => 2 + (w - 4) * (v - lo) / ((hi - lo) || 1);
  const g = (k) => (s[k] || [])[i];
  ctx.fillStyle = "#e3e6ec"; ctx.fillRect(X(g("min")), 8, X(g("max")) - X(g("min")), 2);
  ctx.fillStyle = "#c5d3fb"; ctx.fillRect(X(g("q01")), 5, X(g("q99")) - X(g("q01")), 8);
  ctx.fillStyle = "#7f9ff7"; ctx.fillRect(X(g("q10")), 3, X(g("q90")) - X(g("q10")), 12);
  ctx.fillStyle = "#1d2330"; ctx.fillRect(X(g("q50")) - 1, 1, 2, 16);
}
function linePlot(cv, t, series, names) {
  const [ctx, w, h] = setupCanvas(cv, 150), pad = 4;
  let lo = Infinity, hi = -Infinity;
  for (const n of names) for (const v of series[n]) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!Number.isFinite(lo)) { lo = -1; hi = 1; } if (hi === lo) { hi += 1; lo -= 1; }
  const t0 = t[0] ?? 0, t1 = t[t.length - 1] ?? 1;
  const X = (x) => pad + (w - 2 * pad) * (x - t0) / ((t1 - t0) || 1), Y = (y) => h - pad - (h - 2 * pad) * (y - lo) / (hi - lo);
  ctx.strokeStyle = "#eef0f4"; ctx.lineWidth = 1;
  for (let k = 0; k <= 4; k++) { const y = pad + k * (h - 2 * pad) / 4; ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke(); }
  names.forEach((n, j) => {
    ctx.strokeStyle = COLORS[j % COLORS.length]; ctx.lineWidth = 1.5; ctx.beginPath();
    let pen = false;
    series[n].forEach((v, k) => { if (v === null) { pen = false; return; } const x = X(t[k]), y = Y(v); pen ? ctx.lineTo(x, y) : ctx.moveTo(x, y); pen = true; });
    ctx.stroke();
  });
  ctx.fillStyle = "#6b7385"; ctx.font = "10px system-ui"; ctx.fillText(fmt(hi, 2), 4, 12); ctx.fillText(fmt(lo, 2), 4, h - 6);
  const image = ctx.getImageData(0, 0, cv.width, cv.height);
  return (time) => { // redraw cursor at episode-relative time
    ctx.putImageData(image, 0, 0); const x = X(t0 + time);
    ctx.strokeStyle = "#1d2330"; ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
  };
}

// ---- views -------------------------------------------------------------------------------------
async function overview() {
  const o = await api("/api/overview");
  const card = (k, v) => `<div class="card"><div class="v">${v}</div><div class="k">${k}</div></div>`;
  const rej = Object.entries(o.rejects_by_reason);
  let statsHtml = "";
  for (const [feat, s] of Object.entries(o.stats)) {
    const names = o.names[feat] || (s.mean || []).map((_, i) => `${feat}[${i}]`);
    const lo = Math.min(...(s.min || [0])), hi = Math.max(...(s.max || [1]));
    statsHtml += `<tr><th colspan="6" style="padding-top:14px"><code>${esc(feat)}</code></th></tr>` + (s.mean || []).map((m, i) =>
      `<tr><td class="mono">${esc(names[i])}</td><td class="num">${fmt(m)}</td><td class="num">${fmt((s.std || [])[i])}</td>
       <td class="num">${fmt((s.min || [])[i])}</td><td class="num">${fmt((s.max || [])[i])}</td>
       <td style="width:35%"><canvas class="qbar" data-feat="${esc(feat)}" data-i="${i}" data-lo="${lo}" data-hi="${hi}" style="width:100%"></canvas></td></tr>`).join("");
  }
  $main.innerHTML = `${o.errors.map(errorPanel).join("")}
    <div class="cards">${card("sources", Object.keys(o.sources).length)}${card("shards", o.shards.length)}${card("episodes", o.episodes.toLocaleString())}
      ${card("frames", o.frames.toLocaleString())}${card("hours", fmt(o.hours, 2))}${card("tasks", Object.keys(o.tasks).length)}${card("rejected", o.rejected.toLocaleString())}</div>
    <div class="grid2">
      <div class="panel"><h3>Rejects by reason</h3><canvas id="rejchart" style="width:100%"></canvas>
        <table>${rej.map(([k, v]) => `<tr class="click" data-reason="${esc(k)}"><td>${esc(k)}</td><td class="num">${v}</td></tr>`).join("")}</table></div>
      <div class="panel"><h3>Shards</h3><table><tr><th>shard</th><th>source</th><th>format</th><th class="num">episodes</th><th class="num">frames</th><th class="num">fps</th></tr>
        ${o.shards.map((s) => `<tr><td><code>${esc(s.shard_id)}</code>${s.error ? errorPanel(s.error) : ""}</td><td>${esc(s.source)}</td><td>${esc(s.format)}</td><td class="num">${s.episodes}</td><td class="num">${s.frames}</td><td class="num">${s.fps ?? "–"}</td></tr>`).join("")}</table>
        <h3 style="margin-top:16px">Tasks</h3><table>${Object.entries(o.tasks).slice(0, 20).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num">${v}</td></tr>`).join("")}</table></div>
    </div>
    <div class="panel"><h3>Per-dimension statistics</h3><p class="muted">bar: min–max line, q01–q99 light, q10–q90 dark, median tick</p>
      <table id="stats"><tr><th>dim</th><th class="num">mean</th><th class="num">std</th><th class="num">min</th><th class="num">max</th><th>quantiles</th></tr>${statsHtml}</table></div>`;
  barChart(document.getElementById("rejchart"), rej);
  document.querySelectorAll("canvas.qbar").forEach((cv) => quantileBar(cv, o.stats[cv.dataset.feat], +cv.dataset.i, +cv.dataset.lo, +cv.dataset.hi));
  document.querySelectorAll("tr[data-reason]").forEach((tr) => tr.onclick = () => location.hash = "#/rejects?reason=" + encodeURIComponent(tr.dataset.reason));
}

async function episodes(params) {
  const o = await api("/api/overview");
  const p = new URLSearchParams(params); p.set("limit", p.get("limit") || "50");
  const list = await api("/api/episodes?" + p);
  const opt = (vals, cur) => `<option value="">all</option>` + vals.map((v) => `<option ${v === cur ? "selected" : ""}>${esc(v)}</option>`).join("");
  const off = +(p.get("offset") || 0), lim = +p.get("limit");
  $main.innerHTML = `<h2>Episodes <span class="muted">(${list.total.toLocaleString()})</span></h2>
    <div class="filters">source <select id="f-source">${opt(Object.keys(o.sources), p.get("source"))}</select>
      task <select id="f-task">${opt(Object.keys(o.tasks), p.get("task"))}</select>
      status <select id="f-status">${opt(["ingested", "rejected"], p.get("status"))}</select>
      <input id="f-q" placeholder="search id / task" value="${esc(p.get("q") || "")}">
      <button id="prev" ${off <= 0 ? "disabled" : ""}>‹ prev</button><span class="muted">${off + 1}–${Math.min(off + lim, list.total)}</span>
      <button id="next" ${off + lim >= list.total ? "disabled" : ""}>next ›</button></div>
    <div class="panel"><table id="eplist"><tr><th>input</th><th>status</th><th>source</th><th>task</th><th>shard</th><th class="num">episode</th><th class="num">frames</th><th>reason</th></tr>
      ${list.items.map((r) => `<tr class="click" data-id="${esc(r.id)}"><td class="mono">${esc(r.source_id)}</td><td><span class="pill ${r.status}">${r.status}</span></td><td>${esc(r.source)}</td>
        <td>${esc(r.task)}</td><td class="mono">${esc(r.shard)}</td><td class="num">${r.episode_index >= 0 ? r.episode_index : ""}</td><td class="num">${r.frames || ""}</td><td>${esc(r.reason)}</td></tr>`).join("")}</table></div>`;
  const go = (o2) => { const q = new URLSearchParams(p); for (const [k, v] of Object.entries(o2)) v === "" ? q.delete(k) : q.set(k, v); location.hash = "#/episodes?" + q; };
  for (const k of ["source", "task", "status"]) document.getElementById("f-" + k).onchange = (e) => go({[k]: e.target.value, offset: 0});
  document.getElementById("f-q").onchange = (e) => go({q: e.target.value, offset: 0});
  document.getElementById("prev").onclick = () => go({offset: Math.max(0, off - lim)});
  document.getElementById("next").onclick = () => go({offset: off + lim});
  document.querySelectorAll("#eplist tr[data-id]").forEach((tr) => tr.onclick = () => location.hash = "#/episode/" + encodeURIComponent(tr.dataset.id));
}

async function episode(id) {
  let e;
  try { e = await api("/api/episode?id=" + encodeURIComponent(id)); }
  catch (err) { $main.innerHTML = `<h2>${esc(id)}</h2>` + errorPanel(err); return; }
  const r = e.row;
  const kv = (o) => `<table class="kv">${Object.entries(o).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="mono">${esc(typeof v === "object" ? JSON.stringify(v) : v)}</td></tr>`).join("")}</table>`;
  if (e.rejected) { $main.innerHTML = `<h2>${esc(r.source_id)} <span class="pill rejected">rejected</span></h2><div class="panel">${kv(r)}</div>`; return; }
  const v = e.videos[0];
  const plots = [];
  let plotHtml = "";
  for (const [feat, parts] of Object.entries(e.groups)) for (const [part, series] of Object.entries(parts)) {
    const k = plots.length; plots.push([series, Object.keys(series)]);
    plotHtml += `<div class="plotbox"><div class="title"><code>${esc(feat)}</code> · <b>${esc(part)}</b> <span class="legend">${Object.keys(series).map((n, j) => `<span><i style="background:${COLORS[j % COLORS.length]}"></i>${esc(n)}</span>`).join("")}</span></div><canvas class="plot" id="plot${k}"></canvas></div>`;
  }
  const tokens = Object.entries(e.tokens).map(([k, col]) => `<div><code>${esc(k)}</code> <span class="mono" id="tok-${esc(k)}"></span></div>`).join("");
  $main.innerHTML = `<h2>${esc(r.source_id)} <span class="pill ingested">ingested</span> <span class="muted">${esc(r.task)}</span></h2>
    <div class="episode"><div>
      <div class="panel">${v ? `<video id="video" src="${esc(v.url)}" muted playsinline controls preload="auto"></video>
        <div class="muted" id="vtime">t = 0.00 s · frame 0 / ${e.length}</div>
        <div class="muted">${e.videos.map((x) => `<code>${esc(x.key)}</code> ${fmt(x.from_timestamp, 2)}–${fmt(x.to_timestamp, 2)} s`).join("<br>")}</div>` : `<p class="muted">no video</p>`}</div>
      <div class="panel" style="margin-top:12px"><h3>Episode</h3>${kv({shard: r.shard, episode_index: r.episode_index, frames: e.length, fps: e.fps, ...e.meta})}
        ${Object.keys(e.quality || {}).length ? `<h3 style="margin-top:12px">Quality</h3>${kv(e.quality)}` : ""}
        ${tokens ? `<h3 style="margin-top:12px">Tokens</h3>${tokens}` : ""}
        <h3 style="margin-top:12px">Catalog entry</h3>${kv(e.input)}</div>
    </div><div class="panel" id="plots">${plotHtml || `<p class="muted">no numeric features</p>`}</div></div>`;
  const cursors = plots.map(([series, names], k) => linePlot(document.getElementById("plot" + k), e.timestamp, series, names));
  const setT = (t) => {
    const f = Math.min(e.length - 1, Math.max(0, Math.round(t * e.fps)));
    cursors.forEach((c) => c(t));
    const vt = document.getElementById("vtime"); if (vt) vt.textContent = `t = ${t.toFixed(2)} s · frame ${f} / ${e.length}`;
    for (const [k, col] of Object.entries(e.tokens)) { const el = document.getElementById("tok-" + k); if (el) el.textContent = JSON.stringify(col[f]); }
  };
  setT(0);
  const video = document.getElementById("video");
  if (!video) return;
  const t0 = v.from_timestamp || 0, t1 = v.to_timestamp ?? Infinity;
  video.addEventListener("loadedmetadata", () => { video.currentTime = t0; video.play().catch(() => {}); }, {once: true});
  let raf = 0;
  const tick = () => {
    if (video.currentTime >= t1 - 1e-3) video.currentTime = t0; // loop inside this episode's span
    setT(Math.max(0, video.currentTime - t0)); raf = requestAnimationFrame(tick);
  };
  raf = requestAnimationFrame(tick);
  cleanup.push(() => cancelAnimationFrame(raf));
  document.querySelectorAll("canvas.plot").forEach((cv) => cv.onclick = (ev) => {
    const frac = (ev.offsetX - 4) / (cv.clientWidth - 8); video.currentTime = t0 + frac * (e.length / e.fps);
  });
}

async function rejects(params) {
  const p = new URLSearchParams(params);
  const list = await api("/api/rejects?" + p);
  $main.innerHTML = `<h2>Rejected inputs <span class="muted">(${list.total.toLocaleString()}${p.get("reason") ? ` · reason ${esc(p.get("reason"))} · <a href="#/rejects">all</a>` : ""})</span></h2>
    <div class="panel"><table id="rejlist"><tr><th>input</th><th>stage</th><th>reason</th><th>message</th><th>details</th></tr>
    ${list.items.map((r) => `<tr><td class="mono">${esc(r.source_id)}</td><td>${esc(r.stage)}</td><td><span class="pill rejected">${esc(r.reason)}</span></td><td>${esc(r.message)}</td><td class="mono">${esc(JSON.stringify(r.details))}</td></tr>`).join("")}</table></div>`;
}

// ---- router ------------------------------------------------------------------------------------
async function route() {
  cleanup.forEach((f) => f()); cleanup = [];
  const h = location.hash.slice(1) || "/";
  const [path, query] = h.split("?");
  const nav = path.startsWith("/episode") ? "episodes" : path.startsWith("/rejects") ? "rejects" : "overview";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
  try {
    if (path.startsWith("/episode/")) await episode(decodeURIComponent(path.slice(9)));
    else if (path === "/episodes") await episodes(query || "");
    else if (path === "/rejects") await rejects(query || "");
    else await overview();
  } catch (err) { $main.innerHTML = errorPanel(err); }
}
window.addEventListener("hashchange", route);
api("/api/roots").then((rs) => { document.getElementById("roots").textContent = rs.map((r) => r.path).join(" · "); }).catch(() => {});
route();
