// app.js: the canopy dashboard. Polls the scheduler's JSON API every 2 s
// and redraws the current page without reloading. Text from the API is
// always set with textContent; only SVG figures from this origin's own
// renderer are inserted as markup.
"use strict";
(function () {
  const page = document.body.dataset.page;
  const params = new URLSearchParams(location.search);
  const main = document.getElementById("main");

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }
  function fmt(v, d) {
    if (typeof v !== "number" || !isFinite(v)) return v === undefined ? "" : String(v);
    return d === undefined ? String(Math.round(v * 1000) / 1000) : v.toFixed(d);
  }
  function table(head, rows) {
    const t = el("table", {}, el("tr", {}, ...head.map((h) => el("th", {}, h))));
    for (const r of rows) t.append(r);
    return t;
  }
  async function api(path) {
    const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }
  async function figures(job, names) {
    const box = el("div", { class: "figures" });
    for (const n of names) {
      const r = await fetch("/api/jobs/" + encodeURIComponent(job) + "/" + encodeURIComponent(n) + ".svg",
        { credentials: "same-origin", cache: "no-store" });
      if (!r.ok) continue;
      const svg = new DOMParser().parseFromString(await r.text(), "image/svg+xml").documentElement;
      const f = el("div", { class: "figure", "data-figure": n });
      f.append(document.importNode(svg, true));
      box.append(f);
    }
    return box;
  }

  async function cluster() {
    const d = await api("/api/nodes");
    const now = performance.now();
    let rate = "";
    if (cluster.last) {
      const dt = (now - cluster.last.t) / 1000;
      rate = fmt((d.scheduler.rpc_calls_total - cluster.last.calls) / dt, 1);
    }
    cluster.last = { t: now, calls: d.scheduler.rpc_calls_total };
    const rows = [el("tr", { class: "node" }, el("td", {}, "scheduler"), el("td", {}, "scheduler"),
      el("td", {}, ""), el("td", { class: "state-alive" }, "alive"), el("td", {}, ""),
      el("td", {}, d.scheduler.address), el("td", {}, ""), el("td", { class: "num" }, rate))];
    for (const n of d.nodes) {
      rows.push(el("tr", { class: "node" }, el("td", {}, n.name), el("td", {}, n.role),
        el("td", { class: "num" }, n.rank), el("td", { class: "state-" + n.state }, n.state),
        el("td", { class: "num" }, fmt(n.last_heartbeat_ms_ago / 1000, 1) + " s ago"),
        el("td", {}, n.address),
        el("td", { class: "num" }, n.role === "worker" ? n.slots_in_use : ""), el("td", {}, n.status)));
    }
    return [el("h1", {}, "Cluster"),
      table(["node", "role", "rank", "health", "last heartbeat", "address", "work slots in use",
        "RPC calls/s (scheduler) / status"], rows)];
  }

  function jobLink(j) {
    const v = j.kind === "sweep" ? "sweep" : j.mode === "federated" ? "federated" : "training";
    return el("a", { href: "/" + v + "?job=" + encodeURIComponent(j.job_id) }, j.job_id);
  }
  async function jobs() {
    const d = await api("/api/jobs");
    const rows = d.map((j) => el("tr", { class: "job" }, el("td", {}, jobLink(j)), el("td", {}, j.kind),
      el("td", { class: "state-" + j.state }, j.state),
      el("td", {}, el("progress", { max: "1", value: String(j.progress) }), " " + fmt(100 * j.progress, 0) + " %"),
      el("td", { class: "num" }, fmt(j.elapsed_seconds, 1) + " s"), el("td", {}, j.name), el("td", {}, j.error)));
    return [el("h1", {}, "Jobs"), d.length ? table(["job", "kind", "state", "progress", "elapsed", "name", "error"], rows)
      : el("p", { class: "missing" }, "No jobs yet: submit one with `canopy tune` or `canopy train`.")];
  }

  // pickJob returns the job named in ?job=, else the newest of the wanted view.
  async function pickJob(view) {
    if (params.get("job")) return params.get("job");
    const all = await api("/api/jobs");
    for (let i = all.length - 1; i >= 0; i--) {
      const j = all[i];
      const v = j.kind === "sweep" ? "sweep" : j.mode === "federated" ? "federated" : "training";
      if (v === view) return j.job_id;
    }
    return null;
  }
  function header(d) {
    return [el("h1", {}, d.kind + " " + d.job_id),
      el("p", {}, "state ", el("span", { class: "state-" + d.state }, d.state), ", ",
        el("progress", { max: "1", value: String(d.progress) }), " " + fmt(100 * d.progress, 0) + " %, " +
        fmt(d.elapsed_seconds, 1) + " s")];
  }
  async function sweep() {
    const id = await pickJob("sweep");
    if (!id) return [el("h1", {}, "Sweep"), el("p", { class: "missing" }, "No sweep yet: run `canopy tune SWEEP.json`.")];
    const d = await api("/api/jobs/" + encodeURIComponent(id));
    const trials = (d.trials || []).slice().sort((a, b) => (b.folds_done ? b.mean_accuracy : -1) - (a.folds_done ? a.mean_accuracy : -1));
    const rows = trials.map((t, i) => el("tr", { class: t.trial === 0 ? "default trial" : "trial" },
      el("td", { class: "num" }, i + 1), el("td", {}, t.trial === 0 ? t.trial + " (default)" : t.trial),
      el("td", {}, JSON.stringify(t.params)), el("td", { class: "num" }, t.folds_done),
      el("td", { class: "num" }, fmt(t.mean_accuracy, 4)), el("td", { class: "num" }, fmt(t.std_accuracy, 4)),
      el("td", { class: "num" }, fmt(t.seconds, 1))));
    return [...header(d), el("p", {}, `units ${d.units_done} done, ${d.units_running} running, ${d.units_failed} failed of ${d.units}`),
      el("h2", {}, "Leaderboard"), table(["#", "trial", "parameters", "folds", "mean CV accuracy", "std", "seconds"], rows),
      await figures(id, d.figures || [])];
  }
  async function training(view) {
    const id = await pickJob(view);
    const what = view === "federated" ? "Federated training" : "Training";
    if (!id) return [el("h1", {}, what), el("p", { class: "missing" },
      view === "federated" ? "No federated job yet: run `canopy train JOB.json` with \"mode\": \"federated\"."
        : "No training job yet: run `canopy train JOB.json`.")];
    const d = await api("/api/jobs/" + encodeURIComponent(id));
    const facts = d.mode === "federated" ? el("p", {}, `model ${d.model || ""}, ${d.strategy || ""}, ` +
      `round ${d.round || 0}/${d.rounds || 0}, ${d.clients || 0} clients, test accuracy ${fmt(d.accuracy, 4)}`)
      : el("p", {}, `model ${d.model || ""}, ${d.n_params || 0} parameters, ${d.consistency || ""}, ` +
      `${d.shards || 0} shards, ${d.workers_active || 0}/${d.workers_wanted || 0} workers, step ${d.step || 0}/${d.steps || 0}, ` +
      `test accuracy ${fmt(d.accuracy, 4)}, ${fmt(d.samples_per_s, 0)} samples/s`);
    return [...header(d), facts, await figures(id, d.figures || [])];
  }

  const render = { cluster, jobs, sweep, training: () => training("training"), federated: () => training("federated") };
  const nav = document.getElementById("nav-" + page);
  if (nav) nav.className = "current";
  async function tick() {
    try {
      const kids = await render[page]();
      main.replaceChildren(...kids);
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.ready = "1";
    } catch (e) {
      document.getElementById("updated").textContent = "update failed: " + e.message;
    }
    setTimeout(tick, 2000);
  }
  tick();
})();
