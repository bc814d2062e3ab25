// dedup review: the page. Plain JavaScript, no build step, nothing fetched from elsewhere.
// Every name from the plan is put in the page as text (textContent), never as HTML.
"use strict";

// The token arrives in the address's fragment (never sent to a server), is kept for this
// tab only (sessionStorage belongs to this origin and port), and leaves the address bar.
const token = (() => {
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) {
    sessionStorage.setItem("dedup-token", given);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("dedup-token") || "";
})();
const state = { plan: null, sorted: null, order: [], current: 0, chosen: 0, compare: null };
const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const options = { headers: { "X-Dedup-Token": token }, credentials: "omit" };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function say(text, error = false) {
  const message = $("message");
  message.textContent = text;
  message.className = error ? "error" : "";
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let k = 0;
  while (n >= 1000 && k < units.length - 1) { n /= 1000; k += 1; }
  return `${k ? n.toFixed(1) : n} ${units[k]}`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const KIND_ORDER = { exact: 0, pixels: 1, geometry: 2, reviewed: 3, related: 4 };

function duplicateGroups() {
  return state.plan.groups.filter((g) => g.related === null);
}

// The order is set when the page loads and when the sort changes, not on every decision:
// a card never jumps away from under the reviewer.
function sortGroups() {
  const key = {
    space: (g) => -g.bytes_to_free,
    size: (g) => -g.total_bytes,
    files: (g) => -g.files.length,
    kind: (g) => KIND_ORDER[g.kind] ?? 9,
  }[$("sort").value];
  state.sorted = duplicateGroups().sort((a, b) => key(a) - key(b) || a.id - b.id).map((g) => g.id);
}

function arrange() {
  const filter = $("filter").value;
  if (!state.sorted) sortGroups();
  let groups = state.sorted.map((id) => state.plan.groups[id]);
  if (filter === "undecided") groups = groups.filter((g) => !g.accepted && !g.not_duplicates && !g.applied);
  else if (filter !== "all") groups = groups.filter((g) => g.kind === filter);
  const before = state.order[state.current];
  state.order = groups.map((g) => g.id);
  const at = state.order.indexOf(before);
  state.current = at >= 0 ? at : Math.min(state.current, Math.max(0, state.order.length - 1));
}

function currentGroup() {
  const id = state.order[state.current];
  return id === undefined ? null : state.plan.groups[id];
}

function role(group, k) {
  if (group.related !== null) return ["related", "STAYS"];
  if (k === group.keeper) return ["keeper", "KEEPER"];
  if (!group.not_duplicates && group.remove.includes(k)) return ["remove", "REMOVE"];
  return ["keep", "KEEP"];
}

function tile(group, file, k, editable) {
  const [kind, label] = role(group, k);
  const isCurrent = currentGroup() && currentGroup().id === group.id;
  const figure = el("figure", {
    class: `tile ${kind}${isCurrent && k === state.chosen ? " chosen" : ""}`,
    "data-index": String(k),
    "data-role": kind,
  });
  const img = el("img", { src: file.thumb, alt: file.name, loading: "lazy" });
  img.addEventListener("click", () => { focusGroup(group.id, k); openCompare(); });
  figure.append(img);
  const facts = [bytes(file.size)];
  if (file.width && file.height) facts.push(`${file.width}×${file.height}`);
  if (file.format) facts.push(file.format);
  const caption = el("figcaption", {},
    el("div", { class: "role", text: `${k + 1} · ${label}` }),
    el("div", { class: "name", text: file.name }),
    el("div", { class: "folder", text: file.folder || "." }),
    el("div", { text: facts.join(" · ") }),
    file.captured ? el("div", { text: `taken ${file.captured}${file.camera ? ` · ${file.camera}` : ""}` }) : null,
    file.similarity !== null && k !== group.keeper
      ? el("div", { text: `${group.keeper === 0 ? "similarity to keeper" : "similarity to the proposed keeper"} ${file.similarity.toFixed(3)} · ${file.method}` })
      : null,
  );
  figure.append(caption);
  if (editable) {
    const actions = el("div", { class: "actions" });
    if (k !== group.keeper && !group.not_duplicates) {
      actions.append(el("button", { text: "Keep this", onclick: () => { focusGroup(group.id, k); makeKeeper(); } }));
      actions.append(el("button", {
        text: group.remove.includes(k) ? "Don't remove" : "Remove",
        onclick: () => { focusGroup(group.id, k); toggleRemove(); },
      }));
    }
    actions.append(el("button", { text: "Compare", onclick: () => { focusGroup(group.id, k); openCompare(); } }));
    figure.append(actions);
  }
  return figure;
}

function card(group, number) {
  const editable = group.related === null && !group.applied;
  let stateText = "undecided";
  if (group.applied) stateText = `applied (run ${group.applied})`;
  else if (group.not_duplicates) stateText = "not duplicates";
  else if (group.accepted) stateText = "accepted";
  const isCurrent = currentGroup() && currentGroup().id === group.id;
  const section = el("section", {
    class: `group${isCurrent ? " current" : ""}${group.not_duplicates ? " not-duplicates" : ""}${group.accepted ? " accepted" : ""}`,
    id: `group-${group.id}`,
    "data-id": String(group.id),
  });
  const title = group.related !== null
    ? `Related pair: ${group.related}`
    : `Group ${number} · ${group.kind} · frees ${bytes(group.bytes_to_free)}`;
  section.append(el("div", { class: "group-head" },
    el("h3", { text: title }),
    group.why ? el("span", { class: "why", text: `kept: ${group.why}` }) : null,
    el("span", { class: "state", text: group.related !== null ? "both stay" : stateText }),
  ));
  const tiles = el("div", { class: "tiles" });
  group.files.forEach((file, k) => tiles.append(tile(group, file, k, editable)));
  section.append(tiles);
  if (editable) {
    section.append(el("div", { class: "group-actions" },
      el("button", { text: group.not_duplicates ? "Undo “not duplicates”" : "Not duplicates", onclick: () => { focusGroup(group.id, 0); toggleNotDuplicates(); } }),
      el("button", { text: group.accepted ? "Unaccept" : "Accept", onclick: () => { focusGroup(group.id, 0); toggleAccept(); } }),
    ));
  }
  section.addEventListener("click", (event) => {
    if (event.target.closest("button, img")) return;
    focusGroup(group.id, state.current === state.order.indexOf(group.id) ? state.chosen : 0);
  });
  return section;
}

// Cards are drawn a batch at a time, more as the reviewer scrolls or moves near the end: a
// plan of tens of thousands of groups shows its first cards at once.
const BATCH = 100;
let more = null;

function drawMore() {
  const groupsNode = $("groups");
  const from = groupsNode.querySelectorAll("section.group").length;
  const to = Math.min(state.shown, state.order.length);
  for (let position = from; position < to; position += 1) {
    groupsNode.insertBefore(card(state.plan.groups[state.order[position]], position + 1), $("more"));
  }
  $("more").hidden = to >= state.order.length;
  $("more").textContent = `${state.order.length - to} more groups below`;
}

function render() {
  arrange();
  state.shown = Math.max(state.shown || BATCH, state.current + 1);
  const groupsNode = $("groups");
  groupsNode.replaceChildren(el("p", { id: "more", class: "more" }));
  if (!state.order.length) groupsNode.prepend(el("p", { text: "No duplicate groups to show." }));
  drawMore();
  if (!more && "IntersectionObserver" in window) {
    more = new IntersectionObserver((seen) => {
      if (seen.some((entry) => entry.isIntersecting) && state.shown < state.order.length) {
        state.shown += BATCH;
        drawMore();
      }
    }, { rootMargin: "600px" });
  }
  if (more) {
    more.disconnect();
    more.observe($("more"));
  }
  const related = state.plan.groups.filter((g) => g.related !== null);
  $("related-heading").hidden = related.length === 0;
  $("related").replaceChildren(...related.slice(0, 500).map((g) => card(g, 0)));
  if (related.length > 500) {
    $("related").append(el("p", { class: "more", text: `… and ${related.length - 500} more related pairs (see dedup find --json)` }));
  }
  updateSummary();
  $("finish").hidden = !state.plan.finish;
  $("apply").hidden = state.plan.actions.length === 0;
  renderRuns();
}

// Redraw only what changed: a decision redraws its card, a move the two cards it leaves
// and enters (a full redraw of thousands of cards on every key would be slow).
function redrawGroup(id) {
  const node = $(`group-${id}`);
  const at = state.order.indexOf(id);
  if (!node || at < 0) return;
  node.replaceWith(card(state.plan.groups[id], at + 1));
}

function updateSummary() {
  const all = duplicateGroups();
  const related = state.plan.groups.filter((g) => g.related !== null);
  const accepted = all.filter((g) => g.accepted && !g.applied && !g.not_duplicates);
  const freed = accepted.reduce((sum, g) => sum + g.bytes_to_free, 0);
  $("summary").textContent =
    `${all.length} groups · ${accepted.length} accepted (${bytes(freed)} to free) · ` +
    `${all.filter((g) => g.not_duplicates).length} not duplicates · ${related.length} related`;
}

function renderRuns() {
  const runs = $("runs");
  runs.replaceChildren();
  for (const run of state.plan.runs) {
    const line = el("p", { text: `run ${run.run_id}: ${run.action}${run.undone ? " (undone)" : ""} ` });
    if (run.action === "move" && !run.undone) {
      line.append(el("button", { text: "Undo this run", class: "undo", onclick: () => undo(run.run_id) }));
    }
    runs.append(line);
  }
}

function setCurrent(at, chosen) {
  if (at >= state.shown) {
    state.shown = at + BATCH;
    drawMore();
  }
  const before = state.order[state.current];
  state.current = at;
  state.chosen = chosen;
  if (before !== undefined && before !== state.order[at]) redrawGroup(before);
  const id = state.order[at];
  if (id === undefined) return;
  redrawGroup(id);
  const node = $(`group-${id}`);
  if (node && node.scrollIntoView) node.scrollIntoView({ block: "nearest" });
}

function focusGroup(id, chosen) {
  const at = state.order.indexOf(id);
  if (at >= 0) setCurrent(at, chosen);
}

function move(delta) {
  if (!state.order.length) return;
  setCurrent(Math.max(0, Math.min(state.order.length - 1, state.current + delta)), 0);
}

async function decide(changes) {
  const group = currentGroup();
  if (!group || group.related !== null || group.applied) return;
  const body = {
    group: group.id, keeper: group.keeper, remove: group.remove,
    not_duplicates: group.not_duplicates, accepted: group.accepted, ...changes,
  };
  try {
    state.plan.groups[group.id] = await api("/api/decision", body);
    redrawGroup(group.id);
    updateSummary();
  } catch (error) {
    say(error.message, true);
  }
}

function makeKeeper() {
  const group = currentGroup();
  if (!group || state.chosen === group.keeper) return;
  // The old keeper stays unless the reviewer marks it: a group never loses its last copy.
  decide({ keeper: state.chosen, remove: group.remove.filter((k) => k !== state.chosen) });
}

function toggleRemove() {
  const group = currentGroup();
  if (!group || state.chosen === group.keeper) return;
  const remove = group.remove.includes(state.chosen)
    ? group.remove.filter((k) => k !== state.chosen)
    : [...group.remove, state.chosen];
  decide({ remove });
}

function toggleNotDuplicates() {
  const group = currentGroup();
  if (group) decide({ not_duplicates: !group.not_duplicates, accepted: false });
}

function toggleAccept() {
  const group = currentGroup();
  if (group) decide({ accepted: !group.accepted, not_duplicates: false });
}

async function acceptAndNext() {
  const group = currentGroup();
  if (!group) return;
  if (!group.accepted && !group.not_duplicates) await decide({ accepted: true });
  move(1);
}

async function acceptAll() {
  try {
    const done = await api("/api/accept-all", {});
    await load();
    say(`${done.accepted} group(s) accepted`);
  } catch (error) {
    say(error.message, true);
  }
}

// -- compare: full size, side by side, synchronised zoom and pan, flicker, difference ----------

function openCompare() {
  const group = currentGroup();
  if (!group) return;
  const other = state.chosen === group.keeper ? (group.keeper === 0 ? 1 : 0) : state.chosen;
  state.compare = { group, other, mode: "side", scale: 1, x: 0, y: 0, timer: null };
  $("compare").hidden = false;
  drawCompare();
}

function closeCompare() {
  if (state.compare && state.compare.timer) clearInterval(state.compare.timer);
  state.compare = null;
  $("compare").hidden = true;
  $("panes").replaceChildren();
}

function fullImage(group, k, extra = "") {
  return el("img", { src: group.files[k].full, alt: group.files[k].name, class: extra, draggable: "false" });
}

function drawCompare() {
  const c = state.compare;
  if (c.timer) { clearInterval(c.timer); c.timer = null; }
  const { group, other } = c;
  const keeperName = `${group.keeper + 1} · ${group.files[group.keeper].name} (keeper)`;
  const otherName = `${other + 1} · ${group.files[other].name}`;
  $("compare-title").textContent = `${keeperName}  vs  ${otherName}`;
  for (const button of document.querySelectorAll(".compare-bar [data-mode]")) {
    button.classList.toggle("active", button.dataset.mode === c.mode);
  }
  const panes = $("panes");
  panes.replaceChildren();
  if (c.mode === "side") {
    panes.append(el("div", { class: "pane" }, el("span", { class: "label", text: keeperName }), fullImage(group, group.keeper)));
    panes.append(el("div", { class: "pane" }, el("span", { class: "label", text: otherName }), fullImage(group, other)));
  } else if (c.mode === "flicker") {
    const label = el("span", { class: "label", text: keeperName });
    const first = fullImage(group, group.keeper);
    const second = fullImage(group, other);
    second.style.visibility = "hidden";
    panes.append(el("div", { class: "pane" }, label, first, second));
    let showing = false;
    c.timer = setInterval(() => {
      showing = !showing;
      second.style.visibility = showing ? "visible" : "hidden";
      label.textContent = showing ? otherName : keeperName;
    }, 700);
  } else {
    panes.append(el("div", { class: "pane" },
      el("span", { class: "label", text: "difference: black where the two agree" }),
      fullImage(group, group.keeper), fullImage(group, other, "over")));
  }
  for (const pane of panes.querySelectorAll(".pane")) wirePane(pane);
  applyView();
}

function applyView() {
  const c = state.compare;
  for (const img of document.querySelectorAll("#panes img")) {
    img.style.transform = `translate(${c.x}px, ${c.y}px) scale(${c.scale})`;
  }
}

function wirePane(pane) {
  pane.addEventListener("wheel", (event) => {
    event.preventDefault();
    const c = state.compare;
    const box = pane.getBoundingClientRect();
    const px = event.clientX - box.left;
    const py = event.clientY - box.top;
    const factor = event.deltaY < 0 ? 1.25 : 0.8;
    const scale = Math.max(1, Math.min(40, c.scale * factor));
    c.x = px - ((px - c.x) * scale) / c.scale;
    c.y = py - ((py - c.y) * scale) / c.scale;
    c.scale = scale;
    if (scale === 1) { c.x = 0; c.y = 0; }
    applyView();
  }, { passive: false });
  let drag = null;
  pane.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX, y: event.clientY };
    pane.setPointerCapture(event.pointerId);
  });
  pane.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const c = state.compare;
    c.x += event.clientX - drag.x;
    c.y += event.clientY - drag.y;
    drag = { x: event.clientX, y: event.clientY };
    applyView();
  });
  pane.addEventListener("pointerup", () => { drag = null; });
}

// -- apply and undo -----------------------------------------------------------------------------

async function openApply() {
  let counts;
  try {
    counts = await api("/api/pending");
  } catch (error) {
    say(error.message, true);
    return;
  }
  state.pending = counts;
  $("results").replaceChildren();
  $("dialog-counts").textContent =
    `${counts.files} file(s) to remove from ${counts.groups} accepted group(s), ${bytes(counts.bytes)}; ` +
    `${counts.not_duplicates} group(s) to remember as not duplicates. Keepers are never touched, ` +
    "and every file is checked again before it is removed.";
  const select = $("action");
  select.replaceChildren(...state.plan.actions.map((a) => el("option", { value: a, text: a })));
  $("to-label").hidden = select.value !== "move";
  $("dialog-ok").disabled = counts.files === 0 && counts.not_duplicates === 0;
  $("dialog").hidden = false;
}

async function confirmApply() {
  const action = $("action").value;
  const body = { action, confirm: { files: state.pending.files, bytes: state.pending.bytes } };
  if (action === "move") body.to = $("to").value.trim();
  $("dialog-ok").disabled = true;
  try {
    const result = await api("/api/apply", body);
    const list = el("ul");
    for (const kind of ["done", "skipped", "failed"]) {
      for (const item of result[kind] || []) {
        const where = item.destination ? ` → ${item.destination}` : "";
        list.append(el("li", { class: kind, text: `${kind}: ${item.path}${where}${item.reason ? ` (${item.reason})` : ""}` }));
      }
    }
    const summary = result.run_id
      ? `run ${result.run_id}: ${result.action} ${(result.done || []).length} file(s), ${(result.skipped || []).length} skipped, ${(result.failed || []).length} failed`
      : `nothing removed; ${result.not_duplicates_remembered} pair(s) remembered as not duplicates`;
    $("results").replaceChildren(el("p", { text: summary, id: "apply-summary" }), list);
    await load();
  } catch (error) {
    $("results").replaceChildren(el("p", { class: "error", text: error.message }));
    $("dialog-ok").disabled = false;
  }
}

async function undo(runId) {
  try {
    const report = await api("/api/undo", { run_id: runId });
    await load();
    const left = [...report.skipped, ...report.failed];
    const named = left.map((item) => `${item.path}: ${item.reason}`).join("; ");
    say(`run ${runId} undone: ${report.restored.length} file(s) put back` +
      (left.length ? `; ${left.length} not (still in the quarantine, undo again later): ${named}` : ""),
      left.length > 0);
  } catch (error) {
    say(error.message, true);
  }
}

async function finish() {
  try {
    await api("/api/finish", {});
    say("Review finished: go back to the terminal to confirm.");
    for (const button of document.querySelectorAll("button")) button.disabled = true;
  } catch (error) {
    say(error.message, true);
  }
}

// -- keys ---------------------------------------------------------------------------------------

function onKey(event) {
  if (event.target.closest && event.target.closest("input, select, textarea")) return;
  if (!$("compare").hidden) {
    if (event.key === "Escape") closeCompare();
    else if (event.key === "d") {
      const modes = ["side", "flicker", "difference"];
      state.compare.mode = modes[(modes.indexOf(state.compare.mode) + 1) % modes.length];
      drawCompare();
    } else if (event.key === "0") {
      Object.assign(state.compare, { scale: 1, x: 0, y: 0 });
      applyView();
    }
    return;
  }
  if (!$("dialog").hidden || !$("help").hidden) {
    if (event.key === "Escape") { $("dialog").hidden = true; $("help").hidden = true; }
    return;
  }
  const group = currentGroup();
  const key = event.key;
  let handled = true;
  if (key === "ArrowRight" || key === "j") move(1);
  else if (key === "ArrowLeft" || key === "k") move(-1);
  else if (/^[1-9]$/.test(key) && group && Number(key) <= group.files.length) setCurrent(state.current, Number(key) - 1);
  else if (key === "Tab" && group) setCurrent(state.current, (state.chosen + (event.shiftKey ? group.files.length - 1 : 1)) % group.files.length);
  else if (key === "Enter" || key === "p") makeKeeper();
  else if (key === "x" || key === " ") toggleRemove();
  else if (key === "n") toggleNotDuplicates();
  else if (key === "a") acceptAndNext();
  else if (key === "A") acceptAll();
  else if (key === "c") openCompare();
  else if (key === "?") $("help").hidden = false;
  else handled = false;
  if (handled) event.preventDefault();
}

async function load() {
  if (!token) {
    say("Open the address dedup printed: it carries the key to this review.", true);
    return;
  }
  state.plan = await api("/api/plan");
  state.sorted = null;
  document.title = state.plan.title;
  render();
}

function wire() {
  $("sort").addEventListener("change", () => { sortGroups(); render(); });
  $("filter").addEventListener("change", render);
  $("accept-all").addEventListener("click", acceptAll);
  $("apply").addEventListener("click", openApply);
  $("finish").addEventListener("click", finish);
  $("help-button").addEventListener("click", () => { $("help").hidden = false; });
  $("help-close").addEventListener("click", () => { $("help").hidden = true; });
  $("compare-close").addEventListener("click", closeCompare);
  for (const button of document.querySelectorAll(".compare-bar [data-mode]")) {
    button.addEventListener("click", () => { state.compare.mode = button.dataset.mode; drawCompare(); });
  }
  $("dialog-cancel").addEventListener("click", () => { $("dialog").hidden = true; });
  $("dialog-ok").addEventListener("click", confirmApply);
  $("action").addEventListener("change", () => { $("to-label").hidden = $("action").value !== "move"; });
  document.addEventListener("keydown", onKey);
  load().catch((error) => say(error.message, true));
}

wire();
