// The editor page's presence: this tab's entry {name, color, cursor,
// anchor} (the caret and the selection's anchor as stable cursor IDs),
// under a random client id, and the others' entries — a list of who is
// here, and their carets and selections drawn on an overlay under the
// (transparent) textarea, with the same text metrics. editor.js creates it
// with what it shares: EditorPresence({api, path, client, ta, postJSON,
// shown, lastSel}).
"use strict";

const EditorPresence = (page) => {
  const T = TextSync;
  const {api, path, client, ta} = page;
  const overlay = document.getElementById("overlay");
  const whoList = document.getElementById("who");
  const nameInput = document.getElementById("name");
  const postJSON = page.postJSON;
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
      x.pos = {c: T.mapCursorState({c: x.got.c, dead: false}, ps), a: T.mapCursorState({c: x.got.a, dead: false}, ps)};
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
    if (document.activeElement !== ta || (page.lastSel() && ta.selectionStart === page.lastSel()[0] && ta.selectionEnd === page.lastSel()[1])) return;
    schedulePresence();
  }
  async function sendPresence() {
    if (presenceBusy || !presenceDirty || !myKey || !client.settled() || ta.value !== page.shown()) return;
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
      const s = T.toPoints(page.shown(), ta.selectionStart), e = T.toPoints(page.shown(), ta.selectionEnd);
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
  // PUT again every 10 s to keep the lease; goodbye when the tab goes.
  setInterval(() => {
    if (lastState) page.postJSON(api + "/presence/" + clientID, "PUT", lastState).catch(() => {});
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
    const text = Array.from(page.shown());
    const marks = [];
    for (const [key, x] of remotes) {
      if (!x.pos) continue;
      const clamp = (i) => Math.max(0, Math.min(text.length, i));
      const c = clamp(client.toView(x.pos.c.c, x.pos.c.dead)), a = clamp(client.toView(x.pos.a.c, x.pos.a.dead));
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

  // moved brings the others' positions along with what a Client method
  // returned: over the text's splices, or to be resolved again after a
  // re-read.
  function moved(r) {
    if (r.reset) {
      for (const x of remotes.values()) { x.pos = null; x.needs = true; }
    } else if (r.text.length > 0) {
      for (const x of remotes.values()) {
        if (x.pos) x.pos = {c: T.mapCursorState(x.pos.c, r.text), a: T.mapCursorState(x.pos.a, r.text)};
        if (x.unknown) x.needs = true;
      }
    }
    placeResolved();
  }

  renderWho();
  return {
    remotes: remotes, me: me, key: () => myKey,
    setPeer: (id) => { myKey = id + "/" + clientID; },
    streamOpened: () => { presenceMissed = 0; refreshPresence(); },
    event: onPresence,
    moved: moved,
    hello: () => { if (!lastState) schedulePresence(); },
    send: sendPresence,
    render: renderOverlay,
  };
};
