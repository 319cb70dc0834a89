// engage operator dashboard: draws what the feed sends (see engage/dashboard/feed.py for the messages).
"use strict";

(() => {
  const E = Engage;
  const WINDOW_S = 120;     // seconds of trace on screen
  const KEEP_S = 300;       // seconds of trace kept in memory
  const COLORS = {
    hr: "#ff6b6b", tonic: "#4dabf7", phasic: "#91a7ff", arousal: "#ff922b", boredom: "#845ef7",
    attention: "#51cf66", confidence: "#adb5bd", onscreen: "#51cf66", blink: "#ffd43b",
  };
  const state = {
    origin: null, now: null,
    series: {},           // key -> {channels, t: [], v: [[...]]}
    blinks: [], events: [], plans: [], status: null, dirty: true,
  };
  const $ = (id) => document.getElementById(id);

  if (E.token) $("player-link").href = "/player?token=" + encodeURIComponent(E.token);

  function col(key, name) {
    const s = state.series[key];
    return s ? s.channels.indexOf(name) : -1;
  }
  function latest(key, name) {
    const s = state.series[key], i = col(key, name);
    if (!s || i < 0) return null;
    for (let k = s.v.length - 1; k >= 0; k--) {
      const x = s.v[k][i];
      if (x !== null && x !== undefined) return x;
    }
    return null;
  }
  function since(t) { return state.origin === null ? t : t - state.origin; }
  function nowT() {
    if (state.now !== null) return state.now;
    let m = null;
    for (const s of Object.values(state.series)) if (s.t.length) m = Math.max(m === null ? -Infinity : m, s.t[s.t.length - 1]);
    return m;
  }

  // ------------------------------------------------------------------ messages
  function onMessage(m) {
    // the feed's time zero (its first sample) comes with every message; the first one known is kept
    if (state.origin === null && m.origin !== null && m.origin !== undefined) state.origin = m.origin;
    switch (m.kind) {
      case "snapshot": return onSnapshot(m);
      case "series": return onSeries(m);
      case "event": return onEvent(m.event, true);
      case "plan": return onPlan(m.plan, true);
      case "status": return onStatus(m);
      default: return;
    }
  }
  function onSnapshot(m) {
    state.origin = m.origin; state.now = m.now;
    state.series = {};
    for (const [key, s] of Object.entries(m.series || {})) state.series[key] = { channels: s.channels, t: s.t.slice(), v: s.v.slice() };
    state.blinks = (m.blinks || []).slice();
    state.events = []; $("events").textContent = "";
    for (const e of m.events || []) onEvent(e, false);
    state.plans = (m.plans || []).slice();
    renderScenes();
    if (m.status) onStatus(m.status);
    renderValues();
    state.dirty = true;
  }
  function onSeries(m) {
    let s = state.series[m.series];
    if (!s) s = state.series[m.series] = { channels: m.channels, t: [], v: [] };
    const last = s.t.length ? s.t[s.t.length - 1] : -Infinity;
    for (let i = 0; i < m.t.length; i++) {
      if (m.t[i] < last) continue;  // already seen (a snapshot overlapping a message)
      s.t.push(m.t[i]); s.v.push(m.v[i]);
    }
    trim(s);
    if (m.blinks) for (const b of m.blinks) state.blinks.push(b);
    while (state.blinks.length > 500) state.blinks.shift();
    renderValues();
    state.dirty = true;
  }
  function trim(s) {
    if (!s.t.length) return;
    const cut = s.t[s.t.length - 1] - KEEP_S;
    let k = 0;
    while (k < s.t.length && s.t[k] < cut) k++;
    if (k) { s.t.splice(0, k); s.v.splice(0, k); }
  }
  function onStatus(m) {
    if (m.now !== null && m.now !== undefined) state.now = m.now;
    if (m.origin !== null && m.origin !== undefined && state.origin === null) state.origin = m.origin;
    state.status = m;
    $("clock").textContent = E.clock(state.now !== null ? since(state.now) : null) + (m.ended ? " (ended)" : "");
    renderSensors();
    renderNext();
    renderViewers();
    state.dirty = true;
  }

  // ------------------------------------------------------------------ viewers (several in one session)
  // one card per viewer, the group's first: its values, its on-states and a sparkline of the last two minutes
  function renderViewers() {
    const list = (state.status && state.status.viewers) || [];
    const lead = state.status ? state.status.lead : null;
    const person = state.status ? state.status.person : null;
    $("lead").textContent = lead && list.length ? (lead === "group" ? "— the group" : "— " + lead)
      + (person && person !== lead ? " (signals below: " + person + ")" : "") : "";
    $("panel-viewers").classList.toggle("hidden", !list.length);
    const people = list.filter((v) => !v.group).length;
    $("viewer-count").textContent = list.length ? people + " viewer" + (people === 1 ? "" : "s") : "";
    const box = $("viewers");
    for (const v of list) {
      let card = box.querySelector('.viewer-card[data-viewer="' + CSS.escape(v.viewer) + '"]');
      if (!card) {
        card = E.el("div", "viewer-card" + (v.group ? " group" : ""));
        card.dataset.viewer = v.viewer;
        card.append(E.el("h3", "", v.group ? "group" : v.viewer), E.el("div", "values"), E.el("div", "flags"),
          E.el("canvas", "spark"));
      }
      box.append(card);  // (again: keeps the cards in the feed's order)
      const vals = card.querySelector(".values");
      vals.textContent = "";
      for (const k of ["arousal", "boredom", "attention", "confidence"]) {
        const span = E.el("span", "v " + k, k.slice(0, 3) + " " + E.fmt(v[k], 2));
        span.dataset.key = k;
        vals.append(span);
      }
      if (v.group && v.viewers !== undefined) {
        vals.append(E.el("span", "v present", E.fmt(v.present, 0) + " of " + E.fmt(v.viewers, 0) + " present"),
          E.el("span", "v bored-share", "bored " + (v.bored_share === null ? "–" : Math.round(v.bored_share * 100) + " %")));
      }
      const flags = card.querySelector(".flags");
      flags.textContent = "";
      for (const f of v.flags) flags.append(E.el("span", "flag", f));
      spark(card.querySelector("canvas"), v.trace, v.t);
    }
  }
  function spark(canvas, trace, t1) {
    const { ctx, w, h } = setup(canvas);
    if (!trace.length || t1 === null) return;
    const X = (t) => (t - (t1 - WINDOW_S)) / WINDOW_S * w, Y = (y) => h - 2 - y * (h - 4);
    ["arousal", "boredom", "attention"].forEach((k, j) => {
      ctx.strokeStyle = COLORS[k]; ctx.lineWidth = 1.2; ctx.beginPath();
      let on = false;
      for (const [t, vals] of trace) {
        const y = vals[j];
        if (y === null) { on = false; continue; }
        if (on) ctx.lineTo(X(t), Y(y)); else { ctx.moveTo(X(t), Y(y)); on = true; }
      }
      ctx.stroke();
    });
  }

  // ------------------------------------------------------------------ values and gauges
  function renderValues() {
    const hr = latest("hr", "hr_bpm");
    $("hr-value").textContent = E.fmt(hr, 0);
    $("hr-quality").textContent = E.fmt(latest("hr", "quality"), 2);
    $("hr-beats").textContent = state.series.hr ? state.series.hr.t.length : 0;
    $("eda-value").textContent = E.fmt(latest("eda", "tonic_us"), 2);
    $("eda-quality").textContent = E.fmt(latest("eda", "quality"), 2);
    const on = latest("face", "on_screen");
    $("onscreen-value").textContent = on === null ? "–" : Math.round(on * 100) + " %";
    const fp = latest("face", "face_present");
    $("face-value").textContent = fp === null ? "–" : (fp >= 0.5 ? "yes" : "no");
    $("blink-rate-value").textContent = E.fmt(latest("face", "blink_rate"), 1);
    $("perclos-value").textContent = E.fmt(latest("face", "perclos"), 2);
    $("blink-count").textContent = state.blinks.length;
    for (const key of ["arousal", "boredom", "attention", "confidence"]) {
      const x = latest("engagement", key);
      $(key + "-value").textContent = E.fmt(x, 2);
      const fill = document.querySelector('.gauge[data-key="' + key + '"] .fill');
      fill.style.width = x === null ? "0%" : Math.max(0, Math.min(1, x)) * 100 + "%";
    }
    const conf = latest("engagement", "confidence");
    document.querySelectorAll(".gauge:not([data-key=confidence]) .fill").forEach((f) => {
      f.style.opacity = conf === null ? 0.3 : 0.35 + 0.65 * Math.max(0, Math.min(1, conf));
    });
    const gx = latest("gaze", "gaze_x"), gy = latest("gaze", "gaze_y");
    const dot = $("gaze-dot");
    if (gx === null || gy === null) dot.classList.add("hidden");
    else {
      dot.classList.remove("hidden");
      // gaze_x/gaze_y are in screen units (0..1 on screen); the outer box shows a margin around it
      dot.style.left = (15 + 70 * Math.max(-0.2, Math.min(1.2, gx))) + "%";
      dot.style.top = (15 + 70 * Math.max(-0.2, Math.min(1.2, gy))) + "%";
      dot.classList.toggle("off", latest("gaze", "gaze_on_screen") === 0);
    }
  }

  // ------------------------------------------------------------------ events
  const FLAGS = { "boredom.onset": ["bored", true], "boredom.offset": ["bored", false], "arousal.high": ["aroused", true],
    "arousal.low": ["aroused", false], "attention.lost": ["attention lost", true], "attention.regained": ["attention lost", false] };
  const activeFlags = {};
  function summary(e) {
    const ev = e.evidence || {};
    if (e.type === "sensor.gap") return (ev.stream || "?") + " " + E.fmt(ev.duration_s, 1) + " s" + (ev.reason ? " (" + ev.reason + ")" : "");
    if (e.type === "scene.start") return (ev.title || ev.scene || "") + (ev.reason ? " - " + ev.reason : "");
    if (ev.reason) return String(ev.reason);
    const parts = [];
    for (const [k, v] of Object.entries(ev)) if (typeof v === "number" || typeof v === "string") parts.push(k + " " + (typeof v === "number" ? E.fmt(v, 2) : v));
    return parts.slice(0, 4).join(", ");
  }
  function onEvent(e, live) {
    state.events.push(e);
    if (FLAGS[e.type]) { activeFlags[FLAGS[e.type][0]] = FLAGS[e.type][1]; renderFlags(); }
    const li = E.el("li", "ev " + e.type.replace(/\./g, "-"));
    li.dataset.type = e.type;
    li.append(E.el("span", "t", E.clock(since(e.timestamp))), E.el("b", "", e.type),
      E.el("span", "conf", E.fmt(e.confidence, 2)), E.el("span", "why", summary(e)));
    const list = $("events");
    list.prepend(li);
    while (list.children.length > 200) list.lastChild.remove();
    $("event-count").textContent = state.events.length + " so far";
    if (e.type === "sensor.gap") renderSensors();
  }
  function renderFlags() {
    const box = $("state-flags"); box.textContent = "";
    for (const [name, on] of Object.entries(activeFlags)) if (on) box.append(E.el("span", "flag", name));
    if (!box.children.length) box.append(E.el("span", "flag calm", "no active state"));
  }

  // ------------------------------------------------------------------ scenes
  function onPlan(p, live) {
    state.plans.push(p);
    while (state.plans.length > 50) state.plans.shift();
    renderScenes();
  }
  function renderScenes() {
    const p = state.plans[state.plans.length - 1];
    const title = $("scene-title");
    if (!p) return;
    title.textContent = p.title + (p.episode > 1 ? "  (episode " + p.episode + ")" : "");
    title.dataset.scene = p.scene;
    $("scene-time").textContent = "since " + E.clock(since(p.timestamp)) + " for " + E.fmt(p.duration_s, 0) + " s · p = " + E.fmt(p.probability, 2);
    $("scene-reason").textContent = p.reason;
    const chips = $("scene-directives"); chips.textContent = "";
    for (const [k, v] of Object.entries(p.directives || {})) chips.append(E.el("span", "chip", k.replace(/_/g, " ") + ": " + (typeof v === "number" ? E.fmt(v, 2) : v)));
    if (p.rewritten) chips.append(E.el("span", "chip ai", "rewritten by " + (p.rewritten_by || "?") + (p.ai_generated ? " (AI)" : "")));
    const up = $("upcoming"); up.textContent = "";
    if (p.upcoming && p.upcoming.length) {
      for (const o of p.upcoming) {
        const li = E.el("li", "", o.title);
        li.dataset.scene = o.scene;
        li.append(E.el("span", "muted", " intensity " + E.fmt(o.intensity, 2) + (o.tone ? ", " + o.tone : "")));
        up.append(li);
      }
    } else up.append(E.el("li", "muted", p.last ? "an ending" + (p.ending ? ": " + p.ending : "") : "chosen when this scene ends"));
    if (p.alternatives && p.alternatives.length) up.append(E.el("li", "muted", "passed over now: " + p.alternatives.join(", ")));
    renderNext();
    const list = $("decisions"); list.textContent = "";
    for (const d of state.plans.slice().reverse()) {
      const li = E.el("li");
      li.append(E.el("span", "t", E.clock(since(d.timestamp))), E.el("b", "", d.title), E.el("span", "why", d.reason));
      list.append(li);
    }
  }
  function renderNext() {
    const p = state.plans[state.plans.length - 1];
    if (!p || p.decision_at === null || p.decision_at === undefined) return;
    const left = state.now === null ? null : p.decision_at - state.now;
    $("next-time").textContent = "decided at " + E.clock(since(p.decision_at)) + (left !== null && left > 0 ? " (in " + Math.ceil(left) + " s)" : "");
  }

  // ------------------------------------------------------------------ sensors
  function renderSensors() {
    const body = document.querySelector("#sensors tbody");
    if (!state.status) return;
    body.textContent = "";
    for (const s of state.status.streams) {
      const tr = E.el("tr", s.sensor ? "sensor" : "derived");
      tr.dataset.stream = s.name;
      const stale = s.age_s !== null && s.age_s > Math.max(3, s.nominal_rate ? 5 / s.nominal_rate : 5);
      if (stale) tr.classList.add("stale");
      const rate = s.rate === null ? "–" : E.fmt(s.rate, s.rate < 10 ? 1 : 0) + (s.nominal_rate ? " / " + E.fmt(s.nominal_rate, 0) : "") + " Hz";
      tr.append(E.el("td", "", s.name), E.el("td", "", s.type + (s.sensor ? "" : " (derived)")), E.el("td", "", rate),
        E.el("td", "age", s.age_s === null ? "–" : E.fmt(s.age_s, 1) + " s ago"),
        E.el("td", s.gaps ? "gaps" : "", s.gaps ? s.gaps + " (" + E.fmt(s.gap_s, 1) + " s)" : "none"));
      body.append(tr);
    }
    const note = state.status.unmatched_gaps ? state.status.unmatched_gaps + " gaps on streams not seen yet" : "";
    $("feed-note").textContent = note;
  }

  // ------------------------------------------------------------------ charts
  function setup(canvas) {
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }
  // lines: [{key, channel, color, scale, fixed}]; range: [lo, hi] or null for automatic
  function chart(canvas, lines, range, t1, marks) {
    const { ctx, w, h } = setup(canvas);
    const pad = { l: 34, r: 6, t: 6, b: 16 };
    const t0 = t1 - WINDOW_S;
    let lo = Infinity, hi = -Infinity;
    const pts = lines.map((ln) => {
      const s = state.series[ln.key], i = col(ln.key, ln.channel), out = [];
      if (!s || i < 0) return out;
      const qi = ln.quality ? col(ln.key, ln.quality) : -1;
      for (let k = 0; k < s.t.length; k++) {
        if (s.t[k] < t0) continue;
        const y = s.v[k][i];
        if (y === null || y === undefined) { out.push(null); continue; }
        const yy = y * (ln.scale || 1), q = qi >= 0 ? s.v[k][qi] : 1;
        out.push([s.t[k], yy, q === null || q === undefined ? 0 : q]);
        if (!ln.noRange) { lo = Math.min(lo, yy); hi = Math.max(hi, yy); }
      }
      return out;
    });
    if (range) { lo = range[0]; hi = range[1]; }
    if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-6) { lo -= 1; hi += 1; }
    const m = (hi - lo) * 0.08; if (!range) { lo -= m; hi += m; }
    const X = (t) => pad.l + (t - t0) / (t1 - t0) * (w - pad.l - pad.r);
    const Y = (y) => h - pad.b - (y - lo) / (hi - lo) * (h - pad.t - pad.b);
    ctx.strokeStyle = "#2c313a"; ctx.fillStyle = "#8a93a3"; ctx.lineWidth = 1; ctx.font = "10px sans-serif";
    for (let g = 0; g <= 2; g++) {
      const y = lo + (hi - lo) * g / 2, py = Y(y);
      ctx.beginPath(); ctx.moveTo(pad.l, py); ctx.lineTo(w - pad.r, py); ctx.stroke();
      ctx.fillText(Math.abs(hi - lo) < 5 ? y.toFixed(2) : y.toFixed(0), 2, py + 3);
    }
    for (let s = 0; s <= WINDOW_S; s += 30) {
      const px = X(t1 - s);
      ctx.fillText(s ? "-" + s + "s" : "now", px - (s ? 12 : 18), h - 3);
    }
    if (marks) {
      ctx.strokeStyle = COLORS.blink; ctx.lineWidth = 1.5;
      for (const [t] of marks) if (t >= t0) { ctx.beginPath(); ctx.moveTo(X(t), pad.t); ctx.lineTo(X(t), pad.t + 10); ctx.stroke(); }
    }
    // a line is drawn in its colour where the signal's quality is at least 0.5, in grey where it is not
    lines.forEach((ln, j) => {
      ctx.lineWidth = 1.6;
      let prev = null;
      for (const p of pts[j]) {
        if (p === null) { prev = null; continue; }
        if (prev !== null) {
          ctx.strokeStyle = Math.min(prev[2], p[2]) >= 0.5 ? ln.color : "#5c6370";
          ctx.beginPath(); ctx.moveTo(X(prev[0]), Y(prev[1])); ctx.lineTo(X(p[0]), Y(p[1])); ctx.stroke();
        }
        prev = p;
      }
    });
  }
  function draw() {
    if (state.dirty) {
      state.dirty = false;
      const t1 = nowT();
      if (t1 !== null) {
        chart($("chart-hr"), [{ key: "hr", channel: "hr_bpm", color: COLORS.hr, quality: "quality" }], null, t1);
        chart($("chart-eda"), [{ key: "eda", channel: "tonic_us", color: COLORS.tonic, quality: "quality" },
          { key: "eda", channel: "phasic_us", color: COLORS.phasic, scale: 5, noRange: true, quality: "quality" }], null, t1);
        chart($("chart-face"), [{ key: "face", channel: "on_screen", color: COLORS.onscreen }], [0, 1.05], t1, state.blinks);
        chart($("chart-engagement"), ["arousal", "boredom", "attention", "confidence"].map((k) => ({ key: "engagement", channel: k, color: COLORS[k], quality: k === "confidence" ? null : "quality" })), [0, 1], t1);
      }
    }
    requestAnimationFrame(draw);
  }
  window.addEventListener("resize", () => { state.dirty = true; });
  renderFlags();
  requestAnimationFrame(draw);

  E.connect(null, onMessage, (s) => {
    const c = $("conn"); c.textContent = s; c.dataset.state = s.split(" ")[0];
  });
})();
