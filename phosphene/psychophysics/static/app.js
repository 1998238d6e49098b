// phosphene matching experiment: consent -> session -> trials (click a group, then its row) -> done.
// The session id and token live in localStorage, so a reload resumes at the next unanswered trial.
"use strict";
const KEY = "phosphene-session";
const ROWS = ["A", "B", "C"];
let state = null;      // {session, token}
let trials = [];       // public trial descriptions
let current = null;    // index of the trial on screen
let assignment = [];   // assignment[q] = row of query group q, or null
let selected = null;   // query group being placed
let shownAt = 0;       // performance.now() when the trial's images were all loaded
let pendingId = null;  // response id of the submission in flight (reused on retry: idempotent)

const $ = (id) => document.getElementById(id);
function show(id) {
  for (const s of ["welcome", "task", "done", "error"]) $(s).hidden = s !== id;
}
function fail(message) { $("error-text").textContent = message; show("error"); }

async function api(method, path, body) {
  const headers = {"Content-Type": "application/json"};
  if (state) headers["Authorization"] = "Bearer " + state.token;
  const response = await fetch(path, {method, headers, body: body ? JSON.stringify(body) : undefined});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(data.detail || response.statusText), {status: response.status});
  return data;
}

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function image(path) {
  const img = document.createElement("img");
  img.src = "stimuli/" + path.split("/").map(encodeURIComponent).join("/");
  img.alt = "";
  img.draggable = false;
  return img;
}

function renderTrial(index) {
  current = index;
  const trial = trials[index];
  assignment = trial.queries.map(() => null);
  selected = null;
  pendingId = null;
  $("trial-number").textContent = index + 1;
  $("trial-count").textContent = trials.length;
  const refs = $("references"), queries = $("queries");
  refs.replaceChildren();
  queries.replaceChildren();
  const images = [];
  trial.references.forEach((paths, r) => {
    const row = document.createElement("div");
    row.className = "row"; row.dataset.r = r;
    const label = document.createElement("span");
    label.className = "label"; label.textContent = ROWS[r];
    row.append(label, ...paths.map(image));
    row.addEventListener("click", () => placeOn(r));
    refs.append(row);
  });
  trial.queries.forEach((paths, q) => {
    const group = document.createElement("div");
    group.className = "query"; group.dataset.q = q;
    const label = document.createElement("span");
    label.className = "label"; label.textContent = String(q + 1);
    group.append(label, ...paths.map(image));
    group.addEventListener("click", () => { selected = q; redraw(); });
    queries.append(group);
  });
  for (const img of document.querySelectorAll("#task img")) images.push(img);
  show("task");
  $("status").textContent = "";
  Promise.all(images.map((img) => img.complete ? null : new Promise((ok) => { img.onload = img.onerror = ok; })))
    .then(() => { if (current === index) shownAt = performance.now(); });
  shownAt = performance.now();
  redraw();
}

function placeOn(row) {
  if (selected === null) return;
  const holder = assignment.indexOf(row);
  if (holder !== -1) assignment[holder] = null;   // a row takes one group: move the old one out
  assignment[selected] = row;
  selected = null;
  redraw();
}

function redraw() {
  document.querySelectorAll(".query").forEach((el) => {
    const q = Number(el.dataset.q);
    el.classList.toggle("selected", q === selected);
    el.classList.toggle("matched", assignment[q] !== null);
    el.querySelector(".label").textContent = String(q + 1) + (assignment[q] !== null ? " \u2192 " + ROWS[assignment[q]] : "");
  });
  document.querySelectorAll(".row").forEach((el) => {
    el.classList.toggle("matched", assignment.includes(Number(el.dataset.r)));
  });
  $("submit").disabled = assignment.includes(null);
}

async function submit() {
  $("submit").disabled = true;
  const rt = performance.now() - shownAt;
  pendingId = pendingId || newId();
  const body = {trial: current, assignment: assignment.slice(), rt_ms: Math.round(rt * 10) / 10, response_id: pendingId};
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const result = await api("POST", `api/sessions/${state.session}/responses`, body);
      if (result.next === null) return finish();
      return renderTrial(result.next);
    } catch (err) {
      if (err.status && err.status < 500) return fail("Your answer was not accepted: " + err.message);
      $("status").textContent = "Connection problem, retrying\u2026";
      await new Promise((ok) => setTimeout(ok, 500 * (attempt + 1)));
    }
  }
  $("status").textContent = "Could not save the answer; please press Submit again.";
  $("submit").disabled = false;
}

function finish() {
  $("code").textContent = state.session;
  show("done");
}

async function resume() {
  const data = await api("GET", `api/sessions/${state.session}`);
  trials = data.items;
  if (data.next === null) return finish();
  renderTrial(data.next);
}

async function start() {
  $("start").disabled = true;
  try {
    const created = await api("POST", "api/sessions", {consent: true});
    state = {session: created.session, token: created.token};
    localStorage.setItem(KEY, JSON.stringify(state));
    await resume();
  } catch (err) {
    fail("Could not start the session: " + err.message);
  }
}

async function main() {
  $("consent").addEventListener("change", () => { $("start").disabled = !$("consent").checked; });
  $("start").addEventListener("click", start);
  $("submit").addEventListener("click", submit);
  const saved = localStorage.getItem(KEY);
  if (saved) {
    try {
      state = JSON.parse(saved);
      await resume();
      return;
    } catch (err) {
      if (![401, 403, 404].includes(err.status)) return fail("Could not resume: " + err.message);
      state = null;            // a session this server does not know: start afresh
      localStorage.removeItem(KEY);
    }
  }
  show("welcome");
}

main();
