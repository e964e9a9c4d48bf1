// keyface's page: enrol, identify and manage people through the JSON API under /api.
// Everything from the server or the user reaches the page through textContent or setAttribute.
"use strict";

const TOKEN_KEY = "keyface-token";
const $ = (id) => document.getElementById(id);
let token = "";
// Each person's thumbnail, by name: a promise of its object URL, so that a refresh fetches only new faces.
const thumbnails = new Map();
// The number of the latest identify request: an answer to an older one is stale and must not be shown.
let identifyRequest = 0;
// The number of the latest verify request: likewise, only its answer is shown.
let verifyRequest = 0;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function oneLine(text) {
  return String(text).split(/\s+/).join(" ").trim().slice(0, 500);
}

// ---- the token: from #token=..., kept in sessionStorage, gone from the address bar ----

function loadToken() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  let stored = "";
  try {
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    }
    stored = sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (e) {
    stored = match ? decodeURIComponent(match[1]) : "";
  }
  if (match) history.replaceState(null, "", location.pathname + location.search);
  return stored;
}

function saveToken(value) {
  token = value.trim();
  try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* kept for this page only */ }
}

function showTokenNotice(refused) {
  $("token-notice").hidden = false;
  $("token-notice-text").textContent = refused
    ? "The server refused the API token. Paste the token that keyface serve printed."
    : "Reading works without a token; changes to the gallery need the API token that keyface serve prints "
      + "(the address ending in #token=…).";
}

// ---- messages ----

function showMessage(text) {
  const box = $("message");
  box.textContent = oneLine(text);
  box.setAttribute("title", oneLine(text));
  box.hidden = false;
}

function clearMessage() {
  $("message").hidden = true;
  $("message").textContent = "";
}

// ---- the API ----

async function api(path, { method = "GET", body = null, json = undefined, as = "json" } = {}) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store" });
  } catch (e) {
    throw new Error("the server cannot be reached");
  }
  if (!response.ok) {
    let text = response.status + " " + response.statusText;
    try {
      const data = await response.json();
      if (data && data.error) text = data.error;
    } catch (e) { /* not JSON: keep the status line */ }
    if (response.status === 401) showTokenNotice(Boolean(token));
    throw new Error(text);
  }
  return as === "blob" ? response.blob() : response.json();
}

const personPath = (name) => "/api/people/" + encodeURIComponent(name);

// ---- header ----

async function loadHealth() {
  try {
    const h = await api("/api/health");
    $("server-info").textContent = `keyface ${h.version} · embedder ${h.embedder} (${h.model}) · `
      + `${h.people} ${h.people === 1 ? "person" : "people"}, ${h.photos} ${h.photos === 1 ? "photo" : "photos"}`;
  } catch (e) {
    $("server-info").textContent = "keyface (server status unavailable)";
    showMessage(e.message);
  }
}

// ---- people ----

async function loadPeople() {
  let people;
  try {
    people = await api("/api/people");
  } catch (e) {
    showMessage(e.message);
    return;
  }
  const names = new Set(people.map((person) => person.name));
  for (const name of [...thumbnails.keys()]) if (!names.has(name)) forgetThumbnail(name);  // gone elsewhere
  const list = $("people");
  list.replaceChildren(...people.map(personRow));
  $("people-empty").hidden = people.length > 0;
}

function personRow(person) {
  const row = el("li", { "data-testid": "person", "data-name": person.name });
  const img = el("img", { class: "thumb", alt: "", width: "64", height: "64" });
  row.append(img);
  thumbnail(person.name).then((url) => {
    img.src = url;
    img.setAttribute("alt", "Face of " + person.name);
  }).catch(() => img.classList.add("missing"));

  const info = el("div", { class: "person-info" });
  info.append(el("span", { class: "person-name", "data-testid": "person-name" }, person.name),
              el("span", { class: "person-count", "data-testid": "person-count" },
                 `${person.photos} ${person.photos === 1 ? "photo" : "photos"}`));
  const rename = el("button", { type: "button", "data-testid": "rename", "aria-label": "Rename " + person.name },
                    "Rename");
  const remove = el("button", { type: "button", class: "danger", "data-testid": "remove",
                                "aria-label": "Remove " + person.name }, "Remove");
  rename.addEventListener("click", () => startRename(row, info, person.name));
  remove.addEventListener("click", () => removePerson(person.name));
  const actions = el("div", { class: "actions" });
  actions.append(rename, remove);
  row.append(info, actions);
  return row;
}

// The person's thumbnail as an object URL, fetched once and kept until the person is renamed or removed.
function thumbnail(name) {
  if (!thumbnails.has(name)) {
    const url = api(personPath(name) + "/thumbnail", { as: "blob" }).then((blob) => URL.createObjectURL(blob));
    // a failed fetch is not kept: the next refresh tries again
    url.catch(() => { if (thumbnails.get(name) === url) thumbnails.delete(name); });
    thumbnails.set(name, url);
  }
  return thumbnails.get(name);
}

function forgetThumbnail(name) {
  const url = thumbnails.get(name);
  thumbnails.delete(name);
  if (url) url.then((u) => URL.revokeObjectURL(u), () => {});
}

function startRename(row, info, name) {
  if (row.querySelector("form")) return;
  const form = el("form", { class: "rename", "data-testid": "rename-form" });
  const id = "rename-" + Math.random().toString(36).slice(2);
  const input = el("input", { id, type: "text", maxlength: "200", required: "", autocomplete: "off",
                              "data-testid": "rename-input" });
  input.value = name;
  form.append(el("label", { for: id }, "New name for " + name), input,
              el("button", { type: "submit", "data-testid": "rename-save" }, "Save"));
  const cancel = el("button", { type: "button", "data-testid": "rename-cancel" }, "Cancel");
  form.append(cancel);
  const close = () => { form.remove(); info.hidden = false; };
  cancel.addEventListener("click", close);
  input.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wanted = input.value.trim();
    if (!wanted || wanted === name) { close(); return; }
    try {
      const done = await api(personPath(name), { method: "PATCH", json: { name: wanted } });
      forgetThumbnail(done.was);
      forgetThumbnail(done.person);
      clearMessage();
      setStatus("enrol-result", `Renamed ${done.was} to ${done.person}.`);
      await refresh();
    } catch (e) {
      showMessage(e.message);
    }
  });
  info.hidden = true;
  row.insertBefore(form, info);
  input.focus();
  input.select();
}

async function removePerson(name) {
  if (!window.confirm(`Remove ${name} and all their photos from the gallery?`)) return;
  try {
    const done = await api(personPath(name), { method: "DELETE" });
    forgetThumbnail(done.person);
    clearMessage();
    setStatus("enrol-result",
              `Removed ${done.person} (${done.photos_removed} ${done.photos_removed === 1 ? "photo" : "photos"}).`);
    await refresh();
  } catch (e) {
    showMessage(e.message);
  }
}

function setStatus(id, text) {
  $(id).replaceChildren(el("p", {}, text));
}

async function refresh() {
  await Promise.all([loadPeople(), loadHealth()]);
}

// ---- enrol ----

async function enrol(event) {
  event.preventDefault();
  const name = $("enrol-name").value.trim();
  const files = $("enrol-photos").files;
  if (!name || !files.length) {
    showMessage("give a name and choose at least one photo");
    return;
  }
  const form = new FormData();
  form.append("name", name);
  for (const file of files) form.append("photos", file, file.name);
  if ($("enrol-largest").checked) form.append("largest_face", "true");
  const button = $("enrol-button");
  button.disabled = true;
  setStatus("enrol-result", "Enrolling…");
  try {
    const done = await api("/api/people", { method: "POST", body: form });
    clearMessage();
    const result = $("enrol-result");
    result.replaceChildren(el("p", { "data-testid": "enrol-added" },
      `Added ${done.added} ${done.added === 1 ? "photo" : "photos"} of ${done.person}` +
      (done.already_enrolled ? ` (${done.already_enrolled} already enrolled).` : ".")));
    if (done.errors.length) {
      const list = el("ul", { class: "errors", "data-testid": "enrol-errors" });
      for (const line of done.errors) list.append(el("li", {}, oneLine(line)));
      result.append(list);
    }
    $("enrol-form").reset();
    await refresh();
  } catch (e) {
    $("enrol-result").replaceChildren();
    showMessage(e.message);
  } finally {
    button.disabled = false;
  }
}

// ---- identify ----

async function identify(file) {
  if (!file) return;
  const request = ++identifyRequest;
  const status = $("identify-status");
  status.textContent = "Identifying " + file.name + "…";
  $("identify-faces").replaceChildren();
  const form = new FormData();
  form.append("photo", file, file.name);
  let result, image;
  try {
    [result, image] = await Promise.all([api("/api/identify", { method: "POST", body: form }), loadImage(file)]);
  } catch (e) {
    if (request !== identifyRequest) return;  // a newer photo is being identified: its outcome is shown
    status.textContent = "";
    $("identify-canvas").hidden = true;
    showMessage(e.message);
    return;
  }
  if (request !== identifyRequest) return;  // answered after a newer photo was dropped: keep the newer one
  clearMessage();
  const faces = [...result.faces].sort((a, b) => a.face - b.face);
  status.textContent = faces.length
    ? `${faces.length} ${faces.length === 1 ? "face" : "faces"} in ${result.photo}.`
    : `No face found in ${result.photo}.`;
  draw(image, faces);
  $("identify-faces").replaceChildren(...faces.map((face) => el("li", { "data-testid": "face" }, faceLine(face))));
}

function faceLine(face) {
  if (face.name === "unknown") return `${face.face}: unknown`;
  const match = face.matches.find((m) => m.person === face.name);
  return match ? `${face.face}: ${face.name} (distance ${match.distance.toFixed(3)})` : `${face.face}: ${face.name}`;
}

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => { URL.revokeObjectURL(url); resolve(img); };
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error("the browser cannot show this photo")); };
    img.src = url;
  });
}

const KNOWN = "#1f8a4c";
const UNKNOWN = "#c2410c";
const LABEL_PAD = 3;
const CORE = 0.2;   // the part of a face box at each side that other faces' labels may cover
const REACH = 4;    // rows of labels searched above and below a face before a name gives way to its number
const WIDE = 20;    // label heights searched around a face for its number before labels may overlap

// The label font in CSS pixels: 11 at least, and more on a bigger canvas, so that 30+ labels stay readable.
function labelFont(width, height) {
  return Math.max(11, Math.min(16, Math.round(Math.min(width, height) / 36)));
}

function draw(img, faces) {
  const canvas = $("identify-canvas");
  const w = img.naturalWidth, h = img.naturalHeight;
  const room = Math.min(canvas.parentElement.clientWidth || 720, 720);
  const scale = Math.min(room / w, 540 / h);
  const width = Math.max(1, Math.round(w * scale)), height = Math.max(1, Math.round(h * scale));
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  canvas.hidden = false;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.drawImage(img, 0, 0, width, height);

  const font = labelFont(width, height);
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  const boxes = faces.map((face) => face.box.map((v) => v * scale));
  const colours = faces.map((face) => (face.name === "unknown" ? UNKNOWN : KNOWN));
  const spots = layoutLabels(boxes, faces.map((face) => `${face.face} ${face.name}`), width, height,
                             font + 2 * LABEL_PAD, (text) => ctx.measureText(text).width + 2 * LABEL_PAD);
  boxes.forEach((box, i) => drawBox(ctx, box, spots[i], colours[i]));
  spots.forEach((spot, i) => {
    ctx.fillStyle = colours[i];
    ctx.fillRect(spot.x, spot.y, spot.w, spot.h);
    ctx.fillStyle = "#fff";
    ctx.fillText(spot.text, spot.x + LABEL_PAD, spot.y + LABEL_PAD);
  });
  canvas.setAttribute("data-label-font", String(font));
  canvas.setAttribute("data-labels", JSON.stringify(spots.map((p) => [p.x, p.y, p.x + p.w, p.y + p.h])));
}

// A face's box, and a thin line to its label when the label had to be set apart from it.
function drawBox(ctx, [x0, y0, x1, y1], spot, colour) {
  ctx.lineWidth = x1 - x0 < 24 ? 1.5 : 2;
  ctx.strokeStyle = colour;
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  const lx = Math.min(Math.max((x0 + x1) / 2, spot.x), spot.x + spot.w);
  const ly = Math.min(Math.max((y0 + y1) / 2, spot.y), spot.y + spot.h);
  const bx = Math.min(Math.max(lx, x0), x1), by = Math.min(Math.max(ly, y0), y1);
  if (Math.abs(lx - bx) + Math.abs(ly - by) <= 3) return;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(lx, ly);
  ctx.lineTo(bx, by);
  ctx.stroke();
}

// One label per box, in order, each on the canvas and clear of the others: "N name" beside its face and off
// every face if it can, else the number N alone (off faces, then anywhere near, then further out), and only
// when nothing is clear the spot overlapping least. Each label is {x, y, w, h, text}.
function layoutLabels(boxes, texts, width, height, h, measure) {
  const cores = boxes.map(([x0, y0, x1, y1]) => {
    const ix = (x1 - x0) * CORE, iy = (y1 - y0) * CORE;
    return { x: x0 + ix, y: y0 + iy, w: x1 - x0 - 2 * ix, h: y1 - y0 - 2 * iy };
  });
  const placed = [];
  boxes.forEach((box, i) => {
    const full = fitText(texts[i], width, measure), number = fitText(texts[i].split(" ")[0], width, measure);
    const tiers = [[full, true, false], [number, true, false], [number, false, false], [number, false, true]];
    let spot = null;
    for (const [label, offFaces, wide] of tiers) {
      const obstacles = offFaces ? placed.concat(cores) : placed;
      spot = labelSpots(box, label.w, h, width, height, wide).find((s) => obstacles.every((o) => !overlaps(s, o)));
      if (spot) { spot.text = label.text; break; }
    }
    if (!spot) {  // a photo too crowded for any clear spot
      const area = (s) => placed.reduce((sum, o) => sum + overlapArea(s, o), 0);
      spot = labelSpots(box, number.w, h, width, height, false).reduce((a, b) => (area(b) < area(a) ? b : a));
      spot.text = number.text;
    }
    placed.push(spot);
  });
  return placed;
}

// The text as shown, cut short with an ellipsis when wider than the canvas, and its label's width.
function fitText(text, room, measure) {
  let cut = text;
  while (cut.length > 1 && measure(cut === text ? cut : cut + "…") > room) cut = cut.slice(0, -1);
  const shown = cut === text ? text : cut + "…";
  return { text: shown, w: Math.min(room, measure(shown)) };
}

// Places for a w x h label, best first, on the canvas: beside the box (above, below, left, right), then rows
// further out; or, when wide, a grid around the box, nearest first.
function labelSpots([x0, y0, x1, y1], w, h, width, height, wide) {
  let tries = [];
  if (wide) {
    const reach = WIDE * h, distance = ([x, y]) => {
      const dx = Math.max(0, x0 - x - w / 2, x + w / 2 - x1), dy = Math.max(0, y0 - y - h / 2, y + h / 2 - y1);
      return dx * dx + dy * dy;
    };
    for (let y = y0 - reach; y < y1 + reach; y += h / 2) {
      for (let x = x0 - reach; x < x1 + reach; x += Math.max(1, w / 2)) tries.push([x, y]);
    }
    tries = tries.map((p) => [p, distance(p)]).sort((a, b) => a[1] - b[1]).map((p) => p[0]);
  } else {
    const xs = [x0, x1 - w, (x0 + x1 - w) / 2];
    for (const y of [y0 - h, y1]) for (const x of xs) tries.push([x, y]);
    for (const x of [x0 - w, x1]) for (const y of [y0, (y0 + y1 - h) / 2, y1 - h]) tries.push([x, y]);
    for (let k = 1; k <= REACH; k++) {
      for (const y of [y0 - h - k * h, y1 + k * h]) for (const x of [...xs, x0 - w, x1]) tries.push([x, y]);
    }
    for (let k = 1; k <= REACH; k++) {
      for (const x of [x0 - w, x1]) for (const y of [y0 - k * h, y1 - h + k * h]) tries.push([x, y]);
    }
    tries.push([x0, y0]);  // inside the top of its own box: clear of others, but over the face
  }
  const seen = new Set();
  const spots = [];
  for (const [x, y] of tries) {
    const spot = { x: Math.max(0, Math.min(x, width - w)), y: Math.max(0, Math.min(y, height - h)), w, h };
    const key = spot.x + "," + spot.y;
    if (!seen.has(key)) { seen.add(key); spots.push(spot); }
  }
  return spots;
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function overlapArea(a, b) {
  const dx = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const dy = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return dx > 0 && dy > 0 ? dx * dy : 0;
}

// ---- verify ----

async function verify(event) {
  event.preventDefault();
  const a = $("verify-a").files[0], b = $("verify-b").files[0];
  const result = $("verify-result");
  if (!a || !b) {
    result.classList.add("failed");
    result.textContent = "choose two photos, one face each";
    return;
  }
  const request = ++verifyRequest;
  result.classList.remove("failed");
  result.textContent = `Comparing ${a.name} and ${b.name}…`;
  const form = new FormData();
  form.append("photo_a", a, a.name);
  form.append("photo_b", b, b.name);
  if ($("verify-largest").checked) form.append("largest_face", "true");
  let answer;
  try {
    answer = await api("/api/verify", { method: "POST", body: form });
  } catch (e) {
    if (request !== verifyRequest) return;  // a newer pair is being compared: its outcome is shown
    result.classList.add("failed");
    result.textContent = oneLine(e.message);
    return;
  }
  if (request !== verifyRequest) return;
  result.textContent = `${answer.same ? "Same person" : "Different people"} `
    + `(distance ${Number(answer.distance).toFixed(3)}, threshold ${Number(answer.threshold).toFixed(3)})`;
}

function setUpDropZone() {
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) identify(file);
  });
  // a photo dropped beside the zone should not make the browser leave the page
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

// ---- start ----

function start() {
  token = loadToken();
  if (!token) showTokenNotice(false);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveToken($("token-input").value);
    $("token-input").value = "";
    if (token) $("token-notice").hidden = true;
    clearMessage();
    refresh();
  });
  $("enrol-form").addEventListener("submit", enrol);
  $("identify-photo").addEventListener("change", (event) => {
    identify(event.target.files[0]);
    event.target.value = "";
  });
  $("verify-form").addEventListener("submit", verify);
  setUpDropZone();
  refresh();
}

start();
