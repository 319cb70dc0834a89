// engage player: presents each scene plan as it comes - text, palette, pacing, music intensity.
"use strict";

(() => {
  const E = Engage;
  const $ = (id) => document.getElementById(id);
  const FADE_S = { slow: 2.4, steady: 1.2, fast: 0.35 };      // the cut between scenes
  const WORD_MS = { slow: 170, steady: 100, fast: 45 };        // how fast the text appears
  let current = null, now = null, nowAt = 0, revealTimer = null, swapTimer = null, music = 0;

  function onMessage(m) {
    if (m.kind === "snapshot") {
      if (m.now !== null && m.now !== undefined) { now = m.now; nowAt = performance.now(); }
      const plans = m.plans || [];
      if (plans.length) show(plans[plans.length - 1], true);
    } else if (m.kind === "plan") {
      show(m.plan, false);
    } else if (m.kind === "status") {
      if (m.now !== null && m.now !== undefined) { now = m.now; nowAt = performance.now(); }
      if (m.ended) $("kicker").textContent = "the session has ended";
    }
  }

  function show(plan, immediately) {
    if (current && plan.timestamp === current.timestamp && plan.scene === current.scene) return;
    current = plan;
    const d = plan.directives || {};
    const pacing = FADE_S[d.pacing] ? d.pacing : "steady";
    const fade = immediately ? 0 : FADE_S[pacing];
    const scene = $("scene");
    scene.style.transitionDuration = fade + "s";
    $("stage").style.transitionDuration = Math.max(fade, 0.3) * 1.5 + "s";
    scene.classList.add("out");
    clearTimeout(swapTimer);
    swapTimer = setTimeout(() => {
      render(plan, pacing);
      scene.classList.remove("out");
    }, fade * 1000);
  }

  function render(plan, pacing) {
    const d = plan.directives || {};
    const stage = $("stage");
    stage.dataset.scene = plan.scene;
    stage.dataset.pacing = pacing;
    const pal = E.palette(d.palette);
    stage.style.backgroundColor = pal.background;
    stage.style.color = pal.text;
    $("kicker").textContent = [d.pacing, d.stakes ? d.stakes + " stakes" : null, plan.episode > 1 ? "episode " + plan.episode : null]
      .filter(Boolean).join(" · ");
    $("kicker").style.color = pal.accent;
    $("title").textContent = plan.title;
    $("ai-label").hidden = !plan.ai_generated;
    music = typeof d.music_intensity === "number" ? Math.max(0, Math.min(1, d.music_intensity)) : 0.3;
    setSound();
    // the text appears word by word, at the scene's pace
    const p = $("text"); p.textContent = "";
    const words = String(plan.text || "").split(/(\s+)/);
    const spans = [];
    for (const w of words) {
      if (/^\s+$/.test(w)) { p.append(document.createTextNode(w)); continue; }
      const s = E.el("span", "w", w); p.append(s); spans.push(s);
    }
    clearInterval(revealTimer);
    let k = 0;
    revealTimer = setInterval(() => {
      if (k >= spans.length) { clearInterval(revealTimer); return; }
      spans[k++].classList.add("on");
    }, WORD_MS[pacing]);
  }

  // the music meter and the progress bar, every frame
  const bars = Array.from(document.querySelectorAll("#music i"));
  let phase = 0, last = performance.now();
  function frame(t) {
    const dt = (t - last) / 1000; last = t;
    phase += dt * (0.6 + 4 * music);
    bars.forEach((b, i) => {
      const h = 0.12 + music * (0.45 + 0.43 * Math.sin(phase * (1 + i * 0.37) + i));
      b.style.height = Math.round(100 * Math.max(0.08, Math.min(1, h))) + "%";
    });
    if (current) {
      const t0 = current.timestamp, n = now === null ? null : now + (performance.now() - nowAt) / 1000;
      const f = n === null ? 0 : (n - t0) / current.duration_s;
      $("progress").style.width = Math.round(100 * Math.max(0, Math.min(1, f))) + "%";
    }
    requestAnimationFrame(frame);
  }
  requestAnimationFrame(frame);

  // sound: a soft drone whose loudness and pulse follow the music intensity (only after a click)
  let audio = null;
  function setSound() {
    if (!audio) return;
    const t = audio.ctx.currentTime;
    audio.gain.gain.setTargetAtTime(0.03 + 0.12 * music, t, 0.8);
    audio.lfo.frequency.setTargetAtTime(0.2 + 5 * music, t, 0.8);
    audio.osc2.frequency.setTargetAtTime(110 * (1 + 0.5 * music), t, 1.5);
  }
  $("sound").addEventListener("click", () => {
    if (audio) { audio.ctx.close(); audio = null; $("sound").textContent = "sound off"; return; }
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const gain = ctx.createGain(), lfo = ctx.createOscillator(), lfoGain = ctx.createGain();
    const osc1 = ctx.createOscillator(), osc2 = ctx.createOscillator();
    osc1.type = "sine"; osc1.frequency.value = 55; osc2.type = "triangle"; osc2.frequency.value = 110;
    lfoGain.gain.value = 0.03; lfo.connect(lfoGain); lfoGain.connect(gain.gain);
    osc1.connect(gain); osc2.connect(gain); gain.connect(ctx.destination);
    gain.gain.value = 0.0;
    [osc1, osc2, lfo].forEach((o) => o.start());
    audio = { ctx, gain, lfo, osc2 };
    setSound();
    $("sound").textContent = "sound on";
  });
  $("fullscreen").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen(); else document.documentElement.requestFullscreen();
  });

  E.connect("plan,status", onMessage, (s) => {
    const c = $("conn"); c.textContent = s; c.dataset.state = s.split(" ")[0];
  });
})();
