// dd-procmgr dashboard: plain JavaScript, no build step, no library, nothing fetched
// from any other origin. The table is kept up to date by the server: events from the
// /events websocket and a stats snapshot every few seconds from /stats. The page never
// polls. Rows are updated in place and DOM writes are batched into one animation frame,
// so a thousand processes and a burst of events do not freeze the browser.
"use strict";

const ACCESS = document.body.dataset.access; // "read-only" or "token"
const TOKEN_KEY = "dd-procmgr-token";
const ACTIONS = ["start", "stop", "restart", "pause", "resume"];
const ACTIVE = new Set(["running", "starting", "stopping", "paused"]);
const LOG_LINES = 500;

const $ = (id) => document.getElementById(id);
const ui = {
  summary: $("summary"), mode: $("mode"), banner: $("banner"), rows: $("rows"),
  filter: $("filter"), count: $("count"), tokenForm: $("token-form"),
  tokenInput: $("token-input"), tokenError: $("token-error"), detail: $("detail"),
  detailTitle: $("detail-title"), fields: $("fields"), log: $("log"),
  actionsNote: $("actions-note"), actionResult: $("action-result"),
};

const model = {
  rows: new Map(),       // name -> {data, seq, tr, cells}
  order: [],             // names in the order shown
  sortKey: "name", sortDir: 1, filter: "",
  dirty: new Set(), resort: true, frame: 0,
  selected: null,
};

// ------------------------------------------------------------------ token
let token = null;

function takeTokenFromFragment() {
  // #token=... never reaches the server (fragments are not sent); remove it from the
  // address bar and history right away, and keep it for this tab only.
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  token = sessionStorage.getItem(TOKEN_KEY);
}

function askForToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  disconnect();
  ui.tokenError.textContent = message || "";
  ui.tokenForm.hidden = false;
  ui.summary.textContent = "Waiting for the token";
  ui.tokenInput.focus();
}

ui.tokenForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = ui.tokenInput.value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  ui.tokenInput.value = "";
  ui.tokenForm.hidden = true;
  connect();
});

function authHeaders() {
  return token ? { Authorization: "Bearer " + token } : {};
}

// ------------------------------------------------------------------ HTTP API
class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, method = "GET") {
  const resp = await fetch(path, { method, headers: authHeaders(), cache: "no-store" });
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (resp.ok) return body;
  const err = (body && body.error) || { code: "HTTP_" + resp.status, message: resp.statusText };
  if (resp.status === 401) askForToken("The daemon refused this token: " + err.message);
  throw new ApiError(resp.status, err.code, err.message);
}

const processPath = (name) => "/api/processes/" + encodeURIComponent(name);

// ------------------------------------------------------------------ websockets
const sockets = new Set();
let generation = 0;       // bumps on every (re)connect; stale sockets are ignored
let retryDelay = 500;
let retryTimer = 0;

// main: the /events socket (its opening loads the list); quiet: a socket whose loss is
// not a lost connection (a followed log ends when its process is deleted).
function openSocket(path, onMessage, { main = false, quiet = false } = {}) {
  const gen = generation;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + path);
  sockets.add(ws);
  ws.addEventListener("open", () => {
    if (token) ws.send(JSON.stringify({ token }));
    if (main) connected();
  });
  ws.addEventListener("message", (ev) => {
    if (gen !== generation) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_) { return; }
    onMessage(msg);
  });
  ws.addEventListener("close", (ev) => {
    sockets.delete(ws);
    if (gen !== generation || ws.intentional) return;
    if (ev.code === 4401) { askForToken("The daemon refused this token."); return; }
    if (quiet) return;
    if (main || ev.code !== 1000) connectionLost(ev.code === 1001 ? "the daemon stopped" : "connection lost");
  });
  return ws;
}

function disconnect() {
  generation += 1;
  clearTimeout(retryTimer);
  for (const ws of sockets) { ws.intentional = true; ws.close(); }
  sockets.clear();
  logSocket = null;
}

function connect() {
  disconnect();
  if (ACCESS === "token" && !token) { askForToken(); return; }
  openSocket("/events", onEvent, { main: true });
  openSocket("/stats", onStats);
}

async function connected() {
  const gen = generation;
  try {
    const list = await api("/api/processes");
    if (gen !== generation) return;
    loadList(list);
    retryDelay = 500;
    showBanner(null);
    if (model.selected) select(model.selected, { keepLog: false });
  } catch (err) {
    if (err.status !== 401) connectionLost(err.message);
  }
}

function connectionLost(why) {
  if (ACCESS === "token" && !token) return;
  disconnect();
  const seconds = Math.round(retryDelay / 100) / 10;
  showBanner(`Connection to the daemon lost (${why}). Reconnecting in ${seconds} s…`);
  retryTimer = setTimeout(connect, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 10000);
}

function showBanner(text) {
  ui.banner.hidden = !text;
  ui.banner.textContent = text || "";
}

// ------------------------------------------------------------------ model updates
function loadList(list) {
  const seen = new Set();
  for (const data of list.processes) {
    seen.add(data.name);
    upsert(data, list.seq, true);
  }
  for (const name of [...model.rows.keys()]) if (!seen.has(name)) removeRow(name);
  model.resort = true;
  schedule();
}

function upsert(data, seq, authoritative) {
  let row = model.rows.get(data.name);
  if (!row) {
    row = makeRow(data.name);
    model.rows.set(data.name, row);
    model.resort = true;
  }
  if (authoritative || seq >= row.seq) {
    Object.assign(row.data, data);
    row.seq = Math.max(row.seq, seq || 0);
  } else {
    row.data.cpu_percent = data.cpu_percent;
    row.data.memory = data.memory;
  }
  markDirty(data.name);
}

function removeRow(name) {
  const row = model.rows.get(name);
  if (!row) return;
  row.tr.remove();
  model.rows.delete(name);
  model.resort = true;
  if (model.selected === name) closeDetail();
  schedule();
}

const EVENT_FIELDS = {
  state_changed: (ev) => ({ state: ev.to, reason: ev.reason }),
  process_started: (ev) => ({ pid: ev.pid, runs: ev.run, started_at: ev.time, ended_at: null }),
  process_exited: (ev) => ({ pid: null, exit_code: ev.exit_code, exit_signal: ev.exit_signal,
                             ended_at: ev.time, cpu_percent: null, memory: null }),
  health_changed: (ev) => ({ health: ev.to }),
  main_pid_changed: (ev) => ({ pid: ev.pid }),
  process_created: () => ({ state: "created" }),
};

function onEvent(ev) {
  if (ev.type === "lost") { connected(); return; }
  if (ev.type === "daemon_stopping") { showBanner("The daemon is stopping…"); return; }
  if (!ev.process) return;
  if (ev.type === "process_deleted") { removeRow(ev.process); return; }
  const fields = EVENT_FIELDS[ev.type];
  if (fields) {
    const row = model.rows.get(ev.process);
    if (!row || ev.seq > row.seq) upsert({ name: ev.process, id: ev.id, ...fields(ev) }, ev.seq, false);
  }
  if (ev.process === model.selected) refreshDetailSoon();
}

function onStats(msg) {
  if (msg.type !== "stats") return;
  const seen = new Set();
  for (const data of msg.processes) {
    seen.add(data.name);
    upsert(data, msg.seq, false);
  }
  for (const [name, row] of model.rows) if (!seen.has(name) && row.seq <= msg.seq) removeRow(name);
  if (isSortedBy(["cpu", "memory", "uptime", "pid", "runs"])) model.resort = true;
  schedule();
}

// ------------------------------------------------------------------ rendering
const COLUMNS = ["state", "pid", "health", "runs", "uptime", "cpu", "memory", "group"];

function makeRow(name) {
  const tr = document.createElement("tr");
  const th = document.createElement("th");
  th.scope = "row";
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = name;
  button.addEventListener("click", () => select(name));
  th.appendChild(button);
  tr.appendChild(th);
  const cells = {};
  for (const key of COLUMNS) {
    const td = document.createElement("td");
    if (["pid", "runs", "uptime", "cpu", "memory"].includes(key)) td.className = "num";
    cells[key] = td;
    tr.appendChild(td);
  }
  tr.dataset.name = name;
  return { data: { name }, seq: 0, tr, cells, text: {}, search: "" };
}

function markDirty(name) {
  model.dirty.add(name);
  schedule();
}

function schedule() {
  if (!model.frame) model.frame = requestAnimationFrame(flush);
}

function flush() {
  model.frame = 0;
  const now = Date.now() / 1000;
  for (const name of model.dirty) {
    const row = model.rows.get(name);
    if (row) paint(row, now);
  }
  if (model.dirty.size && isSortedBy(["state", "health", "group"])) model.resort = true;
  model.dirty.clear();
  if (model.resort) reorder();
  summarize();
}

function setCell(row, key, text, className) {
  if (row.text[key] === text && (className === undefined || row.cells[key].className === className)) return;
  row.text[key] = text;
  const td = row.cells[key];
  if (className !== undefined) td.className = className;
  td.textContent = text;
}

function paint(row, now) {
  const d = row.data;
  setCell(row, "state", d.state || "", "state state-" + (d.state || "unknown"));
  setCell(row, "pid", d.pid == null ? "" : String(d.pid));
  setCell(row, "health", d.health || "", "health-" + (d.health || "none"));
  setCell(row, "runs", d.runs == null ? "" : String(d.runs));
  setCell(row, "uptime", uptimeText(d, now));
  setCell(row, "cpu", d.cpu_percent == null ? "" : d.cpu_percent.toFixed(1));
  setCell(row, "memory", d.memory == null ? "" : bytes(d.memory));
  setCell(row, "group", [d.group, d.instance ? "@" + d.instance : ""].filter(Boolean).join(" "));
  row.search = [d.name, d.state, d.health, d.group, d.instance, d.description]
    .filter(Boolean).join(" ").toLowerCase();
  const hidden = !matchesFilter(row);
  if (row.tr.hidden !== hidden) row.tr.hidden = hidden;
}

function running(d) { return d.pid != null && d.started_at != null && ACTIVE.has(d.state); }

function uptimeText(d, now) {
  return running(d) ? duration(now - d.started_at) : "";
}

function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
  const m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

// The uptime column ticks once a second: only text of visible running rows changes.
setInterval(() => {
  const now = Date.now() / 1000;
  for (const row of model.rows.values()) {
    if (!row.tr.hidden && running(row.data)) setCell(row, "uptime", uptimeText(row.data, now));
  }
}, 1000);

function summarize() {
  const counts = {};
  let shown = 0;
  for (const row of model.rows.values()) {
    counts[row.data.state] = (counts[row.data.state] || 0) + 1;
    if (!row.tr.hidden) shown += 1;
  }
  const total = model.rows.size;
  const parts = Object.keys(counts).sort().map((s) => `${counts[s]} ${s}`);
  ui.summary.textContent = `${total} process${total === 1 ? "" : "es"}` +
    (parts.length ? " · " + parts.join(" · ") : "");
  ui.count.textContent = model.filter ? `${shown} of ${total} shown` : "";
}

// ------------------------------------------------------------------ sort and filter
const SORT_VALUE = {
  name: (d) => d.name, state: (d) => d.state || "", health: (d) => d.health || "",
  pid: (d) => d.pid ?? -1, runs: (d) => d.runs ?? -1,
  uptime: (d) => (running(d) ? -d.started_at : -Infinity),
  cpu: (d) => d.cpu_percent ?? -1, memory: (d) => d.memory ?? -1,
  group: (d) => (d.group || "") + "@" + (d.instance || ""),
};

function isSortedBy(keys) { return keys.includes(model.sortKey); }

function compareRows(a, b) {
  const va = SORT_VALUE[model.sortKey](a.data), vb = SORT_VALUE[model.sortKey](b.data);
  let c = typeof va === "string" ? va.localeCompare(vb) : va - vb;
  if (!c && model.sortKey !== "name") c = a.data.name.localeCompare(b.data.name);
  return c * model.sortDir;
}

function reorder() {
  model.resort = false;
  const sorted = [...model.rows.values()].sort(compareRows);
  const same = sorted.length === model.order.length &&
    sorted.every((row, i) => row.data.name === model.order[i]);
  if (same) return;
  model.order = sorted.map((row) => row.data.name);
  const fragment = document.createDocumentFragment();
  for (const row of sorted) fragment.appendChild(row.tr);
  ui.rows.appendChild(fragment);
}

for (const button of document.querySelectorAll("thead th button")) {
  button.addEventListener("click", () => {
    const key = button.dataset.key;
    model.sortDir = model.sortKey === key ? -model.sortDir : 1;
    model.sortKey = key;
    for (const th of document.querySelectorAll("thead th")) {
      const mine = th.contains(button);
      th.setAttribute("aria-sort", mine ? (model.sortDir > 0 ? "ascending" : "descending") : "none");
    }
    model.resort = true;
    schedule();
  });
}

function matchesFilter(row) {
  return !model.filter || row.search.includes(model.filter);
}

ui.filter.addEventListener("input", () => {
  model.filter = ui.filter.value.trim().toLowerCase();
  for (const row of model.rows.values()) {
    const hidden = !matchesFilter(row);
    if (row.tr.hidden !== hidden) row.tr.hidden = hidden;
  }
  summarize();
});

// ------------------------------------------------------------------ detail panel
let logSocket = null;
let refreshTimer = 0;

const DETAIL_FIELDS = [
  ["State", (r) => r.state + (r.reason ? ` (${r.reason})` : "")],
  ["PID", (r) => r.pid], ["Health", (r) => r.health], ["Runs", (r) => r.runs],
  ["Restarts", (r) => r.restarts],
  ["Exit", (r) => (r.exit_signal != null ? "signal " + r.exit_signal : r.exit_code)],
  ["Started", (r) => time(r.started_at)], ["Ended", (r) => time(r.ended_at)],
  ["Next restart", (r) => time(r.next_restart_at)], ["Status", (r) => r.status_text],
  ["Command", (r) => [r.command, ...(r.args || [])].join(" ")],
  ["Description", (r) => r.description], ["Type", (r) => r.process_type],
  ["Restart policy", (r) => r.restart], ["Auto start", (r) => (r.auto_start ? "yes" : "no")],
  ["Group", (r) => r.group && `${r.group.name} (${r.group.strategy}, ${r.group.state})`],
  ["Kill mode", (r) => r.kill_mode_effective],
  ["Cgroup", (r) => r.cgroup], ["ID", (r) => r.id],
  ["Dependencies", (r) => (r.dependencies || []).map((d) => `${d.directive} ${d.name} (${d.state})`).join(", ")],
];

function time(t) { return t ? new Date(t * 1000).toLocaleString() : ""; }

async function select(name, { keepLog = false } = {}) {
  const changed = model.selected !== name;
  model.selected = name;
  for (const row of model.rows.values()) row.tr.classList.toggle("selected", row.data.name === name);
  ui.detail.hidden = false;
  ui.detailTitle.textContent = name;
  if (changed) ui.actionResult.textContent = "";
  if (changed || !keepLog) followLog(name);
  await refreshDetail();
}

function closeDetail() {
  model.selected = null;
  ui.detail.hidden = true;
  if (logSocket) { logSocket.intentional = true; logSocket.close(); logSocket = null; }
  for (const row of model.rows.values()) row.tr.classList.remove("selected");
}
$("close-detail").addEventListener("click", closeDetail);

function refreshDetailSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshDetail, 250);
}

async function refreshDetail() {
  const name = model.selected;
  if (!name) return;
  let record;
  try {
    record = await api(processPath(name));
  } catch (err) {
    if (err.code === "PROCESS_NOT_FOUND") closeDetail();
    return;
  }
  if (model.selected !== name) return;
  const fragment = document.createDocumentFragment();
  for (const [label, value] of DETAIL_FIELDS) {
    const v = value(record);
    if (v === null || v === undefined || v === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = String(v);
    fragment.append(dt, dd);
  }
  ui.fields.replaceChildren(fragment);
  updateActions(record.state);
}

function updateActions(state) {
  const allowed = {
    start: !ACTIVE.has(state), stop: ACTIVE.has(state) || state === "backoff",
    restart: true, pause: state === "running", resume: state === "paused",
  };
  for (const button of document.querySelectorAll(".actions button")) {
    button.disabled = ACCESS !== "token" || !allowed[button.dataset.action];
  }
}

for (const button of document.querySelectorAll(".actions button")) {
  button.addEventListener("click", async () => {
    const name = model.selected, action = button.dataset.action;
    if (!name || ACCESS !== "token") return;
    ui.actionResult.className = "result";
    ui.actionResult.textContent = `${action}: ${name}…`;
    try {
      const record = await api(processPath(name) + "/" + action, "POST");
      ui.actionResult.textContent = `${action}: ${name} is ${record.state}`;
    } catch (err) {
      ui.actionResult.className = "result error";
      ui.actionResult.textContent = `${action} failed: ${err.code}: ${err.message}`;
    }
    refreshDetail();
  });
}

function followLog(name) {
  if (logSocket) { logSocket.intentional = true; logSocket.close(); }
  ui.log.replaceChildren();
  logSocket = openSocket("/logs?process=" + encodeURIComponent(name) + "&lines=200", (msg) => {
    if (model.selected !== name) return;
    if (msg.type === "tail") { ui.log.replaceChildren(); appendLines(msg.lines); }
    else if (msg.type === "line") appendLines([msg]);
  }, { quiet: true });
}

function appendLines(lines) {
  const atBottom = ui.log.scrollTop + ui.log.clientHeight >= ui.log.scrollHeight - 4;
  const fragment = document.createDocumentFragment();
  for (const item of lines) {
    const div = document.createElement("div");
    if (item.stream === "stderr") div.className = "stderr";
    const t = document.createElement("span");
    t.className = "t";
    t.textContent = new Date(item.time * 1000).toLocaleTimeString();
    div.append(t, document.createTextNode(item.line));
    fragment.appendChild(div);
  }
  ui.log.appendChild(fragment);
  while (ui.log.childElementCount > LOG_LINES) ui.log.firstElementChild.remove();
  if (atBottom) ui.log.scrollTop = ui.log.scrollHeight;
}

// ------------------------------------------------------------------ start
function showMode() {
  if (ACCESS === "token") {
    ui.mode.textContent = "changes allowed with the token";
    ui.mode.className = "mode token";
    ui.actionsNote.textContent = "";
  } else {
    ui.mode.textContent = "read-only";
    ui.mode.className = "mode read-only";
    ui.actionsNote.textContent = "Read-only: this daemon was started without --token-file, " +
      "so nothing can be changed from this page. Use the dd-procmgr CLI, or start the " +
      "daemon with --token-file to enable these buttons.";
    for (const button of document.querySelectorAll(".actions button")) button.disabled = true;
  }
}

showMode();
takeTokenFromFragment();
connect();
