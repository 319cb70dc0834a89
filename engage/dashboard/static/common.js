// engage dashboard and player: the connection to the server and small helpers shared by both pages.
// Plain JavaScript, no libraries, nothing loaded from elsewhere.
"use strict";

const Engage = (() => {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");

  function wsUrl(topics) {
    const u = new URL("/ws", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    u.search = "";
    if (token) u.searchParams.set("token", token);
    if (topics) u.searchParams.set("topics", topics);
    return u.toString();
  }

  // Connects, hands every message to onMessage, reconnects with a growing pause (up to opts.maxDelay ms)
  // when the server goes. Returns { send(obj) }: a message to the server, false when not connected.
  function connect(topics, onMessage, onState, opts) {
    const maxDelay = (opts && opts.maxDelay) || 10000;
    let delay = 500, ws = null, pinger = null;
    function open() {
      onState("connecting");
      ws = new WebSocket(wsUrl(topics));
      ws.onopen = () => {
        delay = 500;
        onState("live");
        pinger = setInterval(() => { if (ws.readyState === 1) ws.send('{"op":"ping"}'); }, 10000);
      };
      ws.onmessage = (e) => {
        let batch;
        try { batch = JSON.parse(e.data); } catch (err) { return; }
        if (!Array.isArray(batch)) batch = [batch];
        for (const m of batch) {
          try { onMessage(m); } catch (err) { console.error("engage: message failed", m && m.kind, err); }
        }
      };
      ws.onclose = (e) => {
        clearInterval(pinger);
        onState(e.code === 1008 ? "refused (token?)" : "disconnected");
        setTimeout(open, delay);
        delay = Math.min(delay * 2, maxDelay);
      };
    }
    open();
    return {
      send(obj) {
        if (!ws || ws.readyState !== 1) return false;
        ws.send(JSON.stringify(obj));
        return true;
      },
    };
  }

  // A URL the server serves (media, pages) with the page's token carried over.
  function withToken(url) {
    if (!token || !url) return url;
    const u = new URL(url, location.href);
    u.searchParams.set("token", token);
    return u.pathname + u.search;
  }

  function clock(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "--:--";
    const sign = seconds < 0 ? "-" : "";
    let s = Math.floor(Math.abs(seconds));
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const pad = (x) => String(x).padStart(2, "0");
    return sign + (h ? h + ":" + pad(m) : pad(m)) + ":" + pad(s);
  }

  function fmt(x, digits) {
    return (x === null || x === undefined || !isFinite(x)) ? "–" : Number(x).toFixed(digits);
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // A palette name from a story ("blue-grey", "storm-black", "candle-gold") → background, accent, text colours.
  const WORDS = {
    black: [8, 8, 10], white: [235, 235, 230], grey: [110, 118, 128], gray: [110, 118, 128], silver: [180, 184, 190],
    blue: [40, 70, 120], midnight: [14, 20, 48], navy: [16, 28, 70], teal: [20, 100, 100], cyan: [40, 150, 170],
    green: [40, 100, 60], cold: [60, 110, 120], forest: [24, 60, 34], olive: [90, 90, 40], red: [140, 30, 30],
    rust: [150, 70, 35], crimson: [120, 10, 30], blood: [100, 0, 10], orange: [200, 110, 30], sodium: [220, 130, 40],
    amber: [190, 120, 30], gold: [200, 160, 60], candle: [170, 110, 40], yellow: [210, 190, 60], lamp: [200, 170, 80],
    pink: [210, 130, 150], dawn: [230, 160, 150], rose: [190, 90, 110], purple: [90, 50, 120], violet: [110, 70, 160],
    brown: [90, 60, 40], sepia: [112, 66, 20], storm: [40, 44, 56], torch: [230, 200, 140], warm: [180, 120, 70],
    neutral: [60, 60, 64], night: [12, 14, 30], fog: [150, 155, 160], snow: [230, 235, 240], ice: [170, 210, 230],
  };
  function hashColour(word) {
    let h = 0;
    for (const c of word) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    const hue = h % 360;
    return hsl(hue, 35, 30);
  }
  function hsl(h, s, l) {
    s /= 100; l /= 100;
    const k = (n) => (n + h / 30) % 12, a = s * Math.min(l, 1 - l);
    const f = (n) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
    return [Math.round(255 * f(0)), Math.round(255 * f(8)), Math.round(255 * f(4))];
  }
  function mix(a, b, t) { return a.map((x, i) => Math.round(x * (1 - t) + b[i] * t)); }
  function rgb(c) { return "rgb(" + c.join(",") + ")"; }
  function luminance(c) { return (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255; }
  function palette(name) {
    const words = String(name || "neutral").toLowerCase().split(/[^a-z]+/).filter(Boolean);
    const colours = words.map((w) => WORDS[w] || hashColour(w));
    if (!colours.length) colours.push(WORDS.neutral);
    const main = colours[colours.length - 1], accent = colours[0];
    const bg = mix(main, [0, 0, 0], luminance(main) > 0.5 ? 0.6 : (luminance(main) > 0.3 ? 0.4 : 0.25));
    const fg = luminance(bg) > 0.45 ? [15, 15, 18] : [240, 238, 230];
    return { background: rgb(bg), accent: rgb(mix(accent, luminance(bg) > 0.45 ? [0, 0, 0] : [255, 255, 255], 0.55)), text: rgb(fg), dark: rgb(mix(bg, [0, 0, 0], 0.5)) };
  }

  return { token, wsUrl, connect, withToken, clock, fmt, el, palette };
})();
