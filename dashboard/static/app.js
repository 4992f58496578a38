// psi0 dashboard front end: plain JS, no build step. Hash routes: #/ #/episodes #/episode/<id> #/rejects
// Every value that comes from the API goes into the page through esc() (or textContent): data on disk is
// untrusted, and a number field may hold a string. fmt() only ever yields digits, signs, "." "," "–" "NaN".
"use strict";
const $main = document.getElementById("main");
const COLORS = ["#3b6ef5", "#e8833a", "#2e9d6a", "#d9534f", "#8e5fd0", "#1fa2b8", "#b5873a", "#d45fa8"];
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const fmt = (x, d = 3) => (x === null || x === undefined || Number.isNaN(Number(x))) ? "–" : (Math.abs(x) >= 1000 ? Math.round(Number(x)).toLocaleString() : Number(x).toFixed(d));
const count = (x) => esc(typeof x === "number" ? x.toLocaleString() : x);
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

function histogram(cv, h, i) {
  const [ctx, w, hh] = setupCanvas(cv, 26), counts = h.counts[i] || [], max = Math.max(1e-9, ...counts);
  const bw = (w - 2) / Math.max(1, counts.length);
  ctx.fillStyle = h.source === "grid" ? "#3b6ef5" : "#9aa7c2";
  counts.forEach((c, k) => { const bh = (hh - 2) * c / max; ctx.fillRect(1 + k * bw, hh - 1 - bh, Math.max(1, bw - 1), bh); });
}
// FAST chunk: every dim's H steps side by side, normalised by the tokenizer's q01/q99 (so one y axis fits all)
function chunkPlot(cv, c) {
  const [ctx, w, h] = setupCanvas(cv, 170), pad = 6, H = c.horizon, D = c.dims, seg = (w - 2 * pad) / D;
  const norm = (v, d) => { const lo = c.q01[d], hi = c.q99[d]; return hi > lo ? 2 * (v - lo) / (hi - lo) - 1 : 0; };
  const X = (d, k) => pad + d * seg + (H > 1 ? (k / (H - 1)) * seg * 0.85 : seg * 0.42) + seg * 0.05;
  const Y = (y) => h / 2 - (h / 2 - pad) * Math.max(-1.2, Math.min(1.2, y)) / 1.2;
  ctx.strokeStyle = "#eef0f4"; ctx.lineWidth = 1;
  for (let d = 0; d <= D; d++) { ctx.beginPath(); ctx.moveTo(pad + d * seg, 0); ctx.lineTo(pad + d * seg, h); ctx.stroke(); }
  ctx.beginPath(); ctx.moveTo(0, Y(0)); ctx.lineTo(w, Y(0)); ctx.stroke();
  const draw = (m, color, dash) => {
    if (!m) return; ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 1.6; ctx.setLineDash(dash);
    for (let d = 0; d < D; d++) {
      ctx.beginPath(); let pen = false;
      for (let k = 0; k < H; k++) { const v = m[k][d]; if (v === null) { pen = false; continue; } const x = X(d, k), y = Y(norm(v, d)); pen ? ctx.lineTo(x, y) : ctx.moveTo(x, y); pen = true; if (H === 1) ctx.fillRect(x - 2, y - 2, 4, 4); }
      ctx.stroke();
    }
    ctx.setLineDash([]);
  };
  draw(c.truth, "#1d2330", []); draw(c.decoded, "#e8833a", [4, 3]);
}
function drawOverlay(cv, ov, f, video) {
  const w = video.clientWidth, h = video.clientHeight;
  if (cv.width !== Math.round(w) || cv.height !== Math.round(h)) { cv.width = Math.round(w); cv.height = Math.round(h); cv.style.width = w + "px"; cv.style.height = h + "px"; }
  const ctx = cv.getContext("2d"); ctx.clearRect(0, 0, cv.width, cv.height);
  const s = Math.min(w / ov.width, h / ov.height), ox = (w - ov.width * s) / 2, oy = (h - ov.height * s) / 2;
  const colors = {left: "#2ee6a6", right: "#ff5a8a"};
  for (const [side, frames] of Object.entries(ov.hands)) {
    const p = frames[Math.min(f, frames.length - 1)]; if (!p) continue;
    const P = (j) => (p[2 * j] === null || p[2 * j + 1] === null) ? null : [ox + p[2 * j] * s, oy + p[2 * j + 1] * s];
    ctx.strokeStyle = colors[side] || "#fff"; ctx.fillStyle = ctx.strokeStyle; ctx.lineWidth = 2;
    for (const [a, b] of ov.edges) { const A = P(a), B = P(b); if (!A || !B) continue; ctx.beginPath(); ctx.moveTo(...A); ctx.lineTo(...B); ctx.stroke(); }
    for (let j = 0; j < 25; j++) { const A = P(j); if (A) { ctx.beginPath(); ctx.arc(A[0], A[1], 2.5, 0, 7); ctx.fill(); } }
  }
}
const SKIP_STATS = new Set(["timestamp", "timestamp.source", "frame_index", "episode_index", "index", "task_index"]);

// ---- views -------------------------------------------------------------------------------------
async function overview() {
  const o = await api("/api/overview");
  const card = (k, v) => `<div class="card"><div class="v">${esc(v)}</div><div class="k">${esc(k)}</div></div>`;
  const rej = Object.entries(o.rejects_by_reason);
  let statsHtml = "";
  for (const [feat, s] of Object.entries(o.stats)) {
    if (SKIP_STATS.has(feat.split(":").pop()) || feat.includes("token")) continue;
    const names = o.names[feat] || (s.mean || []).map((_, i) => `${feat}[${i}]`);
    const lo = Math.min(...(s.min || [0])), hi = Math.max(...(s.max || [1]));
    statsHtml += `<tr><th colspan="7" style="padding-top:14px"><code>${esc(feat)}</code></th></tr>` + (s.mean || []).map((m, i) =>
      `<tr><td class="mono">${esc(names[i])}</td><td class="num">${fmt(m)}</td><td class="num">${fmt((s.std || [])[i])}</td>
       <td class="num">${fmt((s.min || [])[i])}</td><td class="num">${fmt((s.max || [])[i])}</td>
       <td style="width:28%"><canvas class="qbar" data-feat="${esc(feat)}" data-i="${i}" data-lo="${esc(lo)}" data-hi="${esc(hi)}" style="width:100%"></canvas></td>
       <td style="width:18%"><canvas class="hist" data-feat="${esc(feat)}" data-i="${i}" style="width:100%"></canvas></td></tr>`).join("");
  }
  $main.innerHTML = `${o.errors.map(errorPanel).join("")}
    <div class="cards">${card("sources", Object.keys(o.sources).length)}${card("shards", o.shards.length)}${card("episodes", count(o.episodes))}
      ${card("frames", count(o.frames))}${card("hours", fmt(o.hours, 2))}${card("tasks", Object.keys(o.tasks).length)}${card("rejected", count(o.rejected))}</div>
    <div class="grid2">
      <div class="panel"><h3>Rejects by reason</h3><canvas id="rejchart" style="width:100%"></canvas>
        <table>${rej.map(([k, v]) => `<tr class="click" data-reason="${esc(k)}"><td>${esc(k)}</td><td class="num">${esc(v)}</td></tr>`).join("")}</table></div>
      <div class="panel"><h3>Shards</h3><table><tr><th>shard</th><th>source</th><th>format</th><th class="num">episodes</th><th class="num">frames</th><th class="num">fps</th></tr>
        ${o.shards.map((s) => `<tr><td><code>${esc(s.shard_id)}</code>${s.error ? errorPanel(s.error) : ""}</td><td>${esc(s.source)}</td><td>${esc(s.format)}</td><td class="num">${esc(s.episodes)}</td><td class="num">${esc(s.frames)}</td><td class="num">${esc(s.fps ?? "–")}</td></tr>`).join("")}</table>
        <h3 style="margin-top:16px">Tasks</h3><table>${Object.entries(o.tasks).slice(0, 20).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num">${esc(v)}</td></tr>`).join("")}</table></div>
    </div>
    <div class="panel"><h3>Per-dimension statistics</h3><p class="muted">quantiles: min–max line, q01–q99 light, q10–q90 dark, median tick · histogram over [min, max] from the shards' quantile grids (grey: from the catalog's 5 quantiles only)</p>
      <table id="stats"><tr><th>dim</th><th class="num">mean</th><th class="num">std</th><th class="num">min</th><th class="num">max</th><th>quantiles</th><th>histogram</th></tr>${statsHtml}</table></div>`;
  barChart(document.getElementById("rejchart"), rej);
  document.querySelectorAll("canvas.qbar").forEach((cv) => quantileBar(cv, o.stats[cv.dataset.feat], +cv.dataset.i, +cv.dataset.lo, +cv.dataset.hi));
  document.querySelectorAll("tr[data-reason]").forEach((tr) => tr.onclick = () => location.hash = "#/rejects?reason=" + encodeURIComponent(tr.dataset.reason));
  const hs = await api("/api/histograms");
  document.querySelectorAll("canvas.hist").forEach((cv) => { const h = hs[cv.dataset.feat]; if (h) { histogram(cv, h, +cv.dataset.i); cv.title = `${h.source}: ${h.counts[+cv.dataset.i].length} bins`; } });
}

async function episodes(params) {
  const o = await api("/api/overview");
  const p = new URLSearchParams(params); p.set("limit", p.get("limit") || "50");
  const list = await api("/api/episodes?" + p);
  const opt = (vals, cur) => `<option value="">all</option>` + vals.map((v) => `<option ${v === cur ? "selected" : ""}>${esc(v)}</option>`).join("");
  const off = +(p.get("offset") || 0), lim = +p.get("limit");
  $main.innerHTML = `<h2>Episodes <span class="muted">(${count(list.total)})</span></h2>
    <div class="filters">source <select id="f-source">${opt(Object.keys(o.sources), p.get("source"))}</select>
      task <select id="f-task">${opt(Object.keys(o.tasks), p.get("task"))}</select>
      status <select id="f-status">${opt(["ingested", "rejected"], p.get("status"))}</select>
      <input id="f-q" placeholder="search id / task" value="${esc(p.get("q") || "")}">
      score <select id="f-score"><option value="">–</option>${(o.quality_keys || []).map((k) => `<option ${k === p.get("score") ? "selected" : ""}>${esc(k)}</option>`).join("")}</select>
      ≥ <input id="f-min" type="number" step="any" style="width:80px" value="${esc(p.get("min_score") || "")}">
      <select id="f-sort">${[["", "catalog order"], ["-score", "score ↓"], ["score", "score ↑"]].map(([v, l]) => `<option value="${v}" ${v === (p.get("sort") || "") ? "selected" : ""}>${l}</option>`).join("")}</select>
      <button id="prev" ${off <= 0 ? "disabled" : ""}>‹ prev</button><span class="muted">${esc(off + 1)}–${esc(Math.min(off + lim, list.total))}</span>
      <button id="next" ${off + lim >= list.total ? "disabled" : ""}>next ›</button></div>
    <div class="panel"><table id="eplist"><tr><th>input</th><th>status</th><th>source</th><th>task</th><th>shard</th><th class="num">episode</th><th class="num">frames</th>${p.get("score") ? `<th class="num">${esc(p.get("score"))}</th>` : ""}<th>reason</th></tr>
      ${list.items.map((r) => `<tr class="click" data-id="${esc(r.id)}"><td class="mono">${esc(r.source_id)}</td><td><span class="pill ${esc(r.status)}">${esc(r.status)}</span></td><td>${esc(r.source)}</td>
        <td>${esc(r.task)}</td><td class="mono">${esc(r.shard)}</td><td class="num">${esc(r.episode_index >= 0 ? r.episode_index : "")}</td><td class="num">${esc(r.frames || "")}</td>${p.get("score") ? `<td class="num score">${fmt(r.score)}</td>` : ""}<td>${esc(r.reason)}</td></tr>`).join("")}</table></div>`;
  const go = (o2) => { const q = new URLSearchParams(p); for (const [k, v] of Object.entries(o2)) v === "" ? q.delete(k) : q.set(k, v); location.hash = "#/episodes?" + q; };
  for (const k of ["source", "task", "status"]) document.getElementById("f-" + k).onchange = (e) => go({[k]: e.target.value, offset: 0});
  document.getElementById("f-q").onchange = (e) => go({q: e.target.value, offset: 0});
  document.getElementById("f-score").onchange = (e) => go({score: e.target.value, offset: 0});
  document.getElementById("f-min").onchange = (e) => go({min_score: e.target.value, offset: 0});
  document.getElementById("f-sort").onchange = (e) => go({sort: e.target.value, offset: 0});
  document.getElementById("prev").onclick = () => go({offset: Math.max(0, off - lim)});
  document.getElementById("next").onclick = () => go({offset: off + lim});
  document.querySelectorAll("#eplist tr[data-id]").forEach((tr) => tr.onclick = () => location.hash = "#/episode/" + encodeURIComponent(tr.dataset.id));
}

async function episode(id) {
  let e;
  try { e = await api("/api/episode?id=" + encodeURIComponent(id)); }
  catch (err) { $main.innerHTML = `<h2>${esc(id)}</h2>` + errorPanel(err); return; }
  const r = e.row;
  const kv = (o) => `<table class="kv">${Object.entries(o).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="mono">${esc(typeof v === "object" ? JSON.stringify(v) : (typeof v === "number" && !Number.isInteger(v) ? fmt(v, 4) : v))}</td></tr>`).join("")}</table>`;
  if (e.rejected) { $main.innerHTML = `<h2>${esc(r.source_id)} <span class="pill rejected">rejected</span></h2><div class="panel">${kv(r)}</div>`; return; }
  const plots = [];
  const plotBox = (feat, part, series, cls) => {
    const k = plots.length; plots.push([series, Object.keys(series)]);
    return `<div class="plotbox"><div class="title"><code>${esc(feat)}</code> · <b>${esc(part)}</b> <span class="legend">${Object.keys(series).map((n, j) => `<span><i style="background:${COLORS[j % COLORS.length]}"></i>${esc(n)}</span>`).join("")}</span></div><canvas class="plot ${cls}" id="plot${k}"></canvas></div>`;
  };
  let plotHtml = "", residHtml = "";
  for (const [feat, parts] of Object.entries(e.groups)) for (const [part, series] of Object.entries(parts)) plotHtml += plotBox(feat, part, series, "");
  for (const [feat, parts] of Object.entries(e.residuals || {})) for (const [part, series] of Object.entries(parts)) residHtml += plotBox(feat, part, series, "residual");
  const q = e.quality || {}, qa = e.hand_qa || {};
  const p95 = Object.entries(q).filter(([k]) => k.startsWith("retarget.") && k.endsWith(".p95"));
  const qaHtml = Object.keys(qa).length ? `<div class="qa" id="handqa"><b>MediaPipe hand QA</b>: detection rate <b>${fmt(qa["hand_qa.detection_rate"], 2)}</b> · mean error <b>${fmt(qa["hand_qa.mean_px_error"], 1)} px</b> (${fmt(100 * (qa["hand_qa.mean_error_frac"] ?? NaN), 1)} % of diagonal) · label agreement ${fmt(qa["hand_qa.label_agreement"], 2)} · ${fmt(qa["hand_qa.pairs"], 0)} hand-frames</div>` : "";
  const cams = e.videos.map((v, k) => `<div class="cam"><div class="vwrap">${`<video ${k === 0 ? 'id="video"' : ""} class="camvideo" data-k="${k}" src="${esc(v.url)}" muted playsinline ${k === 0 ? "controls" : ""} preload="auto"></video>`}${k === 0 && e.overlay ? `<canvas id="overlay"></canvas>` : ""}</div><div class="muted"><code>${esc(v.key)}</code> ${esc(v.width)}×${esc(v.height)}</div></div>`).join("");
  $main.innerHTML = `<h2>${esc(r.source_id)} <span class="pill ingested">ingested</span> <span class="muted">${esc(r.task)}</span> ${e.format === "zarr" ? `<span class="pill zarr">zarr</span>` : ""}</h2>
    ${qaHtml}
    <div class="episode"><div>
      <div class="panel">${e.videos.length ? `<div class="cams n${Math.min(e.videos.length, 3)}">${cams}</div>
        <div class="muted" id="vtime">t = 0.00 s · frame 0 / ${esc(e.length)}</div>
        ${e.overlay ? `<label class="muted"><input type="checkbox" id="ovtoggle" checked> hand keypoints (projected, <span style="color:#2ee6a6">left</span> / <span style="color:#ff5a8a">right</span>)</label>` : ""}` : `<p class="muted">no video</p>`}</div>
      ${e.tokens ? `<div class="panel" style="margin-top:12px" id="tokpanel"><h3>FAST tokens of the current chunk</h3>
        <div class="muted" id="tokinfo">…</div><div class="mono" id="tokids"></div>
        <canvas id="tokplot" style="width:100%"></canvas>
        <div class="legend"><span><i style="background:#1d2330"></i>true chunk</span><span><i style="background:#e8833a"></i>decoded tokens</span> <span class="muted">(each dim's steps side by side, normalised to q01..q99)</span></div></div>` : ""}
      <div class="panel" style="margin-top:12px"><h3>Episode</h3>${kv({format: e.format, shard: r.shard, episode_index: r.episode_index, frames: e.length, fps: e.fps, ...e.meta})}
        ${Object.keys(q).length ? `<h3 style="margin-top:12px">Quality</h3><div id="quality">${kv(q)}</div>` : ""}
        <h3 style="margin-top:12px">Catalog entry</h3>${kv(e.input)}</div>
    </div><div>
      ${residHtml ? `<div class="panel" id="residuals" style="margin-bottom:12px"><h3>Retargeting residuals</h3>${p95.length ? `<p class="muted">p95: ${p95.map(([k, v]) => `${esc(k.slice(9, -4))} ${fmt(v, 4)}`).join(" · ")}</p>` : ""}${residHtml}</div>` : ""}
      <div class="panel" id="plots">${plotHtml || `<p class="muted">no numeric features</p>`}</div></div></div>`;
  const cursors = plots.map(([series, names], k) => linePlot(document.getElementById("plot" + k), e.timestamp, series, names));
  // tokens: one request in flight, always for the latest frame wanted
  let tokWant = -1, tokHave = -1, tokBusy = false;
  const loadTokens = async () => {
    if (tokBusy || tokWant === tokHave) return;
    tokBusy = true; const f = tokWant;
    try {
      const c = await api(`/api/tokens?id=${encodeURIComponent(id)}&frame=${f}`);
      tokHave = f;
      document.getElementById("tokinfo").textContent = `frame ${c.frame} · ${c.ids.length} tokens → ${c.horizon}×${c.dims} (${c.column})${c.valid ? "" : " · MALFORMED"} · max |decoded − true| ${fmt(c.max_abs_error, 4)} (bound ${fmt(Math.max(...c.error_bound), 4)})`;
      document.getElementById("tokids").textContent = c.ids.join(" ");
      chunkPlot(document.getElementById("tokplot"), c);
    } catch (err) { tokHave = f; const el = document.getElementById("tokinfo"); if (el) el.innerHTML = errorPanel(err); }
    tokBusy = false; loadTokens();
  };
  const videos = [...document.querySelectorAll("video.camvideo")];
  const video = videos[0], ov = document.getElementById("overlay"), ovt = document.getElementById("ovtoggle");
  let lastF = -1;
  const setT = (t) => {
    const f = Math.min(e.length - 1, Math.max(0, Math.round(t * e.fps)));
    cursors.forEach((c) => c(t));
    const vt = document.getElementById("vtime"); if (vt) vt.textContent = `t = ${t.toFixed(2)} s · frame ${f} / ${e.length}`;
    if (ov && video) { if (ovt && !ovt.checked) ov.getContext("2d").clearRect(0, 0, ov.width, ov.height); else drawOverlay(ov, e.overlay, f, video); }
    if (e.tokens && f !== lastF) { tokWant = f; loadTokens(); }
    lastF = f;
  };
  setT(0);
  if (!video) return;
  const spans = e.videos.map((v) => [v.from_timestamp || 0, v.to_timestamp ?? Infinity]);
  const [t0, t1] = spans[0];
  // an episode that is its whole file loops natively; one inside a longer file is rewound by tick()
  videos.forEach((v, k) => v.addEventListener("loadedmetadata", () => {
    v.loop = spans[k][0] <= 1e-3 && spans[k][1] >= v.duration - 0.5 / (e.fps || 30);
    v.currentTime = spans[k][0]; if (k === 0) video.play().catch(() => {});
  }, {once: true}));
  // followers mirror the first camera's play state and are re-seeked when they drift by > half a frame
  const follow = () => videos.slice(1).forEach((v, j) => {
    const want = video.currentTime - t0 + spans[j + 1][0];
    if (Math.abs(v.currentTime - want) > 0.5 / (e.fps || 30)) v.currentTime = want;
    if (video.paused !== v.paused) video.paused ? v.pause() : v.play().catch(() => {});
  });
  let raf = 0;
  const tick = () => {
    // loop inside this episode's span (a per-episode file simply ends: rewind and play on)
    if (!video.loop && video.currentTime >= t1 - 1e-3) video.currentTime = t0;
    setT(Math.max(0, video.currentTime - t0)); follow(); raf = requestAnimationFrame(tick);
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
  $main.innerHTML = `<h2>Rejected inputs <span class="muted">(${count(list.total)}${p.get("reason") ? ` · reason ${esc(p.get("reason"))} · <a href="#/rejects">all</a>` : ""})</span></h2>
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
