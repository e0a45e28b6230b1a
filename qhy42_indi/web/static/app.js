// The camera's page: one WebSocket feed in, POSTed commands out. No timers except the
// reconnect after the feed is lost; everything else happens when the daemon says something.
"use strict";

const MAX_LINES = 200;
const $ = (id) => document.getElementById(id);
const page = {
  camera: 0, readOnly: false, cameras: [], history: {}, socket: null, retryMs: 500,
  looping: false, loopSequence: null, previewSeq: -1,
};

function fmt(value, digits, unit) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits) + (unit ? " " + unit : "");
}
function seconds(value) {
  return value === null || value === undefined ? "–" : `${Number(Number(value).toPrecision(4))} s`;
}
function when(epoch) {
  if (!epoch) return "–";
  return new Date(epoch * 1000).toLocaleTimeString();
}
function notice(text, good) {
  const box = $("notice");
  box.textContent = text;
  box.className = good ? "good" : "";
  box.hidden = !text;
}

// ---- the feed -------------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/web/ws`);
  page.socket = socket;
  let first = true;
  socket.onopen = () => { page.retryMs = 500; setFeed("live", "ok"); };
  socket.onmessage = (event) => {
    const update = JSON.parse(event.data);
    if (first) { resetRings(); first = false; }
    apply(update);
  };
  socket.onclose = () => {
    setFeed("reconnecting", "off");
    // The daemon restarted or the network went: try again, backing off to 5 s.
    setTimeout(connect, page.retryMs);
    page.retryMs = Math.min(page.retryMs * 2, 5000);
  };
}
function setFeed(text, cls) { const f = $("feed"); f.textContent = text; f.className = "badge " + cls; }
// A new connection (maybe to a restarted daemon) sends everything again: start afresh.
function resetRings() {
  page.history = {};
  page.pending = {};
  page.previewSeq = -1;
  $("log").replaceChildren();
  $("messages").replaceChildren();
}

function apply(update) {
  page.readOnly = !!update.read_only;
  $("read-only").hidden = !page.readOnly;
  if (update.history) {
    for (const [cam, samples] of Object.entries(update.history)) {
      const kept = (page.history[cam] = page.history[cam] || []);
      kept.push(...samples);
      if (kept.length > 4320) kept.splice(0, kept.length - 4320);
    }
    page.pending = update.history_pending || {};
  }
  if (update.cameras) { page.cameras = update.cameras; showCameras(); }
  if (update.clients) showClients(update.clients);
  if (update.log) addLines("log", update.log);
  if (update.messages) addLines("messages", update.messages);
  if (update.previews) showPreview(update.previews[String(page.camera)]);
  if (update.frames_changed) loadFrames();
  if (update.history || update.cameras) plot();
}

// ---- at a glance ---------------------------------------------------------------------------

function setInput(id, value) {
  const input = $(id);
  if (document.activeElement !== input && value !== null && value !== undefined) input.value = value;
}

function showCameras() {
  const select = $("camera-select");
  select.hidden = page.cameras.length < 2;
  if (select.options.length !== page.cameras.length) {
    select.replaceChildren(...page.cameras.map((c) => new Option(c.name, c.index)));
  }
  const cam = page.cameras[page.camera];
  if (!cam) { $("state").textContent = "no camera"; return; }
  $("camera-name").textContent = cam.name;
  const left = cam.exposure_left_s;
  const stateText = cam.state + (left !== null ? ` · ${left.toFixed(1)} s left` : "");
  const badge = $("state");
  badge.textContent = stateText;
  badge.className = "badge " + ({Idle: "ok", Disconnected: "off", Gone: "off"}[cam.state] || "busy");
  $("v-state").textContent = cam.state;
  $("v-left").textContent = left !== null ? fmt(left, 1, "s") : "–";
  const volts = $("v-voltage");
  volts.textContent = fmt(cam.voltage, 2, "V") + (cam.voltage_low ? " (low: under 11.5 V)" : "");
  volts.className = cam.voltage_low ? "low" : "";
  $("v-temp").textContent = fmt(cam.temperature_c, 2, "°C");
  $("v-setpoint").textContent = cam.setpoint_c === null ? "not regulating" : fmt(cam.setpoint_c, 1, "°C");
  $("v-cooler").textContent = (cam.cooler === "COOLER_ON" ? "on" : cam.cooler ? "off" : "–") +
    (cam.cooler_power !== null ? `, ${cam.cooler_power.toFixed(0)} %` : "");
  $("v-mode-name").textContent = cam.read_mode_name || "";
  setInput("in-mode", cam.read_mode);
  setInput("in-gain", cam.gain);
  setInput("in-offset", cam.offset);
  setInput("in-binx", cam.binning[0]);
  setInput("in-biny", cam.binning[1]);
  ["in-fx", "in-fy", "in-fw", "in-fh"].forEach((id, i) => setInput(id, cam.frame[i]));
  setInput("in-dir", cam.upload_dir);
  setInput("in-prefix", cam.upload_prefix);
  setInput("in-frametype", cam.frame_type);
  setInput("in-hdr", cam.hdr_output);
  setInput("in-upmode", cam.upload_mode);
  if (cam.setpoint_c !== null) setInput("in-setpoint", cam.setpoint_c);
  const limits = cam.limits || {};
  for (const [id, key] of [["in-gain", "gain"], ["in-offset", "offset"], ["in-mode", "read_mode"],
                           ["in-setpoint", "temperature"], ["in-exposure", "exposure"]]) {
    if (limits[key]) { $(id).min = limits[key][0]; $(id).max = limits[key][1]; }
  }
  const gps = cam.gps;
  $("v-gps").textContent = gps ? `${gps.status}` + (gps.latitude ? ` · ${gps.latitude}, ${gps.longitude}` : "") : "absent";
  const t = cam.timing;
  $("v-timesrc").textContent = t.time_source || "–";
  $("v-start").textContent = t.start_utc || "–";
  $("v-line").textContent = fmt(t.line_period_us, 2, "µs");
  $("v-seq").textContent = t.sequence || "–";
  $("v-dir").textContent = cam.upload_dir || "";
  enableControls(cam);
  loopAfterExposure(cam);
}

function enableControls(cam) {
  for (const el of document.querySelectorAll(".ctl")) {
    el.disabled = page.readOnly || (!cam.connected && !el.classList.contains("always"));
  }
}

function showClients(clients) {
  $("clients").replaceChildren(...clients.map((c) => {
    const row = document.createElement("tr");
    const access = c.read_only ? "read-only" : "control";
    const extra = c.connected === false ? " (not connected)" : "";
    for (const text of [c.kind, c.address + extra, when(c.since), access]) {
      row.appendChild(Object.assign(document.createElement("td"), {textContent: text}));
    }
    return row;
  }));
}

function addLines(id, lines) {
  const list = $(id);
  for (const line of lines) {
    const item = document.createElement("li");
    item.className = line.level;
    item.textContent = `${when(line.time)} ${line.source ? line.source + ": " : ""}${line.text}`;
    list.prepend(item);
  }
  while (list.children.length > MAX_LINES) list.lastChild.remove();
}

// ---- the cooling plot (plain SVG) -------------------------------------------------------

function plot() {
  const svg = $("plot");
  const samples = page.history[String(page.camera)] || [];
  const cam = page.cameras[page.camera];
  const pending = (page.pending || {})[String(page.camera)];
  const shown = pending ? [...samples, pending] : samples;
  const points = shown.map((s) => ({t: s[1], temp: s[2], set: s[3], power: s[4]}));
  if (cam && cam.temperature_c !== null) {
    points.push({t: Date.now() / 1000, temp: cam.temperature_c, set: cam.setpoint_c, power: cam.cooler_power});
  }
  if (points.length < 2) { svg.replaceChildren(); $("plot-span").textContent = ""; return; }
  const W = 400, H = 160, t0 = points[0].t, t1 = points[points.length - 1].t || t0 + 1;
  const temps = points.flatMap((p) => [p.temp, p.set]).filter((v) => v !== null);
  let lo = Math.min(...temps), hi = Math.max(...temps);
  if (hi - lo < 2) { lo -= 1; hi += 1; }
  const x = (t) => ((t - t0) / Math.max(t1 - t0, 1)) * W;
  const yT = (v) => H - 8 - ((v - lo) / (hi - lo)) * (H - 16);
  const yP = (v) => H - 4 - (v / 100) * (H - 8);
  // Steps, not slopes: a value holds until the camera publishes the next one.
  const path = (key, y) => {
    let d = "", drawing = false;
    for (const p of points) {
      const v = p[key];
      if (v === null || v === undefined) { drawing = false; continue; }
      d += drawing ? `H${x(p.t).toFixed(1)}V${y(v).toFixed(1)}`
                   : `M${x(p.t).toFixed(1)},${y(v).toFixed(1)}`;
      drawing = true;
    }
    return d;
  };
  const NS = "http://www.w3.org/2000/svg";
  const line = (d, color, dash) => {
    const el = document.createElementNS(NS, "path");
    el.setAttribute("d", d); el.setAttribute("fill", "none"); el.setAttribute("stroke", color);
    el.setAttribute("stroke-width", "1.5"); el.setAttribute("vector-effect", "non-scaling-stroke");
    if (dash) el.setAttribute("stroke-dasharray", "4 3");
    return el;
  };
  const label = (text, y) => {
    const el = document.createElementNS(NS, "text");
    el.setAttribute("x", "3"); el.setAttribute("y", String(y));
    el.setAttribute("fill", "#888"); el.setAttribute("font-size", "10");
    el.textContent = text;
    return el;
  };
  const css = getComputedStyle(document.documentElement);
  svg.replaceChildren(
    line(path("power", yP), css.getPropertyValue("--power").trim()),
    line(path("set", yT), css.getPropertyValue("--set").trim(), true),
    line(path("temp", yT), css.getPropertyValue("--temp").trim()),
    label(`${hi.toFixed(1)} °C`, 11), label(`${lo.toFixed(1)} °C`, H - 3));
  const minutes = (t1 - t0) / 60;
  $("plot-span").textContent = minutes >= 90 ? `last ${(minutes / 60).toFixed(1)} h` : `last ${minutes.toFixed(0)} min`;
}

// ---- the last frame ---------------------------------------------------------------------

function showPreview(preview) {
  if (!preview || preview.seq === page.previewSeq) return;
  page.previewSeq = preview.seq;
  $("v-frame-info").textContent = `#${preview.sequence} ${preview.frame_type}, ` +
    `${seconds(preview.exposure_s)}, ${preview.read_mode}, started ${preview.start_utc} (${preview.time_source})`;
  $("previews").replaceChildren(...preview.channels.map((c) => {
    const fig = document.createElement("figure");
    const img = new Image();
    img.src = c.url; img.alt = `preview ${c.label}`; img.className = "preview";
    const canvas = document.createElement("canvas");
    canvas.width = 256; canvas.height = 70;
    drawHistogram(canvas, c.histogram);
    const cap = document.createElement("figcaption");
    cap.textContent = `${c.label} ${c.width}×${c.height} · min ${c.min} · max ${c.max} · ` +
      `median ${c.median} · saturated ${(100 * c.saturated).toFixed(3)} %`;
    cap.className = "stats";
    fig.append(img, canvas, cap);
    return fig;
  }));
  if (!$("fits-header").hidden) loadHeader();
}

function drawHistogram(canvas, counts) {
  const g = canvas.getContext("2d");
  const top = Math.log10(Math.max(...counts, 1) + 1);
  const w = canvas.width / counts.length;
  g.fillStyle = "#c88";
  counts.forEach((n, i) => {
    const h = (Math.log10(n + 1) / top) * canvas.height;
    g.fillRect(i * w, canvas.height - h, Math.max(w - 0.5, 1), h);
  });
}

async function loadHeader() {
  const response = await fetch(`/web/api/header/${page.camera}`);
  const box = $("fits-header");
  box.textContent = response.ok ? await response.text() : "no frame yet";
  box.hidden = false;
}

async function loadFrames() {
  const response = await fetch(`/web/api/frames/${page.camera}`);
  if (!response.ok) return;
  const listing = await response.json();
  $("files").replaceChildren(...listing.frames.map((f) => {
    const row = document.createElement("tr");
    const link = Object.assign(document.createElement("a"), {href: f.url, textContent: f.name});
    link.setAttribute("download", f.name);
    const cells = [link, `${(f.size / 1048576).toFixed(1)} MiB`,
      new Date(f.modified * 1000).toLocaleString(), f.frame_type || "–",
      seconds(f.exposure_s)];
    for (const cell of cells) {
      const td = document.createElement("td");
      if (typeof cell === "string") td.textContent = cell; else td.appendChild(cell);
      row.appendChild(td);
    }
    return row;
  }));
}

// ---- commands -----------------------------------------------------------------------------

async function command(property, values) {
  const response = await fetch("/web/api/command", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({camera: page.camera, property, values}),
  });
  let reply = {ok: false, message: `HTTP ${response.status}`};
  try { reply = await response.json(); } catch (error) { /* not JSON: keep the status */ }
  notice(reply.ok ? "" : `${property}: ${reply.message || "refused"}`, reply.ok);
  return reply;
}

function expose() {
  const seconds = Number($("in-exposure").value);
  return command("CCD_EXPOSURE", {CCD_EXPOSURE_VALUE: seconds});
}

// A looping preview: the next exposure starts when the camera has delivered a new frame
// (its sequence moved) and CCD_EXPOSURE is no longer busy. Status updates are coalesced, so
// a short exposure's Busy may never be seen: the sequence is what tells.
function loopAfterExposure(cam) {
  const state = cam.property_states.CCD_EXPOSURE;
  const sequence = cam.timing.sequence;
  if (state === "Alert") page.looping = false;
  if (page.looping && state !== "Busy" && sequence !== page.loopSequence) {
    page.loopSequence = sequence;
    expose();
  }
}

function wire() {
  for (const button of document.querySelectorAll("button[data-switch]")) {
    button.addEventListener("click", (event) => {
      event.preventDefault();
      if (button.dataset.prop === "CCD_ABORT_EXPOSURE") { page.looping = false; $("in-loop").checked = false; }
      command(button.dataset.prop, {[button.dataset.switch]: "On"});
    });
  }
  for (const form of document.querySelectorAll("form[data-prop]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = {};
      for (const input of form.querySelectorAll("input[name]")) {
        values[input.name] = input.type === "number" ? Number(input.value) : input.value;
      }
      command(form.dataset.prop, values);
    });
  }
  for (const select of document.querySelectorAll("select[data-prop]")) {
    select.addEventListener("change", () => command(select.dataset.prop, {[select.value]: "On"}));
  }
  $("expose-form").addEventListener("submit", (event) => {
    event.preventDefault();
    page.looping = $("in-loop").checked;
    const cam = page.cameras[page.camera];
    page.loopSequence = cam ? cam.timing.sequence : null;
    expose();
  });
  $("in-loop").addEventListener("change", () => { if (!$("in-loop").checked) page.looping = false; });
  $("b-header").addEventListener("click", () => {
    const box = $("fits-header");
    if (box.hidden) loadHeader(); else box.hidden = true;
  });
  $("camera-select").addEventListener("change", (event) => {
    page.camera = Number(event.target.value);
    page.previewSeq = -1;
    showCameras(); plot(); loadFrames();
  });
}

wire();
loadFrames();
connect();
