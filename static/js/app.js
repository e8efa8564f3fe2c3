/* Jobyard dashboard: small progressive enhancements and live updates.
 *
 * Pages work without JavaScript; this adds copy buttons, confirmations, bulk selection, the
 * throughput chart, and live updates over the space and job streams
 * (/api/v1/realtime/spaces/<spaceId> and /api/v1/realtime/<jobId>, authenticated by the
 * browser session). When a socket cannot be kept open, the pages fall back to polling.
 */
(function () {
  "use strict";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const STATUSES = ["blocked", "scheduled", "pending", "delivered", "running", "completed", "dead", "killed"];
  const TERMINAL = ["completed", "dead", "killed"];

  // --- A reconnecting stream ----------------------------------------------------------------
  // Keeps the last seq and streamInstanceId so a reconnect can ask for what it missed; when
  // the server says `missed: true` the page resynchronises from the server instead.
  class Stream {
    constructor(path, handlers) {
      this.path = path;
      this.handlers = handlers;
      this.seq = null;
      this.instance = null;
      this.failures = 0;
      this.closed = false;
      this.connectedOnce = false;
      this.open();
    }
    url() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const params = new URLSearchParams();
      if (this.seq !== null) params.set("since", String(this.seq));
      if (this.instance) params.set("streamInstanceId", this.instance);
      const q = params.toString();
      return proto + "//" + location.host + this.path + (q ? "?" + q : "");
    }
    open() {
      let ws;
      try {
        ws = new WebSocket(this.url());
      } catch (e) {
        this.retry();
        return;
      }
      this.ws = ws;
      ws.onmessage = (ev) => {
        let msg;
        try { msg = JSON.parse(ev.data); } catch (e) { return; }
        if (msg.type === "connected") {
          const resync = this.connectedOnce && (msg.missed || this.instance !== msg.streamInstanceId);
          this.failures = 0;
          this.instance = msg.streamInstanceId || null;
          if (typeof msg.seq === "number") this.seq = msg.seq;
          this.connectedOnce = true;
          this.handlers.status && this.handlers.status(true);
          this.handlers.connected && this.handlers.connected(msg, resync);
          return;
        }
        if (msg.type === "init") {
          this.handlers.status && this.handlers.status(true);
          this.handlers.init && this.handlers.init(msg);
          return;
        }
        if (typeof msg.seq === "number" && (this.seq === null || msg.seq > this.seq)) this.seq = msg.seq;
        this.handlers.event && this.handlers.event(msg);
      };
      ws.onclose = (ev) => {
        this.handlers.status && this.handlers.status(false);
        if (this.closed) return;
        // 4401/4403: not allowed (logged out, removed from the org): stop and let polling run.
        if (ev.code === 4401 || ev.code === 4403) {
          this.handlers.down && this.handlers.down();
          return;
        }
        this.retry();
      };
    }
    retry() {
      this.failures += 1;
      if (this.failures >= 3 && this.handlers.down) this.handlers.down();
      const delay = Math.min(30000, 500 * Math.pow(2, this.failures)) * (0.75 + Math.random() / 2);
      setTimeout(() => this.open(), delay);
    }
    get live() {
      return this.ws && this.ws.readyState === WebSocket.OPEN;
    }
  }

  // --- Small helpers ------------------------------------------------------------------------
  function copyText(text, button) {
    const done = () => {
      if (!button) return;
      const old = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = old; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
    } else {
      fallbackCopy(text, done);
    }
  }
  function fallbackCopy(text, done) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* the text stays selectable */ }
    document.body.removeChild(area);
    done();
  }
  function setCounts(counts, root) {
    if (!counts) return;
    $$("[data-count]", root).forEach((el) => {
      const status = el.getAttribute("data-count");
      if (!(status in counts)) return;
      const value = String(counts[status]);
      if (el.textContent !== value) {
        el.textContent = value;
        el.classList.remove("bump");
        void el.offsetWidth; // restart the animation
        el.classList.add("bump");
      }
    });
  }
  function pct(value) {
    const n = Number(value);
    return isFinite(n) ? Math.max(0, Math.min(100, n)) : null;
  }
  // Times are shown in UTC like the server-rendered ones ("2026-01-31 12:34:56").
  function fmtUTC(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toISOString().slice(0, 19).replace("T", " ");
  }
  // Attempts are shown counted from 1, as "attempt/(maxRetries+1)" ("1/4"). Stream messages
  // count attemptNumber from 0 (the first attempt is 0), so the page adds 1.
  function attemptShown(attemptNumber) {
    const n = Number(attemptNumber);
    return Number.isInteger(n) && n >= 0 ? n + 1 : null;
  }
  // The one line of an error the jobs list shows: a worker's error is a string or an object
  // {type, message, traceback}.
  function errorHeadline(err) {
    if (err === null || err === undefined || err === "") return "";
    let text;
    if (typeof err === "string") text = err;
    else if (typeof err === "object") {
      const message = err.message === undefined || err.message === null ? "" : String(err.message);
      text = err.type ? String(err.type) + (message ? ": " + message : "") : message || JSON.stringify(err);
    } else text = String(err);
    const first = text.trim().split("\n")[0];
    return first || "";
  }
  function debounce(fn, ms) {
    let t = null;
    return function () {
      clearTimeout(t);
      t = setTimeout(fn, ms);
    };
  }

  // --- Generic behaviours -------------------------------------------------------------------
  function initCommon() {
    document.addEventListener("click", (ev) => {
      const copyBtn = ev.target.closest("[data-copy-target]");
      if (copyBtn) {
        const target = $(copyBtn.getAttribute("data-copy-target"));
        const value = copyBtn.getAttribute("data-copy-value") || (target && target.textContent.trim());
        if (value) copyText(value, copyBtn);
        return;
      }
      const copyable = ev.target.closest("[data-copy]");
      if (copyable) copyText(copyable.getAttribute("data-copy"), null);
      const reveal = ev.target.closest("[data-reveal-target]");
      if (reveal) {
        const target = $(reveal.getAttribute("data-reveal-target"));
        if (target) {
          const shown = target.getAttribute("data-shown") === "1";
          if (!shown) {
            target.setAttribute("data-masked", target.textContent);
            target.textContent = target.getAttribute("data-reveal");
          } else {
            target.textContent = target.getAttribute("data-masked");
          }
          target.setAttribute("data-shown", shown ? "0" : "1");
          reveal.textContent = shown ? "Show" : "Hide";
        }
      }
    });
    document.addEventListener("submit", (ev) => {
      const form = ev.target;
      const question = form.getAttribute && form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) ev.preventDefault();
    });
    // Close open menus on outside clicks.
    document.addEventListener("click", (ev) => {
      $$("details[data-menu][open]").forEach((menu) => {
        if (!menu.contains(ev.target)) menu.removeAttribute("open");
      });
    });
    // Token form: the Worker preset ticks its scopes, so what is granted is visible.
    const tokenForm = $("[data-token-form]");
    if (tokenForm) {
      const preset = (tokenForm.getAttribute("data-worker-preset") || "").split(",");
      const presetBox = $("input[name=worker_preset]", tokenForm);
      if (presetBox) {
        presetBox.addEventListener("change", () => {
          $$("input[name=scopes]", tokenForm).forEach((box) => {
            if (preset.indexOf(box.value) >= 0) box.checked = presetBox.checked;
          });
        });
      }
    }
  }

  // --- Throughput chart (inline SVG) --------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function drawChart(el, data) {
    const series = data.series || {};
    const names = ["created", "completed", "dead"];
    const n = (series.created || []).length;
    if (!n) return;
    const w = Math.max(el.clientWidth, 300);
    const h = el.clientHeight || 150;
    const pad = { l: 34, r: 8, t: 8, b: 20 };
    let max = 1;
    names.forEach((k) => (series[k] || []).forEach((v) => { if (v > max) max = v; }));
    // A round top value for the axis.
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    let top = Math.ceil(max / step) * step;
    if (top < 2) top = 2;
    if (top % 2) top += 1; // whole numbers at the middle line too
    const x = (i) => pad.l + (i * (w - pad.l - pad.r)) / Math.max(1, n - 1);
    const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / top);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("preserveAspectRatio", "none");
    const add = (tag, attrs, text) => {
      const node = document.createElementNS(SVG, tag);
      Object.keys(attrs).forEach((k) => node.setAttribute(k, attrs[k]));
      if (text !== undefined) node.textContent = text;
      svg.appendChild(node);
      return node;
    };
    [0, top / 2, top].forEach((v) => {
      add("line", { class: "axis", x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v) });
      add("text", { class: "label", x: pad.l - 6, y: y(v) + 3, "text-anchor": "end" }, String(Math.round(v * 10) / 10));
    });
    const minutes = data.minutes || [];
    [0, Math.floor(n / 2), n - 1].forEach((i) => {
      if (!minutes[i]) return;
      const label = i === n - 1 ? "now" : fmtUTC(minutes[i]).slice(11, 16) + " UTC";
      add("text", { class: "label", x: x(i), y: h - 5, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle" }, label);
    });
    const points = (k) => (series[k] || []).map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1));
    const created = points("created");
    add("path", { class: "area-created", d: "M" + x(0) + "," + y(0) + " L" + created.join(" L") + " L" + x(n - 1) + "," + y(0) + " Z" });
    names.forEach((k) => {
      const node = add("polyline", { class: "line line-" + k, points: points(k).join(" ") });
      const total = (series[k] || []).reduce((a, b) => a + b, 0);
      const title = document.createElementNS(SVG, "title");
      title.textContent = k + ": " + total + " in the last hour";
      node.appendChild(title);
    });
    el.replaceChildren(svg);
  }

  function initChart() {
    const el = $("#chart");
    if (!el) return null;
    let data = null;
    const redraw = () => { if (data) drawChart(el, data); };
    window.addEventListener("resize", debounce(redraw, 150));
    const refresh = () => {
      fetch(el.getAttribute("data-chart-url"), { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null))
        .then((fresh) => { if (fresh) { data = fresh; redraw(); } })
        .catch(() => {});
    };
    // Loaded after the page (it is the costliest query); the buckets roll over every minute
    // and live events bump the current one in between.
    refresh();
    setInterval(refresh, 60000);
    return {
      bump(type) {
        const list = data && data.series && data.series[type];
        if (!list || !list.length) return;
        list[list.length - 1] += 1;
        redraw();
      },
    };
  }

  // --- Jobs list ----------------------------------------------------------------------------
  function initJobsList() {
    const table = $("[data-jobs-table]");
    if (!table) return;
    const tbody = $("tbody", table);
    const chart = initChart();
    const filterStatus = table.getAttribute("data-filter-status");
    const filterName = table.getAttribute("data-filter-name");
    const liveList = table.getAttribute("data-live") === "1";
    const searching = (table.getAttribute("data-search") || "") !== "";
    const jobUrl = table.getAttribute("data-job-url");
    const MAX_ROWS = 200;
    const LIVE_IDS_MAX = 50;

    // Bulk selection.
    const selectAll = $("[data-select-all]");
    const selectedLabel = $("[data-selected-count]");
    const refreshSelection = () => {
      const n = $$("input[name=ids]:checked", tbody).length;
      if (selectedLabel) selectedLabel.textContent = n + " selected";
      $$("[data-bulk-selected]").forEach((b) => { b.disabled = n === 0; });
    };
    if (selectAll) {
      selectAll.addEventListener("change", () => {
        $$("input[name=ids]", tbody).forEach((box) => { box.checked = selectAll.checked; });
        refreshSelection();
      });
    }
    tbody.addEventListener("change", refreshSelection);
    refreshSelection();

    function rowFor(id) {
      return tbody.querySelector('tr[data-job-id="' + CSS.escape(id) + '"]');
    }
    function setStatus(row, status) {
      const badge = $("[data-field=status]", row);
      if (!badge || !status) return;
      row.setAttribute("data-status", status);
      badge.textContent = status;
      badge.className = "status status-" + status;
    }
    function setProgress(row, percent, message) {
      const cell = $("[data-field=progress]", row);
      const p = pct(percent);
      if (!cell || p === null) return;
      let bar = $(".bar", cell);
      if (!bar) {
        bar = document.createElement("div");
        bar.className = "bar";
        bar.appendChild(document.createElement("span"));
        cell.replaceChildren(bar);
      }
      bar.title = message || "";
      bar.firstElementChild.style.width = p + "%";
    }
    function setAttempt(row, attemptNumber) {
      const cell = $("[data-field=attempt]", row);
      const shown = attemptShown(attemptNumber);
      if (!cell || shown === null) return;
      // Only in the rendered rows' "1/4" form: a row built from a stream message before the
      // server's rendering of it arrives (a moment later) knows no maxRetries, so it waits blank.
      const max = cell.getAttribute("data-max-attempts");
      cell.textContent = max ? shown + "/" + max : "";
    }
    function setError(row, err) {
      const cell = $("[data-field=error]", row);
      const text = errorHeadline(err);
      if (!cell || !text) return;
      cell.textContent = text;
      cell.title = text;
    }
    function newRow(msg) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-job-id", msg.jobId);
      tr.className = "is-new";
      const cells = [];
      for (let i = 0; i < 8; i++) cells.push(document.createElement("td"));
      cells[0].className = "check-col";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "ids";
      box.value = msg.jobId;
      box.setAttribute("form", "bulk-form");
      box.setAttribute("aria-label", "Select " + msg.jobId);
      cells[0].appendChild(box);
      const link = document.createElement("a");
      link.className = "job-link";
      link.href = jobUrl.replace("__JOB__", encodeURIComponent(msg.jobId));
      const code = document.createElement("code");
      code.textContent = msg.jobId;
      link.appendChild(code);
      cells[1].className = "id-col";
      cells[1].appendChild(link);
      cells[2].className = "name-col";
      const nameLink = document.createElement("a");
      nameLink.className = "name-link";
      nameLink.href = link.href;
      nameLink.textContent = msg.jobName || "";
      nameLink.title = msg.jobName || "";
      cells[2].appendChild(nameLink);
      cells[3].className = "status-col";
      const badge = document.createElement("span");
      badge.setAttribute("data-field", "status");
      cells[3].appendChild(badge);
      cells[4].className = "progress-col";
      cells[4].setAttribute("data-field", "progress");
      cells[5].className = "num attempt-col";
      cells[5].setAttribute("data-field", "attempt");
      // maxRetries is not in the envelope: the server's rendering of the row (fetched right
      // after) fills in "1/4"; a message that carries it shows it at once.
      if (typeof msg.maxRetries === "number") cells[5].setAttribute("data-max-attempts", String(msg.maxRetries + 1));
      cells[6].className = "error-col";
      cells[6].setAttribute("data-field", "error");
      cells[7].className = "muted nowrap created-col";
      const time = document.createElement("time");
      time.dateTime = msg.timestamp || new Date().toISOString();
      time.textContent = fmtUTC(time.dateTime);
      cells[7].appendChild(time);
      cells.forEach((c) => tr.appendChild(c));
      setStatus(tr, msg.status);
      setAttempt(tr, msg.attemptNumber === undefined ? 0 : msg.attemptNumber);
      return tr;
    }
    function matchesFilter(msg) {
      if (filterStatus && msg.status !== filterStatus) return false;
      if (filterName && msg.jobName !== filterName) return false;
      return true;
    }
    // New jobs on the newest page. Without a search the browser judges the filter (status,
    // name) itself and shows the row at once; the server then renders the rows of the new ids
    // that match the page's filter, search included (a search covers payloads and errors,
    // which the stream does not carry), so rows look alike however they arrived.
    const wanted = [];
    function placeRow(row) {
      // Newest first: ids are ULIDs, which sort by creation time.
      const id = row.getAttribute("data-job-id");
      const next = Array.from(tbody.rows).find((r) => (r.getAttribute("data-job-id") || "") < id);
      tbody.insertBefore(row, next || null);
      const empty = $("[data-empty]");
      if (empty) empty.hidden = true;
      while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
    }
    const fetchNewRows = debounce(() => {
      const ids = wanted.splice(0, LIVE_IDS_MAX);
      if (!ids.length) return;
      const url = new URL(location.href);
      ["before", "after"].forEach((k) => url.searchParams.delete(k));
      url.searchParams.set("fragment", "rows");
      url.searchParams.set("ids", ids.join(","));
      fetch(url.toString(), { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null))
        .then((data) => {
          if (!data) return;
          const tpl = document.createElement("template");
          tpl.innerHTML = data.rows;
          Array.from(tpl.content.querySelectorAll("tr[data-job-id]")).forEach((fresh) => {
            const old = rowFor(fresh.getAttribute("data-job-id"));
            fresh.classList.add("is-new");
            if (old) {
              const box = $("input[name=ids]", old);
              const freshBox = $("input[name=ids]", fresh);
              if (box && freshBox) freshBox.checked = box.checked;
              old.replaceWith(fresh);
            } else placeRow(fresh);
          });
          refreshSelection();
        })
        .catch(() => {})
        .finally(() => { if (wanted.length) fetchNewRows(); });
    }, 300);
    function onEvent(msg) {
      if (msg.counts) setCounts(msg.counts);
      if (chart && (msg.type === "created" || msg.type === "completed" || msg.type === "dead")) chart.bump(msg.type);
      if (!msg.jobId) return;
      let row = rowFor(msg.jobId);
      if (!row && msg.type === "created" && liveList) {
        if (!searching && matchesFilter(msg)) {
          row = newRow(msg);
          placeRow(row);
        }
        if (searching || row) {
          if (wanted.length < MAX_ROWS) wanted.push(msg.jobId);
          fetchNewRows();
        }
      }
      if (!row) return;
      setStatus(row, msg.status);
      setAttempt(row, msg.attemptNumber);
      if (msg.data && (msg.type === "retried" || msg.type === "dead")) setError(row, msg.data.error);
      if (msg.type === "progress" && msg.data) setProgress(row, msg.data.percent, msg.data.message);
      if (msg.type === "completed") setProgress(row, 100, "");
    }

    // Fallback and resync: re-render the rows of this page from the server.
    const fragmentUrl = () => {
      const url = new URL(location.href);
      url.searchParams.set("fragment", "rows");
      return url.toString();
    };
    function reloadRows() {
      fetch(fragmentUrl(), { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : null))
        .then((data) => {
          if (!data) return;
          const checked = new Set($$("input[name=ids]:checked", tbody).map((b) => b.value));
          tbody.innerHTML = data.rows;
          $$("input[name=ids]", tbody).forEach((b) => { b.checked = checked.has(b.value); });
          const empty = $("[data-empty]");
          if (empty && tbody.rows.length) empty.hidden = true;
          setCounts(data.counts);
          refreshSelection();
        })
        .catch(() => {});
    }
    let pollTimer = null;
    const stream = new Stream(table.getAttribute("data-stream-url"), {
      connected(msg, resync) {
        if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
        setCounts(msg.counts);
        if (resync) reloadRows();
      },
      event: onEvent,
      down() {
        if (!pollTimer) pollTimer = setInterval(() => { if (!stream.live) reloadRows(); }, 5000);
      },
      status(live) {
        const dot = $("[data-stream-state]");
        if (dot) dot.classList.toggle("is-live", live);
        const label = $("[data-live-label]");
        if (label) {
          label.textContent = live
            ? label.getAttribute("data-live-text") || "Live"
            : pollTimer ? "Offline: refreshing every 5 s" : "Reconnecting…";
        }
      },
    });
  }

  // --- Spaces list: live counts per space ---------------------------------------------------
  function initSpacesList() {
    const cards = $$("[data-live-spaces] [data-space-id]").slice(0, 20);
    cards.forEach((card) => {
      const dot = $("[data-live-dot]", card);
      let pollTimer = null;
      const poll = () => {
        fetch("/spaces/" + encodeURIComponent(card.getAttribute("data-space-id")) + "/counts.json", { credentials: "same-origin" })
          .then((r) => (r.ok ? r.json() : null))
          .then((data) => data && setCounts(data.counts, card))
          .catch(() => {});
      };
      const stream = new Stream(card.getAttribute("data-stream-url"), {
        connected(msg) {
          if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
          setCounts(msg.counts, card);
        },
        event(msg) { if (msg.counts) setCounts(msg.counts, card); },
        down() { if (!pollTimer) pollTimer = setInterval(() => { if (!stream.live) poll(); }, 10000); },
        status(live) { if (dot) dot.classList.toggle("is-live", live); },
      });
    });
  }

  // --- Job page -----------------------------------------------------------------------------
  function initJobPage() {
    const live = $("[data-job-live]");
    if (!live) return;
    const logs = initLogs();
    const refresh = debounce(() => {
      fetch(live.getAttribute("data-fragment-url"), { credentials: "same-origin" })
        .then((r) => (r.ok ? r.text() : null))
        .then((html) => {
          if (html === null) return;
          // Keep open <details> (event data) open across the swap: new events are appended,
          // so positions are stable.
          const before = Array.from(live.querySelectorAll("details"));
          const open = before.map((d, i) => (d.open ? i : -1)).filter((i) => i >= 0);
          live.innerHTML = html;
          const after = live.querySelectorAll("details");
          open.forEach((i) => { if (after[i]) after[i].open = true; });
        })
        .catch(() => {});
    }, 400);
    let pollTimer = null;
    const stream = new Stream(live.getAttribute("data-stream-url"), {
      connected(msg, resync) {
        if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
        if (resync) { refresh(); if (logs) logs.tail(); }
      },
      event(msg) {
        if (!msg.jobId || msg.jobId !== live.getAttribute("data-job-id")) return;
        if (msg.type === "logs") {
          if (logs) logs.tail();
          return;
        }
        const badge = $("[data-job-status]", live);
        if (badge && msg.status) {
          badge.textContent = msg.status;
          badge.className = "status status-lg status-" + msg.status;
        }
        refresh();
      },
      down() {
        if (!pollTimer) {
          pollTimer = setInterval(() => {
            if (stream.live) return;
            const badge = $("[data-job-status]", live);
            if (badge && TERMINAL.indexOf(badge.textContent.trim()) >= 0) return;
            refresh();
            if (logs) logs.tail();
          }, 5000);
        }
      },
    });
  }

  function initLogs() {
    const panel = $("[data-logs]");
    if (!panel) return null;
    const view = $("[data-log-view]", panel);
    const levelSel = $("[data-log-level]", panel);
    const search = $("[data-log-q]", panel);
    const follow = $("[data-log-follow]", panel);
    const olderBtn = $("[data-log-older]", panel);
    const base = panel.getAttribute("data-logs-url");
    let first = null;
    let last = null;
    let loading = false;
    let generation = 0;

    const query = (extra) => {
      const params = new URLSearchParams(extra);
      if (levelSel.value) params.set("level", levelSel.value);
      if (search.value.trim()) params.set("q", search.value.trim());
      return base + "?" + params.toString();
    };
    const lineEl = (line) => {
      const div = document.createElement("div");
      div.className = "log-line log-" + line.level;
      const seq = document.createElement("span");
      seq.className = "log-seq";
      seq.textContent = "#" + line.seq;
      const time = document.createElement("span");
      time.className = "log-time";
      time.textContent = fmtUTC(line.timestamp).slice(11);
      time.title = line.timestamp;
      const level = document.createElement("span");
      level.className = "log-level";
      level.textContent = line.level;
      const msg = document.createElement("span");
      msg.className = "log-msg";
      msg.textContent = line.message;
      // Attributes read as key=value; a multi-line one (a traceback) keeps its line breaks.
      const attrs = line.attributes && typeof line.attributes === "object" ? line.attributes : {};
      Object.keys(attrs).forEach((key) => {
        const value = attrs[key];
        if (typeof value === "string" && value.indexOf("\n") >= 0) {
          const block = document.createElement("span");
          block.className = "log-attr-block";
          block.textContent = key + ":\n" + value.replace(/\n+$/, "");
          msg.appendChild(block);
          return;
        }
        const attr = document.createElement("span");
        attr.className = "log-attr";
        attr.textContent = key + "=" + (typeof value === "string" ? value : JSON.stringify(value));
        msg.appendChild(attr);
      });
      div.append(seq, time, level, msg);
      return div;
    };
    const nearBottom = () => view.scrollHeight - view.scrollTop - view.clientHeight < 40;
    const emptyNote = () => {
      if (!view.querySelector(".log-line")) {
        view.innerHTML = '<p class="muted pad">No log lines' + (levelSel.value || search.value ? " match." : " yet.") + "</p>";
      }
    };

    function load() {
      const gen = ++generation;
      first = last = null;
      fetch(query({}), { credentials: "same-origin" })
        .then((r) => r.json())
        .then((data) => {
          if (gen !== generation) return;
          view.replaceChildren(...data.lines.map(lineEl));
          if (data.lines.length) {
            first = data.lines[0].seq;
            last = data.lines[data.lines.length - 1].seq;
          }
          olderBtn.hidden = !data.more;
          emptyNote();
          view.scrollTop = view.scrollHeight;
        })
        .catch(() => { view.innerHTML = '<p class="muted pad">Could not load logs.</p>'; });
    }
    function older() {
      if (first === null) return;
      const gen = generation;
      fetch(query({ before: first }), { credentials: "same-origin" })
        .then((r) => r.json())
        .then((data) => {
          if (gen !== generation || !data.lines.length) { olderBtn.hidden = true; return; }
          const height = view.scrollHeight;
          view.prepend(...data.lines.map(lineEl));
          first = data.lines[0].seq;
          olderBtn.hidden = !data.more;
          view.scrollTop += view.scrollHeight - height;
        })
        .catch(() => {});
    }
    function tail() {
      if (!follow.checked || loading) return;
      loading = true;
      const gen = generation;
      const stick = nearBottom();
      fetch(query({ after: last === null ? 0 : last }), { credentials: "same-origin" })
        .then((r) => r.json())
        .then((data) => {
          loading = false;
          if (gen !== generation || !data.lines.length) return;
          const note = view.querySelector("p.muted");
          if (note) note.remove();
          view.append(...data.lines.map(lineEl));
          last = data.lines[data.lines.length - 1].seq;
          if (first === null) first = data.lines[0].seq;
          if (stick) view.scrollTop = view.scrollHeight;
          if (data.more) tail();
        })
        .catch(() => { loading = false; });
    }
    levelSel.addEventListener("change", load);
    search.addEventListener("input", debounce(load, 300));
    olderBtn.addEventListener("click", older);
    follow.addEventListener("change", () => { if (follow.checked) tail(); });
    load();
    return { tail: debounce(tail, 250) };
  }

  function init() {
    initCommon();
    initJobsList();
    initSpacesList();
    initJobPage();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
  window.Jobyard = { Stream, STATUSES };
})();
