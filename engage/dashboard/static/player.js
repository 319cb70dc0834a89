// engage player: plays the film the controller plans - a clip, a still or a title card per scene, cut or
// crossfaded, graded with the scene's palette; an audio bed per scene whose stems follow the music
// intensity; sound effects; subtitles; the viewer's choices and thought probes; an end card, an idle
// screen between viewers, and a kiosk mode that keeps playing while the server restarts.
// Page options (query string): kiosk=1, overlay=1, endcard=SECONDS, token=… (carried to every request).
"use strict";

(() => {
  const E = Engage;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const KIOSK = params.get("kiosk") === "1";
  const ENDCARD_S = Math.max(2, Number(params.get("endcard")) || 12);
  const WORD_MS = { slow: 150, steady: 90, fast: 45 };
  const KEEP_VIDEOS = 8;                          // preloaded clips kept in memory at most
  const PRELOAD = params.get("preload") !== "0";  // preload=0: fetch each clip when its scene starts (a phone on data)

  const stage = $("stage"), videosBox = $("videos"), stillsBox = $("stills");
  let sess = { now: null, at: 0 };                // session clock: last known time and when it was learnt
  let current = null, currentCues = null, front = null, frontStill = null, mood = { boost: 0, state: "neutral" };
  let sceneTimers = [], revealTimer = null, storyTitle = null, sessionEnded = false, z = 1;
  const pool = new Map();                         // clip URL → <video>, preloaded
  const stillCache = new Map();
  const stats = [];                               // per cut: scene, url, plan → first frame (ms)
  const warned = new Set();
  const failed = new Set();                       // clips the browser could not play: not tried again
  let conn = null, shown = 0;

  if (KIOSK) document.body.classList.add("kiosk");
  if (params.get("fx") === "0") document.body.classList.add("nofx");   // fx=0: no grade layers (a weak device)
  if (params.get("overlay") === "1") $("overlay").hidden = false;

  function sessionNow() {
    return sess.now === null ? null : sess.now + (performance.now() - sess.at) / 1000;
  }
  function learnTime(t) {
    if (t === null || t === undefined || !isFinite(t)) return;
    sess = { now: t, at: performance.now() };
  }
  function later(seconds, fn) {
    const id = setTimeout(fn, Math.max(0, seconds * 1000));
    sceneTimers.push(id);
    return id;
  }
  function untilSession(t) {                      // seconds from now until session time t
    const n = sessionNow();
    return n === null ? 0 : t - n;
  }

  // ---------------------------------------------------------------------------------- messages

  function onMessage(m) {
    if (m.kind === "snapshot") {
      learnTime(m.now);
      if (m.film && m.film.title && !storyTitle) { storyTitle = m.film.title; $("idle-title").textContent = storyTitle; }
      probes.resume(m.probes || []);
      if (m.mood) setMood(m.mood);
      const plans = m.plans || [];
      if (plans.length) show(plans[plans.length - 1], { resume: true });
    } else if (m.kind === "plan") {
      learnTime(m.plan.timestamp);
      const recv = m.wall ? performance.timeOrigin + performance.now() - m.wall * 1000 : null;
      show(m.plan, { wall: m.wall, recv });
    } else if (m.kind === "status") {
      learnTime(m.now);
      if (m.ended) sessionOver();
    } else if (m.kind === "adapt") {
      setMood(m.mood);
    } else if (m.kind === "choice") {
      choiceTaken(m);
    } else if (m.kind === "probe") {
      probes.message(m);
    }
  }

  function mediaError(url, err, scene) {
    const key = url + "|" + (scene || "");
    if (warned.has(key)) return;
    warned.add(key);
    const code = err && err.code ? ["", "aborted", "network", "decode", "unsupported format"][err.code] || String(err.code) : String(err || "error");
    if (conn) conn.send({ op: "media_error", url, error: code, scene: scene || (current && current.scene) || null });
    $("ov-media").textContent = "could not play " + url + " (" + code + ")";
  }

  // ---------------------------------------------------------------------------------- a scene

  function cuesOf(plan) {
    const film = plan.film || {};
    const cues = film.cues || {};
    return {
      headline: cues.headline || plan.title || "", body: cues.body !== undefined ? cues.body : (plan.text || ""),
      speaker: cues.speaker || null, direction: cues.direction || null, video: cues.video || null, image: cues.image || null,
      audio: cues.audio || [], sfx: cues.sfx || [], text: cues.text || "card",
      transition: cues.transition || { type: "crossfade", seconds: 1.2 },
    };
  }

  function show(plan, opts) {
    if (current && plan.timestamp === current.timestamp && plan.scene === current.scene) return;
    shown += 1;
    const first = !current;
    current = plan;
    const film = plan.film || {};
    const cues = cuesOf(plan);
    currentCues = cues;
    if (film.story) storyTitle = film.story;
    sceneTimers.forEach(clearTimeout); sceneTimers = [];
    clearInterval(revealTimer);
    const n = sessionNow();
    const offset = opts.resume && n !== null ? Math.max(0, n - plan.timestamp) : 0;
    const tr = opts.resume || first ? { type: "cut", seconds: 0 } : cues.transition;
    sessionEnded = false;
    stage.dataset.scene = plan.scene;
    stage.dataset.state = "playing";
    stage.dataset.text = cues.text;
    stage.dataset.episode = String(plan.episode || 1);
    $("endcard").hidden = true;
    $("idle").hidden = true;

    // the picture
    if (cues.video && failed.has(cues.video.url)) {
      cues.video = null;                          // known not to play here: the still or the card instead
      if (cues.text === "subtitles") cues.text = "card";
      stage.dataset.text = cues.text;
    }
    if (cues.video) {
      playClip(cues.video, tr, offset, plan, opts.wall, opts.recv);
      hideStill(tr);
      stage.dataset.picture = "video";
    } else {
      stopClip(tr);
      if (cues.image) { showStill(cues.image, tr, plan.duration_s, offset); stage.dataset.picture = "still"; }
      else { hideStill(tr); stage.dataset.picture = "none"; }
    }
    grade(plan);
    // the words
    showText(plan, cues, offset, first || (plan.episode > 1 && plan.evidence && plan.evidence.rule === "restart"));
    // the sound
    setBed(cues.audio, tr, plan);
    for (const s of cues.sfx) if (s.at >= offset - 0.25) sfx(s.url, s.at - offset);
    // what comes next
    offerChoice(plan);
    if (film.ending) later(untilSession(plan.timestamp + plan.duration_s), endCard);
    preload(film.candidates || []);
    overlay(plan, cues);
  }

  // ---------------------------------------------------------------------------------- clips

  function clip(url, scene) {
    let v = pool.get(url);
    if (!v) {
      v = document.createElement("video");
      v.className = "clip";
      v.muted = true;
      v.playsInline = true;
      v.setAttribute("playsinline", "");
      v.setAttribute("aria-hidden", "true");
      v.disablePictureInPicture = true;
      v.preload = "auto";
      v.loop = true;
      v.dataset.url = url;
      v.dataset.scene = scene || "";
      v.addEventListener("error", () => { failed.add(url); mediaError(url, v.error, v.dataset.scene); clipFailed(v); });
      v.src = E.withToken(url);
      videosBox.append(v);
      pool.set(url, v);
    }
    v.lastUsed = performance.now();
    return v;
  }

  function evict(keep) {
    const most = PRELOAD ? KEEP_VIDEOS : 1;
    if (pool.size <= most) return;
    const old = [...pool.values()].filter((v) => v !== front && !v.classList.contains("on") && !keep.has(v.dataset.url))
      .sort((a, b) => a.lastUsed - b.lastUsed);
    for (const v of old.slice(0, pool.size - most)) {
      pool.delete(v.dataset.url);
      v.removeAttribute("src"); v.load(); v.remove();
    }
  }

  function seekTo(v, offset, loop) {
    const apply = () => {
      const d = v.duration;
      if (!isFinite(d) || d <= 0) return;
      v.currentTime = loop ? offset % d : Math.min(offset, Math.max(0, d - 0.05));
    };
    if (v.readyState >= 1) apply(); else v.addEventListener("loadedmetadata", apply, { once: true });
  }

  function playClip(cue, tr, offset, plan, wall, recv) {
    const v = clip(cue.url, plan.scene);
    v.loop = cue.loop !== false;
    v.muted = !sound.on;
    const same = v === front;
    if (same && !offset) return;                  // the same clip runs on under the next scene
    v.dataset.warm = "";
    if (offset > 0) seekTo(v, offset, v.loop);
    else if (!same && v.currentTime > 0) v.currentTime = 0;
    // the cut's delay: from the plan leaving the server (wall) to the frame that first shows the clip (its layer
    // revealed holding a decoded frame: the rendering frame after the reveal), and to the first frame of motion
    const stat = wall ? { scene: plan.scene, url: cue.url, transition: tr.type, received_ms: recv,
                          preloaded: v.readyState >= 2, ms: null, moving_ms: null } : null;
    const since = (t) => Math.round((performance.timeOrigin + t - wall * 1000) * 10) / 10;
    if (stat && "requestVideoFrameCallback" in v) {
      v.requestVideoFrameCallback((t, meta) => { stat.moving_ms = since(meta.presentationTime || t); });
    }
    const p = v.play();
    if (p && p.catch) p.catch((err) => { if (err && err.name === "NotAllowedError") needGesture(); });
    const old = front;
    front = v;
    const reveal = () => {
      swap(v, old, tr, retire);
      if (stat) requestAnimationFrame(() => requestAnimationFrame((t) => {   // the frame after the one painting it
        stat.ms = since(t);
        stats.push(stat);
        $("ov-latency").textContent = Math.round(stat.ms) + " ms (" + tr.type + (stat.preloaded ? ", preloaded" : "") + ")";
      }));
    };
    if (v.readyState >= 2) reveal(); else v.addEventListener("loadeddata", reveal, { once: true });
  }

  // new on top of old: at once (cut) or fading in over it (crossfade); then old is hidden and `done(old)`
  function swap(el, old, tr, done) {
    if (el === old) { el.classList.add("on"); return; }
    el.style.zIndex = String(++z);
    if (tr.type === "cut" || !old || !tr.seconds) {
      el.classList.remove("fading");
      el.style.transitionDuration = "0s";
      el.classList.add("on");
      if (old && old !== front && old !== frontStill) { old.classList.remove("on"); done(old); }
      return;
    }
    el.classList.add("fading");
    el.style.transitionDuration = tr.seconds + "s";
    void el.offsetWidth;                          // start from opacity 0
    el.classList.add("on");
    setTimeout(() => {                            // not a scene timer: a quick next plan must not cancel it
      if (old !== front && old !== frontStill) { old.classList.remove("fading"); old.style.transitionDuration = "0s"; old.classList.remove("on"); done(old); }
    }, tr.seconds * 1000 + 50);
  }

  // a clip the browser cannot play: the scene goes on with its still, or as a title card
  function clipFailed(v) {
    if (pool.get(v.dataset.url) === v) pool.delete(v.dataset.url);
    if (v !== front || !current) { v.remove(); return; }
    front = null;
    v.remove();
    const cues = currentCues, cut = { type: "cut", seconds: 0 };
    const offset = Math.max(0, (sessionNow() || current.timestamp) - current.timestamp);
    if (cues.image) { showStill(cues.image, cut, current.duration_s, offset); stage.dataset.picture = "still"; }
    else stage.dataset.picture = "none";
    if (cues.text === "subtitles") {
      sceneTimers.forEach(clearTimeout); sceneTimers = [];
      showText(current, { ...cues, text: "card" }, offset, false);
      stage.dataset.text = "card";
      offerChoice(current);
      if (current.film && current.film.ending) later(untilSession(current.timestamp + current.duration_s), endCard);
    }
  }

  function stopClip(tr) {
    const old = front;
    front = null;
    if (!old) return;
    old.classList.add("fading");
    old.style.transitionDuration = (tr.type === "cut" ? 0 : tr.seconds) + "s";
    old.classList.remove("on");
    setTimeout(() => { if (old !== front) retire(old); }, (tr.seconds || 0) * 1000 + 100);
  }

  // a clip that has left the screen is let go: the next time it is wanted a fresh element is made (from the
  // browser's cache), which starts at its first frame without a seek
  function retire(v) {
    if (v === front) return;
    if (pool.get(v.dataset.url) === v) pool.delete(v.dataset.url);
    v.pause();
    v.removeAttribute("src");
    v.load();
    v.remove();
  }

  // ---------------------------------------------------------------------------------- stills

  function showStill(cue, tr, duration, offset) {
    const el = document.createElement("div");
    el.className = "still";
    el.style.backgroundImage = 'url("' + E.withToken(cue.url).replace(/"/g, "%22") + '")';
    const motion = ["in", "out", "left", "right"].includes(cue.motion) ? cue.motion : "in";
    el.style.animation = "kb-" + motion + " " + Math.max(4, duration + 4) + "s linear " + (-offset) + "s forwards";
    stillsBox.append(el);
    const img = stillCache.get(cue.url) || new Image();
    if (!stillCache.has(cue.url)) { img.src = E.withToken(cue.url); stillCache.set(cue.url, img); }
    img.addEventListener("error", () => mediaError(cue.url, "image could not be decoded"), { once: true });
    const old = frontStill;
    frontStill = el;
    const reveal = () => swap(el, old, tr, (o) => o.remove());
    if (img.complete && img.naturalWidth) reveal();
    else { img.addEventListener("load", reveal, { once: true }); img.addEventListener("error", () => { el.remove(); if (frontStill === el) frontStill = null; }, { once: true }); }
  }

  function hideStill(tr) {
    const old = frontStill;
    frontStill = null;
    if (!old) return;
    old.classList.add("fading");
    old.style.transitionDuration = (tr.type === "cut" ? 0 : tr.seconds) + "s";
    old.classList.remove("on");
    setTimeout(() => old.remove(), (tr.seconds || 0) * 1000 + 200);
  }

  // a preloaded clip is played for a frame, muted and unseen, then held at its start: its decoder is up
  // and its first frame decoded, so the cut to it shows a frame at once
  function warm(v) {
    if (v === front || v.dataset.warm === "1") return;
    const go = () => {
      if (v === front) return;
      v.dataset.warm = "1";
      v.muted = true;
      const hold = () => { if (v !== front) { v.pause(); v.currentTime = 0; } };
      const p = v.play();
      if ("requestVideoFrameCallback" in v) v.requestVideoFrameCallback(hold); else v.addEventListener("playing", hold, { once: true });
      if (p && p.catch) p.catch(() => { v.dataset.warm = ""; });
    };
    if (v.readyState >= 3) go(); else v.addEventListener("canplay", go, { once: true });
  }

  function preload(candidates) {
    if (!PRELOAD) { evict(new Set()); return; }
    const keep = new Set(front ? [front.dataset.url] : []);
    for (const c of candidates) {
      if (c.video && !failed.has(c.video)) { keep.add(c.video); warm(clip(c.video, c.scene)); }
      if (c.image && !stillCache.has(c.image)) { const img = new Image(); img.src = E.withToken(c.image); stillCache.set(c.image, img); }
      for (const a of c.audio || []) sound.warm(a);
    }
    evict(keep);
    while (stillCache.size > 24) stillCache.delete(stillCache.keys().next().value);
  }

  // ---------------------------------------------------------------------------------- the grade

  function musicLevel() {
    const d = (current && current.directives) || {};
    const base = typeof d.music_intensity === "number" ? d.music_intensity : 0.3;
    return Math.max(0, Math.min(1, base + (mood.boost || 0)));
  }

  // the grade: the palette's colour washed over the picture, saturation and shade following the music
  // intensity and the viewer's mood; the layers ease over seconds (CSS transitions)
  function grade(plan) {
    const d = (plan && plan.directives) || {};
    const pal = E.palette(d.palette);
    const words = String(d.palette || "").toLowerCase();
    const m = musicLevel();
    const muted = /sepia|grey|gray|fog|silver|ash/.test(words) ? 0.45 : 0;
    const dark = /black|night|midnight|storm/.test(words) ? 0.22 : 0;
    const veil = Math.min(0.85, muted + (1 - m) * 0.25 + (mood.state === "overloaded" ? 0.3 : 0) - (mood.state === "bored" ? 0.1 : 0));
    $("wash").style.backgroundColor = pal.accent;
    $("wash").style.opacity = String(Math.min(0.85, 0.3 + 0.3 * m + (mood.state === "bored" ? 0.15 : 0)).toFixed(3));
    $("veil").style.opacity = String(Math.max(0, veil).toFixed(3));
    $("shade").style.opacity = String((dark + (mood.state === "overloaded" ? 0.1 : 0)).toFixed(3));
    stage.style.backgroundColor = pal.background;
    stage.style.color = pal.text;
  }

  function setMood(m) {
    mood = m || { boost: 0, state: "neutral" };
    $("ov-mood").textContent = mood.state + (mood.boost ? " (" + (mood.boost > 0 ? "+" : "") + mood.boost + ")" : "");
    stage.dataset.mood = mood.state;
    if (current) grade(current);
    sound.levels();
  }

  // ---------------------------------------------------------------------------------- words

  function sentences(text) {
    const parts = String(text || "").match(/[^.!?…]+[.!?…]+["'”’)]*|[^.!?…]+$/g) || [];
    const out = [];
    for (let s of parts.map((x) => x.trim()).filter(Boolean)) {
      while (s.length > 90) {                      // long lines break at a comma or a space, never mid-word
        let cut = s.lastIndexOf(", ", 80);
        if (cut < 30) cut = s.lastIndexOf(" ", 80);
        if (cut < 30) break;
        out.push(s.slice(0, cut + 1).trim()); s = s.slice(cut + 1).trim();
      }
      out.push(s);
    }
    return out;
  }

  function showText(plan, cues, offset, opening) {
    const d = plan.directives || {};
    const pacing = WORD_MS[d.pacing] ? d.pacing : "steady";
    const card = $("card"), lower = $("lower-third"), sub = $("subtitle-text");
    card.classList.remove("on"); lower.classList.remove("on"); sub.classList.remove("on");
    $("ai-label").hidden = !plan.ai_generated;
    $("chapter").textContent = opening && storyTitle ? storyTitle : "";
    $("title").textContent = cues.headline;
    if (cues.text === "none") return;
    if (cues.text === "card") {
      const p = $("text"); p.textContent = "";
      const spans = [];
      for (const w of String(cues.body || "").split(/(\s+)/)) {
        if (!w) continue;
        if (/^\s+$/.test(w)) { p.append(document.createTextNode(w)); continue; }
        const s = E.el("span", "w", w); p.append(s); spans.push(s);
      }
      later(opening ? 0.7 : 0.15, () => card.classList.add("on"));   // after the idle screen has gone
      let k = Math.min(spans.length, Math.floor(offset * 1000 / WORD_MS[pacing]));
      spans.slice(0, k).forEach((s) => s.classList.add("on"));
      later(1.2 - Math.min(offset, 1.2), () => {
        revealTimer = setInterval(() => {
          if (k >= spans.length) { clearInterval(revealTimer); return; }
          spans[k++].classList.add("on");
        }, WORD_MS[pacing]);
      });
      return;
    }
    // subtitles over the picture: the headline as a lower third, then the lines, spread over the scene up to
    // its choice (which takes the bottom of the screen)
    $("lower-title").textContent = cues.headline;
    const lines = sentences(cues.body);
    const choice = plan.film && plan.film.choice;
    const start = Math.min(5.0, 0.2 * plan.duration_s);
    const end = Math.max(start + 2, plan.duration_s - (choice ? choice.window_s : 0) - 0.5);
    const off = Math.max(1.8, start - 1.5);       // gone (its 1.4 s fade done) before the first line
    if (offset < off - 0.4) { later(0.6 - offset, () => lower.classList.add("on")); later(off - offset, () => lower.classList.remove("on")); }
    const weights = lines.map((l) => Math.max(28, l.length));
    const total = weights.reduce((a, b) => a + b, 0) || 1;
    let t = start;
    lines.forEach((line, i) => {
      const len = Math.min(7.5, (end - start) * weights[i] / total);
      const from = t, to = t + len - 0.35;
      t += len;
      if (to <= offset) return;
      later(from - offset, () => {
        sub.textContent = "";
        if (cues.speaker) sub.append(E.el("b", "", cues.speaker));
        sub.append(document.createTextNode(line));
        sub.classList.add("on");
      });
      later(to - offset, () => sub.classList.remove("on"));
    });
  }

  // ---------------------------------------------------------------------------------- choices

  let choosing = null;                            // { plan, options, opened } while a choice is on screen

  function offerChoice(plan) {
    const box = $("choice");
    box.hidden = true; box.classList.remove("decided");
    choosing = null;
    const choice = plan.film && plan.film.choice;
    if (!choice || !choice.options || choice.options.length < 2) return;
    const wait = untilSession(choice.opens_at);
    const left = untilSession(choice.closes_at);
    if (left <= 0.3) return;
    later(wait, () => {
      const opts = $("choice-options"); opts.textContent = "";
      choice.options.forEach((o, i) => {
        const b = E.el("button", "", "");
        b.type = "button";
        b.dataset.option = o.id;
        b.append(E.el("kbd", "", String(i + 1)), E.el("span", "label", o.label));
        b.addEventListener("pointerdown", (e) => { e.preventDefault(); pick(o.id, e.pointerType === "touch" ? "touch" : "click"); });
        b.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(o.id, "key"); } });
        opts.append(b);
      });
      const timer = $("choice-timer");
      const remaining = Math.max(0.1, untilSession(choice.closes_at));
      timer.style.transition = "none"; timer.style.transform = "scaleX(" + Math.min(1, remaining / choice.window_s) + ")";
      void timer.offsetWidth;
      timer.style.transition = "transform " + remaining + "s linear"; timer.style.transform = "scaleX(0)";
      box.hidden = false;
      $("lower-third").classList.remove("on"); $("subtitle-text").classList.remove("on");
      choosing = { plan, options: choice.options, opened: performance.now(), picked: null };
      later(remaining, () => { box.hidden = true; choosing = null; });
    });
  }

  function pick(option, via) {
    if (!choosing || choosing.picked) return;
    choosing.picked = option;
    const rt = (performance.now() - choosing.opened) / 1000;
    conn.send({ op: "choose", scene: choosing.plan.scene, at: choosing.plan.timestamp, option, via, response_s: Math.round(rt * 1000) / 1000 });
    mark(option);
  }

  function mark(option) {
    const box = $("choice");
    box.classList.add("decided");
    for (const b of box.querySelectorAll("button")) b.classList.toggle("chosen", b.dataset.option === option);
  }

  function choiceTaken(m) {
    if (!current || m.scene !== current.scene) return;
    if (m.taken) { if (choosing) choosing.picked = m.option; mark(m.option); }
    else if (choosing && choosing.picked === m.option) {   // refused (too late): the film chooses
      choosing.picked = null; $("choice").classList.remove("decided");
      for (const b of $("choice").querySelectorAll("button")) b.classList.remove("chosen");
    }
  }

  // ---------------------------------------------------------------------------------- ends and idling

  function endCard() {
    stage.dataset.state = "ended";
    $("end-title").textContent = storyTitle || (current && cuesOf(current).headline) || "";
    const credits = current && current.film && current.film.credits;
    if (credits) $("end-credits").textContent = credits;
    $("choice").hidden = true;
    $("card").classList.remove("on"); $("subtitle-text").classList.remove("on");
    $("endcard").hidden = false;
    sound.fadeOut(6);
    later(ENDCARD_S, idle);
  }

  function idle() {
    stage.dataset.state = "idle";
    $("idle-title").textContent = storyTitle || "engage";
    $("kicker").textContent = sessionEnded ? "the film has ended" : "the film begins again in a moment";
    $("endcard").hidden = true;
    $("idle").hidden = false;
    stopClip({ type: "crossfade", seconds: 2 });
    hideStill({ type: "crossfade", seconds: 2 });
  }

  function sessionOver() {
    if (sessionEnded) return;
    sessionEnded = true;
    if (current && stage.dataset.state === "playing") {
      const wait = untilSession(current.timestamp + current.duration_s);
      if (!(current.film && current.film.ending)) later(Math.max(0, wait), endCard);
    }
  }

  // ---------------------------------------------------------------------------------- sound

  const sound = (() => {
    let ctx = null, master = null, bed = null, drone = null;
    const warmed = new Map(), buffers = new Map();
    const api = { on: false };

    function context() {
      if (!ctx) {
        const AC = window.AudioContext || window.webkitAudioContext;
        if (!AC) return null;
        ctx = new AC();
        master = ctx.createGain(); master.gain.value = 0.9; master.connect(ctx.destination);
      }
      return ctx;
    }
    function stemLevels(n, m) {
      const out = [];
      for (let i = 0; i < n; i++) {
        if (i === 0) out.push(n === 1 ? 0.45 + 0.55 * m : 0.7 + 0.3 * m);
        else { const th = 0.15 + 0.7 * (i - 1) / Math.max(1, n - 1); out.push(Math.max(0, Math.min(1, (m - th) / 0.2))); }
      }
      return out;
    }
    api.levels = () => {
      if (!ctx || !bed) { if (drone) droneLevel(); return; }
      const m = musicLevel(), t = ctx.currentTime, lv = stemLevels(bed.gains.length, m);
      bed.gains.forEach((g, i) => g.gain.setTargetAtTime(lv[i], t, 1.2));
      bed.filter.frequency.setTargetAtTime(500 * Math.pow(2, 5.2 * m), t, 1.2);
    };
    api.mix = () => bed ? { key: bed.key, stems: bed.gains.map((g) => g.gain.value), level: bed.out.gain.value,
                            cutoff: bed.filter.frequency.value, state: ctx.state } : null;
    api.warm = (url) => {
      if (warmed.has(url)) return;
      const a = new Audio(); a.preload = "auto"; a.src = E.withToken(url); warmed.set(url, a);
      if (warmed.size > 12) { const [old, el] = warmed.entries().next().value; el.removeAttribute("src"); warmed.delete(old); }
    };
    function element(url) {
      let a = warmed.get(url);
      if (a) warmed.delete(url); else { a = new Audio(); a.preload = "auto"; a.src = E.withToken(url); }
      a.loop = true;
      a.addEventListener("error", () => mediaError(url, a.error), { once: true });
      return a;
    }
    api.setBed = (urls, tr, plan) => {
      const key = urls.join("|");
      if (bed && bed.key === key) { api.levels(); return; }
      const fade = Math.max(1.5, (tr.seconds || 0) * 1.5);
      release(fade);
      if (!urls.length || !context()) { if (api.on && !urls.length) startDrone(); return; }
      stopDrone();
      const out = ctx.createGain(), filter = ctx.createBiquadFilter();
      filter.type = "lowpass"; filter.Q.value = 0.5; filter.frequency.value = 500 * Math.pow(2, 5.2 * musicLevel());
      out.gain.value = 0; out.connect(master); filter.connect(out);
      const els = [], gains = [];
      const lv = stemLevels(urls.length, musicLevel());
      urls.forEach((url, i) => {
        const a = element(url);
        const src = ctx.createMediaElementSource(a), g = ctx.createGain();
        g.gain.value = lv[i]; src.connect(g); g.connect(filter);
        els.push(a); gains.push(g);
        const p = a.play(); if (p && p.catch) p.catch(() => {});
      });
      out.gain.setTargetAtTime(1, ctx.currentTime, tr.type === "cut" ? 0.05 : fade / 3);
      bed = { key, els, gains, filter, out };
    };
    // the bed playing now fades out over `fade` seconds and is let go (a later scene with the same files starts it anew)
    function release(fade) {
      if (!bed) return;
      const old = bed;
      bed = null;
      if (ctx) old.out.gain.setTargetAtTime(0, ctx.currentTime, fade / 3);
      setTimeout(() => { old.els.forEach((a) => { a.pause(); a.removeAttribute("src"); }); try { old.out.disconnect(); } catch (e) { /* gone */ } }, fade * 1000 + 800);
    }
    api.fadeOut = (seconds) => { release(seconds); stopDrone(); };
    api.sfx = async (url, delay) => {
      const c = context(); if (!c) return;
      try {
        let buf = buffers.get(url);
        if (!buf) {
          const r = await fetch(E.withToken(url));
          if (!r.ok) throw new Error("HTTP " + r.status);
          buf = await c.decodeAudioData(await r.arrayBuffer());
          buffers.set(url, buf);
          if (buffers.size > 32) buffers.delete(buffers.keys().next().value);
        }
        const s = c.createBufferSource(); s.buffer = buf; s.connect(master);
        s.start(c.currentTime + Math.max(0, delay));
      } catch (err) { mediaError(url, "sound effect: " + (err && err.message || err)); }
    };
    // a soft drone following the music intensity, for films without sound of their own
    function startDrone() {
      if (drone || !context()) return;
      const gain = ctx.createGain(), lfo = ctx.createOscillator(), lfoGain = ctx.createGain();
      const o1 = ctx.createOscillator(), o2 = ctx.createOscillator();
      o1.type = "sine"; o1.frequency.value = 55; o2.type = "triangle"; o2.frequency.value = 110;
      lfoGain.gain.value = 0.03; lfo.connect(lfoGain); lfoGain.connect(gain.gain);
      o1.connect(gain); o2.connect(gain); gain.connect(master); gain.gain.value = 0;
      [o1, o2, lfo].forEach((o) => o.start());
      drone = { gain, lfo, o2, nodes: [o1, o2, lfo] };
      droneLevel();
    }
    function droneLevel() {
      const m = musicLevel(), t = ctx.currentTime;
      drone.gain.gain.setTargetAtTime(0.03 + 0.1 * m, t, 1.2);
      drone.lfo.frequency.setTargetAtTime(0.2 + 5 * m, t, 1.2);
      drone.o2.frequency.setTargetAtTime(110 * (1 + 0.5 * m), t, 1.5);
    }
    function stopDrone() {
      if (!drone) return;
      const d = drone; drone = null;
      d.gain.gain.setTargetAtTime(0, ctx.currentTime, 0.5);
      setTimeout(() => d.nodes.forEach((o) => o.stop()), 2500);
    }
    api.enable = async () => {
      const c = context(); if (!c) return false;
      try { await c.resume(); } catch (e) { /* blocked */ }
      api.on = c.state === "running";
      master.gain.value = api.on ? 0.9 : 0;
      for (const v of pool.values()) v.muted = !api.on;
      if (api.on && bed) bed.els.forEach((a) => { const p = a.play(); if (p && p.catch) p.catch(() => {}); });
      $("sound").textContent = api.on ? "sound on" : "sound off";
      if (api.on && !bed && current) startDrone();
      return api.on;
    };
    api.disable = () => {
      api.on = false; if (master) master.gain.value = 0;
      for (const v of pool.values()) v.muted = true;
      $("sound").textContent = "sound off";
    };
    api.state = () => ctx ? ctx.state : "none";
    return api;
  })();

  function setBed(urls, tr, plan) { sound.setBed(urls, tr, plan); sound.levels(); }
  function sfx(url, delay) { sound.sfx(url, delay); }

  // autoplay: with sound if the browser allows it, else a "touch to begin" card (the film runs silently behind it)
  function needGesture() { $("start").hidden = false; }
  async function begin() {
    $("start").hidden = true;
    await sound.enable();
    if (front && front.paused) front.play().catch(() => {});
    if (KIOSK && !document.fullscreenElement && document.documentElement.requestFullscreen) {
      document.documentElement.requestFullscreen().catch(() => {});
    }
  }
  (async () => {
    const on = await Promise.race([sound.enable(), new Promise((r) => setTimeout(() => r(false), 400))]);
    if (!on) needGesture();
  })();
  $("start-button").addEventListener("click", begin);
  $("start").addEventListener("pointerdown", (e) => { if (e.target.id !== "start-button") begin(); });

  // ---------------------------------------------------------------------------------- thought probes

  // A probe's questions, one after the other, over the film: answered by a digit key, a click or a touch. The
  // answer goes back with the seconds since the probe appeared (for its time on the session clock).
  const probes = (() => {
    let open = null;                                // { probe, questions, pending, index, shownAt, askedAt }
    const box = $("probe");

    function render() {
      if (!open) { box.hidden = true; return; }
      while (open.index < open.questions.length && !open.pending.has(open.questions[open.index].id)) open.index++;
      const q = open.questions[open.index];
      if (!q) { open = null; box.hidden = true; return; }
      const [lo, hi] = q.scale || [1, 7];
      $("probe-question").textContent = q.text || q.id;
      const scale = $("probe-scale"); scale.textContent = "";
      for (let v = lo; v <= hi; v++) {
        const b = E.el("button", "", String(v));
        b.type = "button"; b.dataset.value = String(v);
        b.addEventListener("pointerdown", (e) => { e.preventDefault(); answer(v, e.pointerType === "touch" ? "touch" : "click"); });
        scale.append(b);
      }
      const anchors = q.anchors || ["", ""];
      $("probe-low").textContent = anchors[0] || ""; $("probe-high").textContent = anchors[1] || "";
      box.dataset.probe = String(open.probe); box.dataset.question = q.id;
      box.hidden = false;
      open.askedAt = performance.now();
    }
    function answer(value, via) {
      if (!open) return;
      const q = open.questions[open.index];
      if (!q || !open.pending.has(q.id)) return;
      const now = performance.now();
      conn.send({ op: "probe", probe: open.probe, question: q.id, value, via,
                  elapsed_s: Math.round(now - open.shownAt) / 1000, rt_s: Math.round(now - open.askedAt) / 1000 });
      for (const b of $("probe-scale").children) b.classList.toggle("chosen", b.dataset.value === String(value));
      open.pending.delete(q.id);
      setTimeout(render, 350);
    }
    function start(p) {
      open = { probe: p.probe, questions: p.questions || [], pending: new Set(p.pending || (p.questions || []).map((q) => q.id)),
               index: 0, shownAt: performance.now(), askedAt: performance.now() };
      render();
    }
    return {
      message(m) {
        if (m.refused) { $("ov-media").textContent = "probe " + m.probe + ": " + m.refused; return; }
        const ev = m.event || {}, d = ev.evidence || {};
        if (ev.type === "probe.shown") start({ probe: d.probe, questions: d.questions });
        else if ((ev.type === "probe.answer" || ev.type === "probe.missed") && open && open.probe === d.probe) {
          if (open.pending.delete(d.question)) render();   // answered elsewhere, or timed out
        }
      },
      resume(list) { if (!open && list.length) start(list[list.length - 1]); },
      key(e) {
        if (!open || box.hidden || !/^[0-9]$/.test(e.key)) return false;
        const q = open.questions[open.index], [lo, hi] = (q && q.scale) || [1, 7], v = Number(e.key);
        if (v < lo || v > hi) return false;
        e.preventDefault(); answer(v, "key");
        return true;
      },
      state: () => (open ? { probe: open.probe, question: (open.questions[open.index] || {}).id || null } : null),
    };
  })();

  // ---------------------------------------------------------------------------------- keys, overlay, controls

  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (!$("start").hidden) { e.preventDefault(); begin(); return; }
    if (probes.key(e)) return;
    if (/^[1-9]$/.test(e.key) && choosing) {
      const o = choosing.options[Number(e.key) - 1];
      if (o) { e.preventDefault(); pick(o.id, "key"); }
      return;
    }
    if (e.key === "o" || e.key === "O") { $("overlay").hidden = !$("overlay").hidden; }
    else if (e.key === "f" || e.key === "F") toggleFullscreen();
    else if (e.key === "m" || e.key === "M") { if (sound.on) sound.disable(); else sound.enable(); }
  });
  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen(); else document.documentElement.requestFullscreen().catch(() => {});
  }
  $("fullscreen").addEventListener("click", toggleFullscreen);
  $("overlay-toggle").addEventListener("click", () => { $("overlay").hidden = !$("overlay").hidden; });
  $("sound").addEventListener("click", () => { if (sound.on) sound.disable(); else sound.enable(); });

  function overlay(plan, cues) {
    const d = plan.directives || {};
    $("ov-scene").textContent = plan.scene;
    $("ov-episode").textContent = "episode " + (plan.episode || 1);
    $("ov-directives").textContent = Object.entries(d).map(([k, v]) => k.replace(/_/g, " ") + " " + (typeof v === "number" ? E.fmt(v, 2) : v)).join(" · ");
    const ev = plan.evidence || {};
    $("ov-reason").textContent = (ev.chosen_by ? "[" + ev.chosen_by + "] " : "") + (plan.reason || "") +
      (cues.direction ? " · direction: " + cues.direction : "");
    $("ov-media").textContent = [cues.video && "video", cues.image && "still", cues.audio.length && cues.audio.length + " stem(s)",
      cues.sfx.length && cues.sfx.length + " sfx", cues.transition.type].filter(Boolean).join(" · ") || "text only";
  }

  conn = E.connect("plan,status,adapt,choice,probe", onMessage, (s) => {
    const c = $("conn"); c.textContent = s; c.dataset.state = s.split(" ")[0];
  }, { maxDelay: KIOSK ? 2000 : 5000 });

  // for tests, benchmarks and the curious: what the player did
  window.EngagePlayer = {
    stats, sessionNow, mix: () => sound.mix(), sound: () => sound.state(), shown: () => shown,
    front: () => (front ? { url: front.dataset.url, time: front.currentTime, paused: front.paused, ready: front.readyState } : null),
    clips: () => [...pool.values()].map((v) => ({ url: v.dataset.url, ready: v.readyState, on: v.classList.contains("on") })),
    send: (obj) => conn.send(obj), probe: () => probes.state(),
  };
})();
