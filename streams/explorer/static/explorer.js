// The explorer page. The URL holds the whole query; every event-supplied string is written with
// textContent (never parsed as HTML), so a message can hold any markup and stay inert text.
(function () {
  "use strict";

  const FILTERS = ["q", "cluster", "namespace", "kind", "name", "type", "reason", "component", "owner", "labels"];
  const SEARCH_KEYS = FILTERS.concat(["range", "from", "to", "size", "after"]);
  const FOLD = 200;
  const SLOW_MS = 1000;
  const $ = (id) => document.getElementById(id);
  let chart = null;
  let generation = 0;

  function params() {
    return new URLSearchParams(window.location.search);
  }

  function apiQuery(p, keys) {
    const out = new URLSearchParams();
    for (const key of keys) {
      const value = p.get(key);
      if (value) out.set(key, value);
    }
    return out;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function utc(value) {
    if (!value) return "";
    const d = new Date(value);
    if (isNaN(d.getTime())) return String(value);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
  }

  function iso(seconds) {
    return new Date(Math.round(seconds) * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  }

  function navigate(changes, push) {
    const p = params();
    for (const [key, value] of Object.entries(changes)) {
      if (value === null || value === undefined || value === "") p.delete(key);
      else p.set(key, value);
    }
    const url = window.location.pathname + (p.toString() ? "?" + p.toString() : "");
    if (push === false) window.history.replaceState(changes.__state || null, "", url);
    else window.history.pushState(changes.__state || null, "", url);
    render();
  }

  async function getJSON(url, signalState) {
    const slow = window.setTimeout(() => signalState("slow"), SLOW_MS);
    try {
      const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      let body = null;
      try {
        body = await resp.json();
      } catch (e) {
        body = { error: "the worker answered " + resp.status + " without JSON" };
      }
      if (!resp.ok) {
        const err = new Error((body && body.error) || "the worker answered " + resp.status);
        err.state = (body && body.state) || "error";
        throw err;
      }
      return body;
    } catch (e) {
      if (!e.state) {
        e.state = "unreachable";
        e.message = "the worker's web server cannot be reached: " + e.message;
      }
      throw e;
    } finally {
      window.clearTimeout(slow);
    }
  }

  function setStatus(node, state, text) {
    node.dataset.state = state;
    node.textContent = text || "";
  }

  // ---------------------------------------------------------------- form <-> URL

  function fillForm(p) {
    for (const key of FILTERS) $("f-" + key).value = p.get(key) || "";
    $("f-from").value = p.get("from") || "";
    $("f-to").value = p.get("to") || "";
    const range = p.get("from") || p.get("to") ? "" : p.get("range") || "24h";
    for (const button of $("presets").querySelectorAll("button")) {
      button.classList.toggle("active", button.dataset.range === range);
    }
  }

  function formChanges() {
    const changes = { after: null, p: null, t_kind: null, t_name: null, t_namespace: null, t_cluster: null };
    for (const key of FILTERS) changes[key] = $("f-" + key).value.trim();
    const from = $("f-from").value.trim();
    const to = $("f-to").value.trim();
    changes.from = from;
    changes.to = to;
    if (from || to) changes.range = null;
    return changes;
  }

  // ---------------------------------------------------------------- results

  function objectButton(row) {
    const button = el("button", row.kind + "/" + row.name, "object");
    button.type = "button";
    button.title = (row.namespace ? row.namespace + "/" : "") + row.kind + "/" + row.name + ": its timeline";
    button.addEventListener("click", () =>
      navigate({
        t_kind: row.kind,
        t_name: row.name,
        t_namespace: row.namespace,
        t_cluster: row.cluster,
        owners: row.kind === "Pod" ? "1" : null,
      })
    );
    return button;
  }

  function messageCell(text) {
    const td = el("td", null, "message");
    const span = el("span", text.length > FOLD ? text.slice(0, FOLD) + "…" : text);
    td.appendChild(span);
    if (text.length > FOLD) {
      const more = el("button", "more", "fold");
      more.type = "button";
      more.addEventListener("click", () => {
        const open = more.textContent === "more";
        span.textContent = open ? text : text.slice(0, FOLD) + "…";
        more.textContent = open ? "less" : "more";
      });
      td.appendChild(more);
    }
    return td;
  }

  function eventRow(row, withGrowth) {
    const tr = el("tr", null, row.type === "Warning" ? "warning" : "normal");
    tr.dataset.id = row.id;
    const when = el("td", utc(row.time), "time");
    when.title = "first seen " + utc(row.first);
    tr.appendChild(when);
    tr.appendChild(el("td", row.type, "type"));
    tr.appendChild(el("td", row.reason, "reason"));
    const obj = el("td", null, "obj");
    if (row.namespace) obj.appendChild(el("span", row.namespace + "/", "ns"));
    obj.appendChild(objectButton(row));
    tr.appendChild(obj);
    const count = withGrowth && row.growth !== row.count ? row.count + " (+" + row.growth + ")" : String(row.count);
    tr.appendChild(el("td", count, "count"));
    tr.appendChild(messageCell(row.message));
    return tr;
  }

  async function loadResults(p, mine) {
    const body = $("results");
    const state = (s) => {
      if (mine === generation && s === "slow") setStatus($("status"), "slow", "Searching… the search engine is slow to answer.");
    };
    setStatus($("status"), "loading", "Searching…");
    body.dataset.state = "loading";
    let answer;
    try {
      answer = await getJSON("api/search?" + apiQuery(p, SEARCH_KEYS).toString(), state);
    } catch (e) {
      if (mine !== generation) return;
      clear(body);
      body.dataset.state = "error";
      $("summary").textContent = "";
      setStatus($("status"), e.state, e.message);
      $("next").disabled = true;
      $("prev").disabled = true;
      return;
    }
    if (mine !== generation) return;
    clear(body);
    const page = Math.max(1, parseInt(p.get("p") || "1", 10) || 1);
    const size = parseInt(p.get("size") || "50", 10) || 50;
    for (const row of answer.rows) body.appendChild(eventRow(row, false));
    body.dataset.state = answer.rows.length ? "ready" : "empty";
    // For load-time measurements: milliseconds since navigation, in the Performance timeline.
    if (!performance.getEntriesByName("explorer:results").length) performance.mark("explorer:results");
    const first = (page - 1) * size + 1;
    const total = answer.total.toLocaleString("en-US");
    $("summary").textContent = answer.rows.length
      ? total + " events · " + first.toLocaleString("en-US") + "–" + (first + answer.rows.length - 1).toLocaleString("en-US") +
        " · newest first" + (answer.timed_out ? " · partial: the search timed out" : "")
      : "";
    setStatus(
      $("status"),
      answer.rows.length ? "ready" : "empty",
      // A notice is the server's reason the answer is empty or cut (K8SEV_EXPLORER_AUTH=kubernetes).
      answer.notice
        ? answer.notice
        : answer.rows.length ? "" : page > 1 ? "No more events on this page: go back to newer ones." : "No events match these filters in this time range."
    );
    const next = $("next");
    next.disabled = !answer.next;
    next.onclick = () => navigate({ after: answer.next, p: String(page + 1), __state: { paged: true } });
    const prev = $("prev");
    prev.disabled = page <= 1;
    prev.onclick = () => {
      if (window.history.state && window.history.state.paged) window.history.back();
      else navigate({ after: null, p: null });
    };
  }

  // ---------------------------------------------------------------- histogram

  async function loadHistogram(p, mine) {
    const box = $("histogram");
    box.dataset.state = "loading";
    let h;
    try {
      h = await getJSON("api/histogram?" + apiQuery(p, SEARCH_KEYS).toString(), () => {});
    } catch (e) {
      if (mine !== generation) return;
      if (chart) chart.destroy();
      chart = null;
      clear(box);
      box.appendChild(el("p", "histogram unavailable: " + e.message, "muted"));
      box.dataset.state = "error";
      return;
    }
    if (mine !== generation) return;
    if (chart) chart.destroy();
    clear(box);
    const bars = window.uPlot.paths.bars;
    const opts = {
      width: Math.max(300, box.clientWidth || 800),
      height: 160,
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      cursor: { drag: { x: true, y: false, setScale: false } },
      select: { show: true },
      legend: { show: true },
      scales: { x: { time: true, range: [h.start_ms / 1000, h.end_ms / 1000] } },
      axes: [{}, { size: 50 }],
      series: [
        { label: "time (UTC)", value: (u, v) => (v == null ? "" : utc(v * 1000)) },
        { label: "Normal", stroke: "#4a7bd1", fill: "rgba(74,123,209,0.55)", paths: bars({ size: [0.45, 40], align: -1 }), points: { show: false } },
        { label: "Warning", stroke: "#d9822b", fill: "rgba(217,130,43,0.75)", paths: bars({ size: [0.45, 40], align: 1 }), points: { show: false } },
      ],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const lo = u.posToVal(u.select.left, "x");
            const hi = u.posToVal(u.select.left + u.select.width, "x");
            navigate({ from: iso(lo), to: iso(hi), range: null, after: null, p: null });
          },
        ],
      },
    };
    chart = new window.uPlot(opts, [h.times, h.normal, h.warning], box);
    box.dataset.state = "ready";
    if (!performance.getEntriesByName("explorer:histogram").length) performance.mark("explorer:histogram");
    box.dataset.interval = h.interval;
    box.dataset.total = String(h.normal.reduce((a, b) => a + b, 0) + h.warning.reduce((a, b) => a + b, 0));
  }

  // ---------------------------------------------------------------- top reasons (count tables)

  async function loadTop(p) {
    const windowLabel = p.get("window") === "1m" ? "1m" : "1h";
    for (const button of $("windows").querySelectorAll("button")) {
      button.classList.toggle("active", button.dataset.window === windowLabel);
    }
    const q = new URLSearchParams({ window: windowLabel, top: "10" });
    const ns = p.get("namespace");
    if (ns && !ns.includes(",")) q.set("namespace", ns);
    const type = p.get("type");
    if (type && !type.includes(",")) q.set("type", type);
    const list = $("top-reasons");
    let answer;
    try {
      answer = await getJSON("api/top?" + q.toString(), () => {});
    } catch (e) {
      clear(list);
      $("top-status").textContent = "count tables unavailable: " + e.message;
      return;
    }
    clear(list);
    const max = Math.max(1, ...answer.reasons.map((r) => r.count));
    $("top-status").textContent = answer.notice || (answer.reasons.length ? "" : "nothing counted in this window yet");
    for (const r of answer.reasons) {
      const li = el("li", null, r.type === "Warning" ? "warning" : "normal");
      const pick = el("button", r.reason, "reason-link");
      pick.type = "button";
      pick.title = r.type + " " + r.reason + ": search it";
      pick.addEventListener("click", () => navigate({ reason: r.reason, type: r.type, after: null, p: null }));
      li.appendChild(pick);
      const bar = el("span", null, "bar");
      bar.style.width = Math.round((100 * r.count) / max) + "%";
      li.appendChild(bar);
      li.appendChild(el("span", r.count.toLocaleString("en-US"), "n"));
      list.appendChild(li);
    }
  }

  // ---------------------------------------------------------------- object timeline

  async function loadTimeline(p, mine) {
    const section = $("timeline");
    const kind = p.get("t_kind");
    const name = p.get("t_name");
    if (!kind || !name) {
      section.hidden = true;
      $("search").hidden = false;
      return;
    }
    section.hidden = false;
    $("search").hidden = true;
    const ns = p.get("t_namespace") || "";
    $("timeline-title").textContent = "Timeline of " + kind + " " + (ns ? ns + "/" : "") + name;
    const owners = $("timeline-owners");
    owners.checked = p.get("owners") === "1";
    owners.disabled = kind !== "Pod";
    const q = new URLSearchParams({ kind: kind, name: name });
    if (ns) q.set("namespace", ns);
    if (p.get("t_cluster")) q.set("cluster", p.get("t_cluster"));
    if (owners.checked && kind === "Pod") q.set("owners", "1");
    const rows = $("timeline-rows");
    const status = $("timeline-status");
    setStatus(status, "loading", "Loading the timeline…");
    let answer;
    try {
      answer = await getJSON("api/timeline?" + q.toString(), (s) => {
        if (s === "slow" && mine === generation) setStatus(status, "slow", "Loading… the search engine is slow to answer.");
      });
    } catch (e) {
      if (mine !== generation) return;
      clear(rows);
      setStatus(status, e.state, e.message);
      return;
    }
    if (mine !== generation) return;
    clear(rows);
    for (const row of answer.rows) rows.appendChild(eventRow(row, true));
    const note = answer.rows.length
      ? answer.total.toLocaleString("en-US") + " versions, oldest first" + (answer.truncated ? " (the first " + answer.rows.length + " shown)" : "")
      : "No events about this object are archived.";
    setStatus(status, answer.rows.length ? "ready" : "empty", note);
  }

  // ---------------------------------------------------------------- wiring

  function render() {
    const p = params();
    generation += 1;
    const mine = generation;
    fillForm(p);
    loadTimeline(p, mine);
    if (!p.get("t_kind")) {
      loadResults(p, mine);
      loadHistogram(p, mine);
    }
    loadTop(p);
  }

  function start() {
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      navigate(formChanges());
    });
    for (const button of $("presets").querySelectorAll("button")) {
      button.addEventListener("click", () => navigate({ range: button.dataset.range, from: null, to: null, after: null, p: null }));
    }
    for (const button of $("windows").querySelectorAll("button")) {
      button.addEventListener("click", () => navigate({ window: button.dataset.window }, false));
    }
    $("timeline-owners").addEventListener("change", (event) => navigate({ owners: event.target.checked ? "1" : null }, false));
    $("timeline-close").addEventListener("click", (event) => {
      event.preventDefault();
      navigate({ t_kind: null, t_name: null, t_namespace: null, t_cluster: null, owners: null });
    });
    window.addEventListener("popstate", render);
    window.addEventListener("resize", () => {
      if (chart) chart.setSize({ width: Math.max(300, $("histogram").clientWidth), height: 160 });
    });
    render();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
