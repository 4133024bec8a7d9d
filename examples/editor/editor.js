// The editor page: binds the textarea to the text at ["text"] of the
// document through the peer's HTTP API (textsync.js keeps the books), and
// shows who else is here and where their cursors are (presence).
"use strict";

(() => {
  const docName = document.querySelector('meta[name="concord-doc"]').content;
  const api = "/v1/docs/" + encodeURIComponent(docName);
  const path = ["text"];
  const T = TextSync;
  const ta = document.getElementById("text");
  const overlay = document.getElementById("overlay");
  const stateBox = document.getElementById("state");
  const errorBox = document.getElementById("error");
  const whoList = document.getElementById("who");
  const nameInput = document.getElementById("name");

  const client = new T.Client(path);
  // shown is the textarea's value as the page last left it.
  let shown = "";

  // showError shows an error (from: what it came from; a re-read that
  // works clears its own errors only).
  let errorFrom = null;
  const showError = (e, from) => {
    errorBox.textContent = e ? String(e.message || e) : "";
    errorFrom = e ? from || null : null;
  };

  async function postJSON(url, method, body) {
    const r = await fetch(url, {method: method, headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const b = await r.json().catch(() => ({}));
    return {ok: r.ok, status: r.status, body: b};
  }

  // --- connection state: connected while the event stream is open and
  // the last request reached the peer.
  let streamOpen = false, reachable = true;
  function showState() {
    const up = streamOpen && reachable && client.n !== null;
    stateBox.textContent = up ? "connected" : (client.n === null && reachable ? "connecting…" : "reconnecting…");
    stateBox.className = up ? "up" : "";
  }

  // --- local edits
  function onInput() {
    const cur = ta.value;
    if (cur === shown) return;
    const sp = T.diff(shown, cur, T.toPoints(cur, ta.selectionEnd));
    const text = T.wellFormed(sp.text);
    shown = cur;
    client.local(T.splice(sp.index, sp.delete, text));
    if (text !== sp.text) { // a lone surrogate: show what is sent
      const s = ta.selectionStart, e = ta.selectionEnd;
      ta.value = shown = client.view();
      ta.setSelectionRange(s, e);
    }
    pump();
    renderOverlay();
  }
  ta.addEventListener("input", () => { try { onInput(); } catch (e) { showError(e); } });

  // applyView applies splices of the view to the textarea, moving the
  // caret and the selection with the text around them.
  let lastSel = null;
  function applyView(ps) {
    if (ps.length === 0) return;
    let v = ta.value;
    let s = T.toPoints(v, ta.selectionStart), e = T.toPoints(v, ta.selectionEnd);
    const dir = ta.selectionDirection, collapsed = s === e;
    for (const p of ps) {
      s = T.mapIndex(s, p, !collapsed);
      e = T.mapIndex(e, p, false);
      const a = T.toUnits(v, p.index), b = T.toUnits(v, p.delete, a);
      ta.setRangeText(p.text, a, b, "preserve");
      v = v.slice(0, a) + p.text + v.slice(b);
    }
    if (ta.value !== v) ta.value = v;
    if (e < s) e = s;
    ta.setSelectionRange(T.toUnits(v, s), T.toUnits(v, e), dir);
    lastSel = [ta.selectionStart, ta.selectionEnd];
    shown = ta.value;
  }

  // handle takes what a Client method returned.
  function handle(r) {
    applyView(r.view);
    if (r.reset) {
      for (const x of remotes.values()) { x.pos = null; x.needs = true; }
    } else if (r.text.length > 0) {
      for (const x of remotes.values()) {
        if (x.pos) x.pos = {c: T.mapCursorAll(x.pos.c, r.text), a: T.mapCursorAll(x.pos.a, r.text)};
        if (x.unknown) x.needs = true;
      }
    }
    placeResolved();
    if (r.resync || syncAgain) resync();
    pump();
    sendPresence();
    renderOverlay();
    showState();
  }

  // --- sending: one splice at a time, with the number of the change the
  // page's text is at.
  async function pump() {
    const op = client.next();
    if (!op) return;
    let res;
    try {
      res = await postJSON(api + "/ops", "POST", [op]);
    } catch (e) {
      client.failed();
      reachable = false;
      showState();
      resync();
      return;
    }
    reachable = true;
    if (res.ok && typeof res.body.n === "number") {
      handle(client.answered(res.body.n));
      // The change holding it comes on the event stream; if the stream
      // dropped it and nothing came after, re-read.
      const inf = client.inflight;
      if (inf) setTimeout(() => { if (client.inflight === inf) resync(); }, 3000);
      return;
    }
    // A base the peer cannot rebase from (409 "stale base": it no longer
    // keeps the changes since, or one replaced the text): re-read, rebase
    // and send again. So after a failure of the peer; any other refusal
    // drops the splice (the re-read shows what the peer has).
    const err = res.body.error || ("HTTP " + res.status);
    const stale = res.status === 409 && /stale base|too old/.test(err);
    const again = stale || res.ok || res.status >= 500 || res.status === 429;
    client.refused(again);
    if (!stale) showError(err);
    resync();
  }

  // --- re-reading the document (at start, on every reconnect, after a gap
  // in the change numbers or a refused splice). The page's own edits stay
  // and are moved over what changed.
  let syncing = false, syncAgain = false, syncDelay = 0;
  async function resync() {
    if (syncing || (client.inflight && client.inflight.state === "sent")) { // again after it
      syncAgain = true;
      return;
    }
    syncing = true;
    syncAgain = false;
    client.beginSync();
    try {
      for (;;) {
        try {
          const r = await fetch(api);
          const body = await r.json();
          if (!r.ok) throw new Error(body.error || r.statusText);
          if (typeof body.n !== "number") throw new Error("the peer gives no change numbers (n)");
          const text = body.value ? body.value.text : undefined;
          if (text !== undefined && typeof text !== "string") throw new Error("the document's " + JSON.stringify(path) + " is not a text");
          reachable = true;
          syncDelay = 0;
          if (ta.value !== shown) onInput();
          handle(client.resync(text || "", body.n));
          if (ta.value !== client.view()) { // a splice the peer refused is gone from the view
            const c = T.toPoints(ta.value, ta.selectionEnd);
            ta.value = shown = client.view();
            const u = T.toUnits(shown, c);
            ta.setSelectionRange(u, u);
            renderOverlay();
          }
          if (errorFrom === "sync") showError("");
          break;
        } catch (e) {
          if (e instanceof TypeError) reachable = false;
          else showError(e, "sync");
          showState();
          syncDelay = Math.min(5000, Math.max(250, syncDelay * 2));
          await new Promise((ok) => setTimeout(ok, syncDelay * (0.5 + Math.random() / 2)));
        }
      }
    } finally {
      syncing = false;
    }
    ta.disabled = false;
    showState();
    if (!lastState) schedulePresence(); // here, before the first keystroke
    if (syncAgain) resync();
  }

  // --- the event stream, reopened with backoff when it fails.
  let events = null, streamDelay = 0;
  function connect() {
    events = new EventSource(api + "/events");
    events.onopen = () => {
      streamOpen = true;
      presenceMissed = 0;
      streamDelay = 0;
      client.streamOpened();
      resync();
      refreshPresence();
    };
    events.addEventListener("change", (m) => {
      try {
        seenChanges++;
        if (ta.value !== shown) onInput();
        handle(client.change(JSON.parse(m.data)));
      } catch (e) { // not expected: start again from the peer's text
        showError(e, "sync");
        resync();
      }
    });
    events.addEventListener("presence", (m) => {
      try { onPresence(JSON.parse(m.data)); } catch (e) { showError(e); }
    });
    events.onerror = () => {
      events.close();
      streamOpen = false;
      showState();
      streamDelay = Math.min(5000, Math.max(250, streamDelay * 2));
      setTimeout(connect, streamDelay * (0.5 + Math.random() / 2));
    };
  }

  // --- presence: {name, color, cursor, anchor} (stable cursor IDs) for
  // this tab, under a random client id; others' entries, their cursors'
  // indexes as of change pos.n of the text.
  const palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#9a6324", "#f032e6"];
  const names = ["Ada", "Alan", "Barbara", "Dennis", "Edsger", "Frances", "Grace", "Ken", "Leslie", "Radia"];
  const params = new URLSearchParams(location.search);
  const clientID = Math.random().toString(36).slice(2, 10);
  const isColor = (c) => typeof c === "string" && /^#[0-9a-f]{6}$/i.test(c);
  const me = {
    name: params.get("name") || names[Math.floor(Math.random() * names.length)],
    color: isColor(params.get("color")) ? params.get("color") : palette[Math.floor(Math.random() * palette.length)],
  };
  // The colour is picked again, once, if someone here has it already.
  let colorChosen = isColor(params.get("color"));
  nameInput.value = me.name;
  let myKey = null;
  let lastState = null;
  // remotes: key → {name, color, cursor, anchor, pos: {c, a} | null (in the
  // text as of client.n), got: {c, a, m} | null (indexes as of change m,
  // not placed yet), needs (to be resolved), unknown (a cursor the peer
  // does not know yet)}.
  const remotes = new Map();

  let presenceMissed = 0;
  function onPresence(ev) {
    if ((ev.missed || 0) > presenceMissed) { // the stream dropped some: read them all
      presenceMissed = ev.missed;
      refreshPresence();
    }
    if (!myKey || ev.key === myKey) return;
    const st = ev.state;
    if (!st || typeof st !== "object") remotes.delete(ev.key);
    else setRemote(ev.key, st);
    resolveCursors();
    renderWho();
    renderOverlay();
  }

  function setRemote(key, st) {
    const old = remotes.get(key);
    const x = {
      name: String(st.name || key.slice(-6)), color: isColor(st.color) ? st.color : "#888888",
      cursor: typeof st.cursor === "string" ? st.cursor : null,
      anchor: typeof st.anchor === "string" ? st.anchor : null,
      pos: null, got: null, needs: false, unknown: false,
    };
    if (old && old.cursor === x.cursor && old.anchor === x.anchor) { x.pos = old.pos; x.got = old.got; x.unknown = old.unknown; }
    x.needs = x.cursor !== null && x.pos === null;
    remotes.set(key, x);
  }

  // refreshPresence reads everyone's presence (at start and after a
  // reconnect, when events may have been missed).
  async function refreshPresence() {
    try {
      const r = await fetch(api + "/presence");
      if (!r.ok) return;
      const peers = (await r.json()).peers || {};
      for (const k of [...remotes.keys()]) if (!(k in peers)) remotes.delete(k);
      for (const [k, v] of Object.entries(peers)) if (k !== myKey && v && v.state && typeof v.state === "object") setRemote(k, v.state);
      if (!colorChosen) {
        colorChosen = true;
        const used = new Set([...remotes.values()].map((x) => x.color));
        const free = palette.filter((c) => !used.has(c));
        if (used.has(me.color) && free.length > 0) {
          me.color = free[Math.floor(Math.random() * free.length)];
          schedulePresence();
        }
      }
      resolveCursors();
      renderWho();
      renderOverlay();
    } catch (e) { /* the stream's reconnect retries */ }
  }

  let resolving = false, resolveAgain = false;
  async function resolveCursors() {
    if (resolving) { resolveAgain = true; return; }
    resolving = true;
    try {
      do {
        resolveAgain = false;
        const xs = [...remotes.values()].filter((x) => x.needs && x.cursor);
        if (xs.length === 0) break;
        const ids = [];
        for (const x of xs) { x.needs = false; ids.push(x.cursor, x.anchor || x.cursor); }
        const res = await postJSON(api + "/indexes", "POST", {path: path, cursors: ids});
        if (!res.ok || !Array.isArray(res.body.indexes)) break;
        xs.forEach((x, k) => {
          const c = res.body.indexes[2 * k], a = res.body.indexes[2 * k + 1];
          x.unknown = c < 0 || a < 0;
          if (remotes.get(keyOf(x)) === x && !x.unknown) x.got = {c: c, a: a, m: res.body.n};
        });
        placeResolved();
        renderOverlay();
      } while (resolveAgain);
    } catch (e) { /* retried on the next change or presence event */ } finally {
      resolving = false;
    }
  }

  function keyOf(x) {
    for (const [k, v] of remotes) if (v === x) return k;
    return null;
  }

  // placeResolved brings resolved indexes up to the page's text: over the
  // changes after theirs, or held until the page has reached it.
  function placeResolved() {
    let again = false;
    for (const x of remotes.values()) {
      if (!x.got || client.syncing || x.got.m > client.n) continue;
      const ps = client.since(x.got.m);
      if (ps === null) { x.needs = again = true; x.got = null; continue; }
      x.pos = {c: T.mapCursorAll(x.got.c, ps), a: T.mapCursorAll(x.got.a, ps)};
      x.got = null;
    }
    if (again || [...remotes.values()].some((x) => x.needs)) resolveCursors();
  }

  // Own presence: the caret and the selection's anchor as cursor IDs, made
  // when the view is the peer's text (so indexes are as of change n), at
  // most every 50 ms; PUT again every 10 s to keep the lease.
  let presenceBusy = false, presenceDirty = false, presenceTimer = null, lastSent = 0;
  function schedulePresence() {
    presenceDirty = true;
    sendPresence();
  }
  // selectionMoved ignores the selection the page itself set after a
  // remote edit: the cursor IDs sent stay where they were.
  function selectionMoved() {
    if (document.activeElement !== ta || (lastSel && ta.selectionStart === lastSel[0] && ta.selectionEnd === lastSel[1])) return;
    schedulePresence();
  }
  async function sendPresence() {
    if (presenceBusy || !presenceDirty || !myKey || !client.settled() || ta.value !== shown) return;
    const wait = lastSent + 50 - Date.now();
    if (wait > 0) {
      if (!presenceTimer) presenceTimer = setTimeout(() => { presenceTimer = null; sendPresence(); }, wait);
      return;
    }
    presenceBusy = true;
    presenceDirty = false;
    lastSent = Date.now();
    try {
      const back = ta.selectionDirection === "backward";
      const s = T.toPoints(shown, ta.selectionStart), e = T.toPoints(shown, ta.selectionEnd);
      const res = await postJSON(api + "/cursors", "POST", {path: path, base: client.n, indexes: [back ? s : e, back ? e : s]});
      if (!res.ok || !Array.isArray(res.body.cursors)) {
        presenceDirty = true; // e.g. too old: made again once the page has caught up
        return;
      }
      const st = {name: me.name, color: me.color, cursor: res.body.cursors[0], anchor: res.body.cursors[1]};
      const put = await postJSON(api + "/presence/" + clientID, "PUT", st);
      if (put.ok) lastState = st;
      else presenceDirty = true;
    } catch (e) {
      presenceDirty = true;
    } finally {
      presenceBusy = false;
      if (presenceDirty) setTimeout(sendPresence, 250);
    }
  }
  for (const ev of ["input", "keyup", "mouseup", "focus"]) ta.addEventListener(ev, schedulePresence);
  ta.addEventListener("select", selectionMoved);
  document.addEventListener("selectionchange", selectionMoved);
  // Every 10 s: keep the presence lease, and re-read when the peer's text
  // is at a later change than the page's while no event came (the stream
  // dropped the latest).
  let seenChanges = 0, checkedChanges = -1;
  setInterval(async () => {
    if (lastState) postJSON(api + "/presence/" + clientID, "PUT", lastState).catch(() => {});
    if (!streamOpen || !client.settled() || seenChanges !== checkedChanges) {
      checkedChanges = seenChanges;
      return;
    }
    try {
      const n = client.n, body = await (await fetch(api)).json();
      if (typeof body.n === "number" && body.n > n && client.n === n && seenChanges === checkedChanges) resync();
    } catch (e) { /* the stream notices */ }
  }, 10000);
  addEventListener("pagehide", () => {
    fetch(api + "/presence/" + clientID, {method: "DELETE", keepalive: true}).catch(() => {});
  });
  nameInput.addEventListener("change", () => {
    me.name = nameInput.value.trim() || me.name;
    presenceDirty = true;
    sendPresence();
    renderWho();
  });

  // --- drawing: who is here, and the others' cursors and selections on an
  // overlay under the (transparent) textarea, with the same text metrics.
  function renderWho() {
    const li = (name, color, you, key) => {
      const e = document.createElement("li");
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.style.background = color;
      e.append(dot, name + (you ? " (you)" : ""));
      if (key) e.dataset.key = key;
      return e;
    };
    const items = [li(me.name, me.color, true)];
    for (const [k, x] of [...remotes].sort((p, q) => p[1].name.localeCompare(q[1].name))) items.push(li(x.name, x.color, false, k));
    whoList.replaceChildren(...items);
  }

  function renderOverlay() {
    const text = Array.from(shown);
    const marks = [];
    for (const [key, x] of remotes) {
      if (!x.pos) continue;
      const clamp = (i) => Math.max(0, Math.min(text.length, i));
      const c = clamp(client.toView(x.pos.c)), a = clamp(client.toView(x.pos.a));
      marks.push({key: key, x: x, c: c, lo: Math.min(a, c), hi: Math.max(a, c)});
    }
    const bounds = [...new Set([0, text.length, ...marks.flatMap((m) => [m.c, m.lo, m.hi])])].sort((p, q) => p - q);
    const out = [];
    bounds.forEach((pos, k) => {
      for (const m of marks) {
        if (m.c !== pos) continue;
        const c = document.createElement("span");
        c.className = "rcaret";
        c.dataset.key = m.key;
        c.dataset.pos = String(pos);
        c.style.borderColor = m.x.color;
        const label = document.createElement("span");
        label.className = "rlabel";
        label.textContent = m.x.name;
        label.style.background = m.x.color;
        c.append(label);
        out.push(c);
      }
      if (k + 1 === bounds.length) return;
      const seg = text.slice(pos, bounds[k + 1]).join("");
      const cover = marks.filter((m) => m.lo <= pos && bounds[k + 1] <= m.hi);
      if (cover.length === 0) {
        out.push(document.createTextNode(seg));
        return;
      }
      const s = document.createElement("span");
      s.className = "rsel";
      s.style.background = cover[cover.length - 1].x.color + "40";
      s.textContent = seg;
      out.push(s);
    });
    out.push(document.createTextNode("\u200b"));
    overlay.replaceChildren(...out);
    overlay.scrollTop = ta.scrollTop;
  }

  function fitOverlay() {
    overlay.style.width = ta.clientWidth + "px";
    overlay.style.height = ta.clientHeight + "px";
    overlay.scrollTop = ta.scrollTop;
  }
  ta.addEventListener("scroll", () => { overlay.scrollTop = ta.scrollTop; });
  new ResizeObserver(fitOverlay).observe(ta);

  // For the page's tests and the curious.
  window.editor = {client: client, remotes: remotes, key: () => myKey, me: me};

  // Start: learn the peer's ID (this tab's presence key is "<peer
  // id>/<client>"), then follow the document.
  (async function start() {
    for (let delay = 250; ; delay = Math.min(5000, delay * 2)) {
      try {
        const r = await fetch("/v1/status");
        const id = (await r.json()).peer_id;
        if (typeof id === "string") {
          myKey = id + "/" + clientID;
          break;
        }
      } catch (e) { /* not reachable yet */ }
      reachable = false;
      showState();
      await new Promise((ok) => setTimeout(ok, delay));
    }
    reachable = true;
    connect();
  })();
  renderWho();
  showState();
})();
