// Randomized cases for textsync.js, run in the page by textsync_test.go:
// (seed, count) => {cases, failures}. Texts are made of characters unique
// within a case (a quarter of them outside the BMP, so UTF-16 pairs), which
// lets a check tell every character apart; the diff cases use a small
// alphabet instead, so that repeats make edits ambiguous.
(seed, count) => {
  const T = TextSync;
  let st = seed >>> 0;
  const rnd = () => { // mulberry32
    st = (st + 0x6d2b79f5) >>> 0;
    let t = st;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(rnd() * n);
  let next = 0;
  const uniq = (k) => {
    let s = "";
    for (let x = 0; x < k; x++, next++) s += String.fromCodePoint(next % 4 === 0 ? 0x20000 + next : 0x4e00 + next);
    return s;
  };
  const small = (k) => {
    const al = ["a", "b", "\u{1F600}", "\n", "é"];
    let s = "";
    for (let x = 0; x < k; x++) s += al[int(al.length)];
    return s;
  };
  const failures = [];
  let cases = 0;
  const fail = (what, data) => {
    if (failures.length < 8) failures.push(what + ": " + JSON.stringify(data));
  };
  const chars = (s) => Array.from(s);
  const randSplice = (len, text) => {
    const i = int(len + 1);
    const d = rnd() < 0.4 ? 0 : int(Math.min(len - i, 5) + 1);
    return T.splice(i, d, rnd() < 0.65 || d === 0 ? text(1 + int(3)) : "");
  };
  const randSeq = (v, k) => { // k splices made one after the other on v
    const out = [];
    for (let x = 0; x < k; x++) {
      const sp = randSplice(T.cpLen(v), uniq);
      out.push(sp);
      v = T.apply(v, sp);
    }
    return out;
  };

  // Code points: lengths, and UTF-16 offsets both ways.
  function codePoints() {
    const s = uniq(int(8)) + small(int(8)) + uniq(int(4));
    const cps = chars(s);
    if (T.cpLen(s) !== cps.length) fail("cpLen", {s});
    let u = 0;
    for (let i = 0; i <= cps.length; i++) {
      if (T.toUnits(s, i) !== u || T.toPoints(s, u) !== i) fail("offsets", {s, i, u});
      if (i < cps.length && cps[i].length === 2 && T.toPoints(s, u + 1) !== i) fail("inside a pair", {s, i});
      if (i < cps.length) u += cps[i].length;
    }
    if (T.toUnits(s, cps.length + 3) !== s.length) fail("past the end", {s});
    if (T.wellFormed("a\ud800b\udc00\u{1F600}") !== "a\ufffdb\ufffd\u{1F600}") fail("wellFormed", {});
  }

  // diff gives back a pure insert or delete at the caret exactly, and any
  // edit up to repeats.
  function diffs() {
    const old = small(int(10));
    const sp = randSplice(T.cpLen(old), small);
    const cur = T.apply(old, sp);
    const caret = sp.index + T.cpLen(sp.text);
    const d = T.diff(old, cur, caret);
    if (old === cur) {
      if (d !== null) fail("diff of equal texts", {old, d});
      return;
    }
    if (T.apply(old, d) !== cur) fail("diff applies", {old, cur, caret, d});
    if ((sp.delete === 0 || sp.text === "") && JSON.stringify(d) !== JSON.stringify(sp)) fail("diff of an insert or delete", {old, sp, d});
    // Without a caret (a re-read): the longest common prefix, then the
    // longest common suffix of the rest.
    const e = T.diff(old, cur);
    const A = chars(old), B = chars(cur), most = Math.min(A.length, B.length);
    const pre = e.index, suf = A.length - e.index - e.delete;
    if (T.apply(old, e) !== cur) fail("diff without a caret applies", {old, cur, e});
    if (!(pre === most || A[pre] !== B[pre]) || !(pre + suf === most || A[A.length - 1 - suf] !== B[B.length - 1 - suf])) {
      fail("diff without a caret keeps the most", {old, cur, e});
    }
  }

  // xform converges whichever splice the peer applied first, and keeps
  // both intents: what neither deleted stays in order, each inserted text
  // once, whole, after the characters that were before its index (and at
  // the same index, the other's text first).
  function pair() {
    const v0 = uniq(int(10));
    const a = randSplice(T.cpLen(v0), uniq), b = randSplice(T.cpLen(v0), uniq);
    const A = T.xform(a, b, true), B = T.xform(b, a, false);
    const L = T.applyAll(T.apply(v0, b), A), R = T.applyAll(T.apply(v0, a), B);
    const data = {v0, a, b, A, B, L, R};
    if (L !== R) return fail("xform converges", data);
    const arr = chars(v0), out = chars(L);
    const gone = new Set([...arr.slice(a.index, a.index + a.delete), ...arr.slice(b.index, b.index + b.delete)]);
    const ins = new Set([...chars(a.text), ...chars(b.text)]);
    const kept = (xs) => xs.filter((c) => !gone.has(c) && !ins.has(c)).join("");
    if (kept(out) !== kept(arr) || out.some((c) => gone.has(c))) fail("survivors", data);
    for (const c of ins) if (out.filter((x) => x === c).length !== 1) fail("inserted once", data);
    for (const [sp, name] of [[a, "a"], [b, "b"]]) {
      if (!sp.text) continue;
      const k = L.indexOf(sp.text);
      if (k < 0) { fail(name + "'s text whole", data); continue; }
      if (kept(chars(L.slice(0, k))) !== kept(arr.slice(0, sp.index))) fail(name + "'s text in place", data);
    }
    if (a.text && b.text) { // at the same index, or a's inside b's deleted range: b's first
      const ka = L.indexOf(a.text), kb = L.indexOf(b.text);
      if (a.index >= b.index ? kb > ka : ka > kb) fail("order of the two texts", data);
    }
  }

  // xformLists converges for sequences of splices on both sides.
  function lists() {
    const v0 = uniq(int(10));
    const A = randSeq(v0, 1 + int(3)), B = randSeq(v0, 1 + int(3));
    const [A2, B2] = T.xformLists(A, B);
    const L = T.applyAll(T.applyAll(v0, B), A2), R = T.applyAll(T.applyAll(v0, A), B2);
    if (L !== R) return fail("xformLists converges", {v0, A, B, A2, B2, L, R});
    const out = chars(L);
    if (new Set(out).size !== out.length) fail("a character twice", {v0, A, B, L});
  }

  // mapIndex keeps a caret after the character before it (and with
  // stickRight, before the character after it) when that one survives.
  function carets() {
    const v0 = uniq(int(10));
    const arr = chars(v0);
    const p = randSplice(arr.length, uniq);
    const out = chars(T.apply(v0, p));
    const c = int(arr.length + 1);
    const gone = (k) => k >= p.index && k < p.index + p.delete;
    const l = T.mapIndex(c, p, false), r = T.mapIndex(c, p, true);
    if (c > 0 && !gone(c - 1) && out[l - 1] !== arr[c - 1]) fail("caret after its character", {v0, p, c, l});
    if (c < arr.length && !gone(c) && out[r] !== arr[c]) fail("cursor on its character", {v0, p, c, r});
    if (c === p.index && l !== p.index) fail("an insert at the caret goes after it", {p, c, l});
    const m = T.mapCursor(c, p);
    if (c < arr.length && !gone(c) && m !== r) fail("a cursor on a survivor moves as with stickRight", {v0, p, c, m, r});
    if (gone(c) && m !== p.index) fail("a cursor on a deleted character goes to the splice's index", {v0, p, c, m});
  }

  // Mapped over splices one call at a time, a cursor keeps what one call
  // over all of them does: once its character is deleted, text inserted
  // at its index goes after it (the peer puts inserts after tombstones).
  function cursorStates() {
    const v0 = uniq(1 + int(10)), arr = chars(v0);
    const c = int(arr.length + 1);
    let v = v0;
    const list = [];
    for (let m = 1 + int(4); m > 0; m--) {
      const sp = randSplice(T.cpLen(v), uniq);
      list.push(sp);
      v = T.apply(v, sp);
    }
    const all = T.mapCursorAll(c, list);
    let pos = {c, dead: false};
    for (const sp of list) pos = T.mapCursorState(pos, [sp]);
    if (pos.c !== all) fail("a cursor mapped change by change lands where one mapping puts it", {v0, list, c, all, pos});
    const gone = c < arr.length && !chars(v).includes(arr[c]);
    if (pos.dead !== gone) fail("a cursor knows its character is deleted", {v0, list, c, pos, gone});
  }

  // compose joins two edits into one with the same effect.
  function composes() {
    const v0 = uniq(int(10));
    const [a, b] = randSeq(v0, 2);
    const c = T.compose(a, b);
    if (c && T.apply(v0, c) !== T.apply(T.apply(v0, a), b)) fail("compose", {v0, a, b, c});
    if (b.index === a.index + T.cpLen(a.text) && b.delete === 0 && !c) fail("typing on composes", {a, b});
  }

  // simulate runs pages (Clients with a textarea model) against a model
  // of the peer that applies the spec's rule, with POSTs, answers, events
  // and re-reads delivered in random order (each stream in order), dropped
  // events, refused splices (base too old), failed requests, changes from
  // elsewhere (another peer), and changes to other keys. When all is
  // delivered every page shows the peer's text, every keystroke is in it
  // exactly once (unless deleted), the page never predicted its own change
  // wrong, and a page typing at its caret kept it after what it typed.
  function simulate() {
    next = 0;
    const keep = 12; // changes the model keeps for bases
    const peer = {text: uniq(int(6)), n: 1e6 + int(1000), log: [], inserted: new Set()};
    // The peer announces a change once durable; until then, a POST that
    // comes next joins it (consecutive local transactions are one change).
    const settle = () => {
      for (const ch of peer.log) {
        if (ch.sent) continue;
        ch.sent = true;
        for (const p of ch.ps) for (const c of chars(p.text)) peer.inserted.add(c);
        for (const pg of pages) pg.events.push({n: ch.n, patches: ch.ps.map((p) => ({path: ["text"], ...p})), paths: ch.paths});
      }
    };
    const publish = (ps, paths, open) => {
      settle();
      peer.n++;
      peer.log.push({n: peer.n, ps: ps.slice(), paths: paths, sent: false, open: open});
      if (peer.log.length > keep) peer.log.shift();
      if (!open) settle();
    };
    const post = (op) => {
      if (op.base < peer.n - keep || op.base > peer.n) return {status: 409, error: "base too old"};
      let ops = [T.splice(op.index, op.delete, op.text)];
      for (const ch of peer.log) if (ch.n > op.base) ops = T.xformLists(ops, ch.ps)[0];
      peer.text = T.applyAll(peer.text, ops);
      const last = peer.log[peer.log.length - 1];
      if (last && last.open && !last.sent && rnd() < 0.5) last.ps.push(...ops);
      else publish(ops, [["text"]], true);
      return {status: 200, n: peer.n};
    };
    const pages = [];
    const nPages = 1 + int(3);
    for (let k = 0; k < nPages; k++) {
      pages.push({c: new T.Client(["text"]), view: null, caret: 0, last: null, events: [], req: null, answer: null, get: null, sync: true, typed: []});
    }
    const check = (pg, what) => {
      if (pg.view !== null && pg.view !== pg.c.view()) throw new Error(what + ": the textarea shows " + JSON.stringify(pg.view) + ", the client " + JSON.stringify(pg.c.view()));
      if (pg.last !== null) {
        const cs = chars(pg.view);
        if (!cs.includes(pg.last)) pg.last = null;
        else if (cs[pg.caret - 1] !== pg.last) throw new Error(what + ": the caret left what the page typed");
      }
    };
    const take = (pg, r, what) => {
      // A re-read rebases on one splice from the old text to the new
      // (common prefix and suffix): a caret inside it goes to its end.
      if (r.reset) pg.last = null;
      for (const p of r.view) {
        pg.caret = T.mapIndex(pg.caret, p, false);
        pg.view = T.apply(pg.view, p);
      }
      if (r.resync) pg.sync = true;
      check(pg, what);
    };
    const gone = new Set(); // characters a page deleted
    const act = (pg, quiet) => {
      const choice = rnd();
      if (pg.sync && !pg.get && !(pg.c.inflight && pg.c.inflight.state === "sent") && choice < 0.5) {
        pg.sync = false;
        pg.c.beginSync();
        settle(); // a read closes the open change
        pg.get = {text: peer.text, n: peer.n};
      } else if (pg.get && choice < 0.3) {
        const g = pg.get;
        pg.get = null;
        if (pg.view === null) pg.view = "";
        take(pg, pg.c.resync(g.text, g.n), "resync");
      } else if (pg.events.length && choice < 0.45) {
        const ev = pg.events.shift();
        if (!quiet && rnd() < 0.03) return; // the stream dropped it
        take(pg, pg.c.change(ev), "change");
      } else if (pg.answer && choice < 0.6) {
        const a = pg.answer;
        pg.answer = null;
        if (a.status === 200) take(pg, pg.c.answered(a.n), "answered");
        else if (a.status === 0) { pg.c.failed(); pg.sync = true; } else { pg.c.refused(true); pg.sync = true; }
      } else if (pg.req && choice < 0.75) {
        const op = pg.req;
        pg.req = null;
        pg.answer = !quiet && rnd() < 0.05 ? {status: 0} : post(op); // a request that never reached the peer
      } else if (!quiet && pg.view !== null && !pg.c.syncing && pg.c.n !== null && choice < 0.9) {
        // The user edits: types at the caret mostly, sometimes elsewhere,
        // backspaces, or replaces a range.
        const len = T.cpLen(pg.view);
        const r = rnd();
        let sp;
        if (r < 0.6) {
          sp = T.splice(pg.caret, 0, uniq(1));
        } else if (r < 0.75) {
          pg.caret = int(len + 1);
          pg.last = null;
          sp = T.splice(pg.caret, 0, uniq(1 + int(2)));
        } else if (r < 0.9) {
          if (pg.caret === 0) return;
          sp = T.splice(pg.caret - 1, 1, "");
        } else {
          sp = randSplice(len, uniq);
        }
        for (const c of chars(pg.view).slice(sp.index, sp.index + sp.delete)) gone.add(c);
        const cur = T.apply(pg.view, sp);
        pg.caret = sp.index + T.cpLen(sp.text);
        pg.last = sp.text ? chars(sp.text).pop() : null;
        pg.typed.push(...chars(sp.text));
        pg.c.local(T.diff(pg.view, cur, pg.caret));
        pg.view = cur;
        check(pg, "local");
      }
      // The page re-reads when the change holding its answered splice does
      // not come (the stream dropped it and nothing came after).
      if (pg.c.inflight && pg.c.inflight.state === "acked" && pg.events.length === 0 && (quiet || rnd() < 0.05)) pg.sync = true;
      // And when it has been idle a while behind the peer (the same).
      if (quiet && pg.c.settled() && !pg.get && pg.events.length === 0 && pg.c.n < peer.n) pg.sync = true;
      if (!pg.req && !pg.sync) pg.req = pg.c.next();
    };
    const steps = 60 + int(200);
    for (let s = 0; s < steps; s++) {
      const r = rnd();
      if (r < 0.05) {
        settle();
      } else if (r < 0.08) {
        const sp = randSplice(T.cpLen(peer.text), uniq); // another peer's edit
        peer.text = T.apply(peer.text, sp);
        publish([sp], [["text"]]);
      } else if (r < 0.1) {
        publish([], [["other"]]);
      } else {
        act(pages[int(pages.length)], false);
      }
    }
    // Deliver everything, in random order, until all is quiet.
    const busy = (pg) => pg.sync || pg.get || pg.events.length || pg.answer || pg.req || !pg.c.settled() || pg.c.n !== peer.n;
    for (let s = 0; pages.some(busy); s++) {
      if (s > 100000) {
        throw new Error("never settled: " + JSON.stringify(pages.filter(busy).map((pg) => ({
          sync: pg.sync, get: !!pg.get, events: pg.events.length, answer: pg.answer, req: pg.req,
          inflight: pg.c.inflight, pending: pg.c.pending, n: pg.c.n, peer: peer.n, held: pg.c.held.length, syncing: pg.c.syncing}))));
      }
      if (rnd() < 0.3) settle();
      act(pages[int(pages.length)], true);
    }
    for (const pg of pages) {
      if (pg.view !== peer.text) throw new Error("a page shows " + JSON.stringify(pg.view) + ", the peer has " + JSON.stringify(peer.text));
      if (pg.c.mismatches !== 0) throw new Error("the page predicted its own change wrong " + pg.c.mismatches + " times");
      for (const c of pg.typed) if (!peer.inserted.has(c) && !gone.has(c)) throw new Error("a keystroke never reached the peer");
    }
    const out = chars(peer.text);
    if (new Set(out).size !== out.length) throw new Error("a character twice in " + JSON.stringify(peer.text));
  }

  const all = {codePoints, diffs, pair, lists, carets, cursorStates, composes, simulate};
  for (let k = 0; k < count; k++) {
    for (const [name, f] of Object.entries(all)) {
      if (name === "simulate" && k % 10 !== 0) continue;
      const at = st;
      next = 0;
      try {
        f();
      } catch (e) {
        fail(name + " (state " + at + ")", String(e && e.stack || e));
      }
      cases++;
    }
  }
  return {cases, failures};
}
