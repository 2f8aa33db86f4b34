// The class dashboard: polls /dashboard/api/state and draws one card per student.
// Everything a student wrote (code, names) goes in with textContent, never as HTML.
"use strict";

const POLL_MS = 2000;
const ARM_MS = 4000;
const armed = new Map(); // action id -> time it was armed (a second click confirms)
let timer = null;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function elapsed(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function number(value, unit) {
  return value === null || value === undefined ? "–" : `${value}${unit}`;
}

function notice(text) {
  document.getElementById("notice").textContent = text;
}

function actionButton(label, id, payload, { confirm = false } = {}) {
  const button = el("button", { type: "button", text: label, "data-action": id });
  const armedAt = armed.get(id);
  if (confirm && armedAt && Date.now() - armedAt < ARM_MS) {
    button.classList.add("armed");
    button.textContent = `Confirm: ${label.toLowerCase()}?`;
  }
  button.addEventListener("click", async () => {
    if (confirm && !(armed.get(id) && Date.now() - armed.get(id) < ARM_MS)) {
      armed.set(id, Date.now());
      button.classList.add("armed");
      button.textContent = `Confirm: ${label.toLowerCase()}?`;
      return;
    }
    armed.delete(id);
    button.disabled = true;
    const response = await fetch("/dashboard/api/action", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Dashboard": "1" },
      body: JSON.stringify(payload),
    });
    const answer = await response.json().catch(() => ({}));
    notice(response.ok ? answer.done : `Could not do it: ${answer.error ? answer.error.message : response.status}`);
    refresh();
  });
  return button;
}

function runsTable(student) {
  if (!student.runs.length) return el("p", { class: "none", text: "no runs queued or running" });
  const body = el("tbody");
  for (const run of student.runs) {
    const cancel = actionButton("Cancel", `cancel:${run.id}`, {
      action: "cancel_run", sandbox_id: run.sandbox_id, run_id: run.id,
    });
    const status = run.nice ? `${run.status} (nice ${run.nice})` : run.status;
    body.append(el("tr", { "data-run": run.id },
      el("td", { class: `status-${run.status}`, text: status }),
      el("td", {}, el("code", { text: run.first_line || "(empty)" })),
      el("td", { text: elapsed(run.elapsed_seconds) }),
      el("td", {}, cancel)));
  }
  return el("table", { class: "runs" },
    el("thead", {}, el("tr", {}, el("th", { text: "run" }), el("th", { text: "code" }),
      el("th", { text: "for" }), el("th"))), body);
}

function sandboxesTable(student) {
  if (!student.sandboxes.length) return el("p", { class: "none", text: "no sandboxes" });
  const body = el("tbody");
  for (const sandbox of student.sandboxes) {
    const remove = actionButton("Delete sandbox", `delete:${sandbox.id}`,
      { action: "delete_sandbox", sandbox_id: sandbox.id }, { confirm: true });
    body.append(el("tr", { "data-sandbox": sandbox.id },
      el("td", {}, el("code", { text: sandbox.id })),
      el("td", { text: `${sandbox.contexts.length} context(s)` }),
      el("td", { text: number(sandbox.cpu_percent, " % CPU") }),
      el("td", { text: number(sandbox.memory_mb, " MB") }),
      el("td", {}, remove)));
    for (const context of sandbox.contexts) {
      const restart = actionButton("Restart", `restart:${context.id}`,
        { action: "restart_context", sandbox_id: sandbox.id, context_id: context.id }, { confirm: true });
      body.append(el("tr", { "data-context": context.id },
        el("td", {}, el("code", { text: `  ${context.id}` })),
        el("td", { text: `${context.language}${context.busy ? " · busy" : ""}` }),
        el("td", { text: number(context.cpu_percent, " % CPU") }),
        el("td", { text: number(context.memory_mb, " MB") }),
        el("td", {}, restart)));
    }
  }
  return el("table", { class: "sandboxes" }, body);
}

function failuresList(student) {
  if (!student.failures.length) return null;
  const body = el("tbody");
  for (const failure of student.failures) {
    body.append(el("tr", { class: "failure", "data-failure": failure.id },
      el("td", {}, el("code", { text: failure.first_line || "(empty)" })),
      el("td", { text: failure.reason || "" })));
  }
  return el("table", { class: "failures" },
    el("thead", {}, el("tr", {}, el("th", { text: "recent failures" }), el("th"))), body);
}

function card(student) {
  const heading = el("h2", {}, el("span", { class: "name", text: student.name }));
  if (student.admin) heading.append(el("span", { class: "role", text: "admin" }));
  if (student.key && !student.admin) {
    heading.append(actionButton("Revoke key", `revoke:${student.name}`,
      { action: "revoke_key", name: student.name }, { confirm: true }));
  }
  const running = student.runs.filter((run) => run.status === "running").length;
  const queued = student.runs.length - running;
  const facts = el("p", { class: "facts", text:
    `last activity ${ago(student.idle_seconds)} · ${running} running, ${queued} queued · ` +
    `CPU ${number(student.cpu_percent, " %")} · memory ${number(student.memory_mb, " MB")}` });
  const section = el("section", { class: "student", "data-student": student.name },
    heading, facts, runsTable(student), sandboxesTable(student), failuresList(student));
  if (running) section.classList.add("busy");
  if (student.failures.length) section.classList.add("failing");
  return section;
}

function render(state) {
  const main = document.getElementById("class");
  const students = state.students.filter((s) => s.admin === false || s.sandboxes.length || s.runs.length);
  main.replaceChildren(...students.map(card));
  const running = students.reduce((n, s) => n + s.runs.filter((r) => r.status === "running").length, 0);
  document.getElementById("summary").textContent =
    `${students.filter((s) => !s.admin).length} students · ${running} runs running`;
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function showLogin(show) {
  document.getElementById("login").hidden = !show;
  document.getElementById("class").hidden = show;
  document.getElementById("logout").hidden = show;
}

async function refresh() {
  let response;
  try {
    response = await fetch("/dashboard/api/state", { credentials: "same-origin" });
  } catch (error) {
    notice("The server does not answer; retrying.");
    return;
  }
  if (response.status === 401) {
    showLogin(true);
    return;
  }
  showLogin(false);
  if (response.ok) render(await response.json());
}

function start() {
  document.getElementById("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("key");
    const response = await fetch("/dashboard/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key: input.value }),
    });
    input.value = "";
    const answer = await response.json().catch(() => ({}));
    document.getElementById("login-error").textContent =
      response.ok ? "" : (answer.error ? answer.error.message : "Sign-in failed.");
    if (response.ok) refresh();
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/dashboard/logout", { method: "POST", credentials: "same-origin" });
    showLogin(true);
  });
  refresh();
  timer = setInterval(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
