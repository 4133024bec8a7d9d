// The editor page: binds the textarea to the text at ["text"] of the
// document through the peer's HTTP API (textsync.js keeps the books) and
// follows the document's event stream; presence.js shows who else is here
// and where their cursors are.
"use strict";

(() => {
  const docName = document.querySelector('meta[name="concord-doc"]').content;
  const api = "/v1/docs/" + encodeURIComponent(docName);
  const path = ["text"];
  const T = TextSync;
  const ta = document.getElementById("text");
  const stateBox = document.getElementById("state");
  const errorBox = document.getElementById("error");

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
    presence.render();
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
    presence.moved(r);
    if (r.resync || syncAgain) resync();
    pump();
    presence.send();
    presence.render();
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
            presence.render();
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
    presence.hello(); // here, before the first keystroke
    if (syncAgain) resync();
  }

  // --- the event stream, reopened with backoff when it fails.
  let events = null, streamDelay = 0;
  function connect() {
    events = new EventSource(api + "/events");
    events.onopen = () => {
      streamOpen = true;
      streamDelay = 0;
      client.streamOpened();
      resync();
      presence.streamOpened();
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
      try { presence.event(JSON.parse(m.data)); } catch (e) { showError(e); }
    });
    events.onerror = () => {
      events.close();
      streamOpen = false;
      showState();
      streamDelay = Math.min(5000, Math.max(250, streamDelay * 2));
      setTimeout(connect, streamDelay * (0.5 + Math.random() / 2));
    };
  }

  // Every 10 s: re-read when the peer's text is at a later change than the
  // page's while no event came (the stream dropped the latest).
  let seenChanges = 0, checkedChanges = -1;
  setInterval(async () => {
    if (!streamOpen || !client.settled() || seenChanges !== checkedChanges) {
      checkedChanges = seenChanges;
      return;
    }
    try {
      const n = client.n, body = await (await fetch(api)).json();
      if (typeof body.n === "number" && body.n > n && client.n === n && seenChanges === checkedChanges) resync();
    } catch (e) { /* the stream notices */ }
  }, 10000);
  const presence = EditorPresence({api: api, path: path, client: client, ta: ta, postJSON: postJSON,
    shown: () => shown, lastSel: () => lastSel});

  // For the page's tests and the curious.
  window.editor = {client: client, presence: presence};

  // Start: learn the peer's ID (this tab's presence key is "<peer
  // id>/<client>"), then follow the document.
  (async function start() {
    for (let delay = 250; ; delay = Math.min(5000, delay * 2)) {
      try {
        const r = await fetch("/v1/status");
        const id = (await r.json()).peer_id;
        if (typeof id === "string") {
          presence.setPeer(id);
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
  showState();
})();
