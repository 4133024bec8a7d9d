// The editor page's model of its text: pure functions on strings and
// splices, and Client, the bookkeeping between what the peer has applied
// and what the textarea shows. No DOM, no network: editor.js does the I/O.
//
// A splice is {index, delete, text}: at index, delete code points, then
// insert text. Indexes and lengths count Unicode code points, as the HTTP
// API does; the DOM counts UTF-16 units (toUnits and toPoints convert).
//
// The peer's rule for a splice sent with "base": n (the server moves it
// over the changes applied after n) is xform(ours, theirs, true): a change
// that inserted at or before our index shifts it right (at the same index
// their text comes first, ours after it), one that deleted before it pulls
// it back, and text inserted inside our deleted range is kept (our delete
// splits around it). The page moves its unsent edits the same way, so that
// what it sends lands where the user typed.
"use strict";

const TextSync = (() => {
  const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
  const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

  // width is 2 when a surrogate pair starts at UTF-16 offset u of s.
  function width(s, u) {
    return isHigh(s.charCodeAt(u)) && u + 1 < s.length && isLow(s.charCodeAt(u + 1)) ? 2 : 1;
  }

  // cpLen is the number of code points of s.
  function cpLen(s) {
    let n = 0;
    for (let u = 0; u < s.length; u += width(s, u)) n++;
    return n;
  }

  // toUnits is the UTF-16 offset of code point index i of s (its length
  // past the end).
  function toUnits(s, i, from = 0) {
    let u = from;
    for (let n = 0; n < i && u < s.length; n++) u += width(s, u);
    return u;
  }

  // toPoints is the code point index of UTF-16 offset u of s; an offset
  // between the halves of a pair counts as before the pair.
  function toPoints(s, u) {
    let n = 0;
    for (let k = 0; k < s.length; n++) {
      const w = width(s, k);
      if (k + w > u) break;
      k += w;
    }
    return n;
  }

  // wellFormed replaces lone surrogates (which the peer refuses as invalid
  // UTF-8) with U+FFFD.
  function wellFormed(s) {
    return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
  }

  function splice(index, del, text) {
    return {index: index, delete: del, text: text || ""};
  }

  const isNoop = (sp) => sp.delete === 0 && sp.text === "";

  // apply returns s with the splice applied; it throws when the splice
  // reaches past the end of s.
  function apply(s, sp) {
    const a = toUnits(s, sp.index);
    const b = toUnits(s, sp.delete, a);
    if (sp.index < 0 || sp.delete < 0 || cpLen(s.slice(0, b)) !== sp.index + sp.delete) {
      throw new RangeError(`splice ${JSON.stringify(sp)} past the end of a text of ${cpLen(s)} code points`);
    }
    return s.slice(0, a) + sp.text + s.slice(b);
  }

  // applyAll applies splices in order.
  function applyAll(s, list) {
    for (const sp of list) s = apply(s, sp);
    return s;
  }

  // diff is the splice that turns old into cur (null when they are equal):
  // their common prefix and suffix stay. caret, the caret's code point
  // index in cur after the edit (when it is one), settles what a repeated
  // character leaves ambiguous: an edit ends at the caret, so the suffix
  // kept starts at or after it. Without, the longest prefix is kept first.
  function diff(old, cur, caret) {
    if (old === cur) return null;
    const a = Array.from(old), b = Array.from(cur);
    const most = Math.min(a.length, b.length);
    const tail = (max) => {
      let n = 0;
      while (n < max && a[a.length - 1 - n] === b[b.length - 1 - n]) n++;
      return n;
    };
    const head = (max) => {
      let n = 0;
      while (n < max && a[n] === b[n]) n++;
      return n;
    };
    let prefix, suffix;
    if (caret === undefined || caret === null) {
      prefix = head(most);
      suffix = tail(most - prefix);
    } else {
      suffix = tail(Math.max(0, Math.min(a.length, b.length - caret)));
      prefix = head(most - suffix);
    }
    return splice(prefix, a.length - prefix - suffix, b.slice(prefix, b.length - suffix).join(""));
  }

  // xform moves splice a over splice b, both made on the same text: it
  // returns splices (none, one, or two when b inserted inside a's deleted
  // range) that, applied after b, do what a meant. bFirst settles an
  // insert at the same index: b's text first (the peer's rule for the
  // page's own splice), or a's.
  function xform(a, b, bFirst) {
    const i = a.index, d = a.delete, j = b.index, e = b.delete, ul = cpLen(b.text);
    // What is left of a's deleted range, after b: the part before b's
    // range, and the part after it (shifted by b); b's text sits between.
    const ranges = [];
    if (d > 0) {
      if (i < j) ranges.push([i, Math.min(i + d, j)]);
      if (i + d > j + e) {
        const r = [Math.max(i, j + e) - e + ul, i + d - e + ul];
        if (ranges.length > 0 && ul === 0) ranges[0][1] = r[1];
        else ranges.push(r);
      }
    }
    // Where a's text goes: an index inside b's deleted range (or at its
    // end) is pulled back to b's and goes after b's text.
    let p;
    if (i < j) p = i;
    else if (i > j + e) p = i - e + ul;
    else if (i > j) p = j + ul;
    else p = bFirst ? j + ul : j;
    const out = [];
    let placed = a.text === "";
    for (const [s, t] of ranges) {
      if (!placed && s <= p && p <= t) {
        out.push(splice(s, t - s, a.text));
        placed = true;
      } else {
        out.push(splice(s, t - s, ""));
      }
    }
    if (!placed) out.push(splice(p, 0, a.text));
    // Highest first, so that each leaves the indexes of the next alone.
    return out.sort((x, y) => y.index - x.index);
  }

  // xformLists moves the splices A over the splices B (each a sequence
  // made on the same text): it returns [A', B'] with text∘B∘A' equal to
  // text∘A∘B'. B is the other's, whose text comes first at the same index.
  function xformLists(A, B) {
    if (A.length === 0 || B.length === 0) return [A, B];
    if (A.length === 1 && B.length === 1) return [xform(A[0], B[0], true), xform(B[0], A[0], false)];
    if (A.length > 1) {
      const [a1, b1] = xformLists(A.slice(0, 1), B);
      const [a2, b2] = xformLists(A.slice(1), b1);
      return [a1.concat(a2), b2];
    }
    const [a1, b1] = xformLists(A, B.slice(0, 1));
    const [a2, b2] = xformLists(a1, B.slice(1));
    return [a2, b1.concat(b2)];
  }

  // mapIndex moves a position (a caret, a selection's end) over a splice.
  // At the splice's index it stays before the inserted text, unless
  // stickRight; inside the deleted range it goes after the inserted text.
  function mapIndex(c, sp, stickRight) {
    const j = sp.index, e = sp.delete, ul = cpLen(sp.text);
    if (c < j) return c;
    if (c > j + e) return c - e + ul;
    if (c > j) return j + ul;
    return stickRight ? j + ul : j;
  }

  function mapIndexAll(c, list, stickRight) {
    for (const sp of list) c = mapIndex(c, sp, stickRight);
    return c;
  }

  // mapCursor moves the position of an element (where a stable cursor on
  // it shows) over a splice, as the peer places it: a survivor moves with
  // the text around it (after an insert at its index); a deleted one goes
  // where it would be, before the inserted text.
  function mapCursor(c, sp) {
    const j = sp.index, e = sp.delete;
    if (c < j) return c;
    if (c < j + e) return j;
    return c - e + cpLen(sp.text);
  }

  // mapCursorAll moves an element's position over splices in turn. Once
  // the element is deleted it is a tombstone right before the element now
  // at its index, and the peer puts text inserted at that index after
  // tombstones: the position stays before it.
  function mapCursorAll(c, list) {
    return mapCursorState({c, dead: false}, list).c;
  }

  // mapCursorState is mapCursorAll for a position that may be a deleted
  // element's already ({c, dead}, as it returns): a caller mapping a
  // cursor change by change keeps the state between the calls.
  function mapCursorState(pos, list) {
    let {c, dead} = pos;
    for (const sp of list) {
      const j = sp.index, e = sp.delete;
      if (!dead) {
        dead = c >= j && c < j + e;
        c = mapCursor(c, sp);
      } else if (c > j) {
        c = c > j + e ? c - e + cpLen(sp.text) : j;
      }
    }
    return {c, dead};
  }

  // compose joins b, made after a, into one splice when b touches what a
  // inserted (typing on, backspacing); null when it does not.
  function compose(a, b) {
    const i = a.index, tl = cpLen(a.text), k = b.index, e = b.delete;
    if (k > i + tl || k + e < i) return null;
    const t = Array.from(a.text);
    const pre = Math.max(0, i - k), post = Math.max(0, k + e - (i + tl));
    const head = t.slice(0, Math.max(0, k - i)).join(""), tail = t.slice(Math.min(tl, k + e - i)).join("");
    return splice(Math.min(i, k), pre + a.delete + post, head + b.text + tail);
  }

  const samePath = (p, q) => Array.isArray(p) && p.length === q.length && p.every((x, k) => x === q[k]);
  const isPrefix = (p, q) => Array.isArray(p) && p.length <= q.length && p.every((x, k) => x === q[k]);

  // Client tracks the text at path as the peer has it and the page's edits
  // not in it yet (ShareDB's client, with the peer's text as truth):
  //
  //   text     the text as of change n (the last change applied)
  //   inflight the splice POSTed, not yet seen in a change event:
  //            {ops, base, n (the change holding it, once answered),
  //            state: "sent" | "acked" | "uncertain" (no answer came) |
  //            "refused"}; ops is the splice moved over the changes seen
  //            since, as the peer moves it
  //   pending  the page's later edits, as splices after text∘inflight
  //
  // The textarea shows view() = text∘inflight∘pending. Change events are
  // held while a POST is unanswered (the change holding it is recognised
  // by its number) or a re-read is under way, and taken in order after.
  // Methods that change the view return {view, text, resync, reset}: view,
  // the splices to apply to what the textarea shows; text, the splices of
  // the peer's text (for positions kept as of change n); resync, when the
  // page must re-read the document (a gap in the numbers, a change it
  // cannot follow); reset, when the text was re-read (positions kept as of
  // an older change are stale).
  class Client {
    constructor(path) {
      this.path = path;
      this.text = "";
      this.n = null;
      this.inflight = null;
      this.pending = [];
      this.held = [];
      this.syncing = false;
      this.missed = 0;
      // mismatches counts own changes whose text differed from what the
      // page predicted (its transform disagreed with the peer's); the page
      // then rebases on the peer's text.
      this.mismatches = 0;
      // history holds the text's splices of the latest changes, by number,
      // to bring a position the peer gave as of an older change up to n.
      this.history = [];
    }

    view() {
      return applyAll(applyAll(this.text, this.inflight ? this.inflight.ops : []), this.pending);
    }

    // toView maps an element's position (a cursor's) in text to the view;
    // dead: the element is deleted already.
    toView(i, dead) {
      return mapCursorState({c: i, dead: !!dead}, (this.inflight ? this.inflight.ops : []).concat(this.pending)).c;
    }

    // settled says the view is the peer's text: no edit of the page's is
    // outside it.
    settled() {
      return this.n !== null && !this.inflight && this.pending.length === 0 && !this.syncing;
    }

    holding() {
      return this.n === null || this.syncing || (this.inflight !== null && this.inflight.state !== "acked");
    }

    // local records a splice the user made on the view.
    local(sp) {
      if (!sp || isNoop(sp)) return;
      const last = this.pending[this.pending.length - 1];
      const c = last && compose(last, sp);
      if (!c) this.pending.push(sp);
      else if (isNoop(c)) this.pending.pop();
      else this.pending[this.pending.length - 1] = c;
    }

    // next returns the op to POST (with its base), or null when one is
    // under way, a re-read is, or there is nothing to send.
    next() {
      if (this.inflight || this.holding() || this.pending.length === 0) return null;
      const sp = this.pending.shift();
      this.inflight = {ops: [sp], base: this.n, n: null, state: "sent"};
      return {op: "splice", path: this.path, index: sp.index, delete: sp.delete, text: sp.text, base: this.n};
    }

    // answered: the peer applied the POSTed splice in change n.
    answered(n) {
      this.inflight.n = n;
      this.inflight.state = "acked";
      return this.drain();
    }

    // refused: the peer did not apply it. again puts it back to be sent
    // after a re-read (the base was too old, or the peer failed); without,
    // it is dropped.
    refused(again) {
      if (again) this.inflight.state = "refused";
      else this.inflight = null;
    }

    // failed: no answer came; the splice may or may not have been applied,
    // which the re-read settles.
    failed() {
      this.inflight.state = "uncertain";
    }

    // streamOpened: a new event stream; its dropped count starts again.
    streamOpened() {
      this.missed = 0;
    }

    // change takes a change event.
    change(ev) {
      if (this.holding()) {
        this.held.push(ev);
        return {view: [], text: []};
      }
      return this.process(ev);
    }

    // beginSync: a re-read starts; events are held until resync.
    beginSync() {
      this.syncing = true;
    }

    // resync takes the text and number the re-read gave: the page's edits
    // not in it are moved over what changed since text.
    resync(text, n) {
      let base = this.text, pend = this.pending;
      const inf = this.inflight;
      if (inf) {
        const withOurs = applyAll(base, inf.ops);
        if (inf.state === "acked") base = withOurs; // applied (the read, made after the answer, holds it)
        else if (inf.state === "uncertain" && withOurs === text) base = withOurs;
        else pend = inf.ops.concat(pend);
        this.inflight = null;
      }
      const d = diff(base, text);
      const [p2, view] = xformLists(pend, d ? [d] : []);
      this.text = text;
      this.n = n;
      this.pending = p2;
      this.syncing = false;
      this.history = [];
      const out = this.drain();
      out.view = view.concat(out.view);
      out.reset = true;
      return out;
    }

    drain() {
      const out = {view: [], text: []};
      while (this.held.length > 0 && !this.holding()) {
        const r = this.process(this.held.shift());
        out.view = out.view.concat(r.view);
        out.text = out.text.concat(r.text);
        if (r.resync) {
          out.resync = true;
          break;
        }
      }
      return out;
    }

    // process applies one change event to text, in order.
    process(ev) {
      const none = {view: [], text: []};
      if (typeof ev.n !== "number") return {...none, resync: true};
      if (ev.n <= this.n) return none; // in the text already (re-read after it)
      const missed = ev.missed || 0;
      if (ev.n !== this.n + 1 || missed > this.missed) {
        this.missed = missed;
        return {...none, resync: true};
      }
      const ps = [];
      let touched = false;
      for (const p of ev.patches || []) {
        if (!samePath(p.path, this.path)) continue;
        if (typeof p.text !== "string") return {...none, resync: true};
        ps.push(splice(p.index, p.delete, p.text));
      }
      for (const p of ev.paths || []) touched = touched || isPrefix(p, this.path);
      // Set or deleted: not a splice (unless it is the page's own change,
      // whose delete others had made already).
      const own = this.inflight !== null && this.inflight.n === ev.n;
      if (touched && ps.length === 0 && !own) return {...none, resync: true};
      const prev = this.text;
      try {
        this.text = applyAll(prev, ps);
      } catch (e) {
        this.text = prev;
        return {...none, resync: true};
      }
      this.n = ev.n;
      this.remember(ev.n, ps);
      let view = [];
      const inf = this.inflight;
      const over = (B) => { // move the page's later edits over others' splices
        let v;
        [this.pending, v] = xformLists(this.pending, B);
        view = view.concat(v);
      };
      if (!inf || inf.n !== ev.n) {
        let rest = ps;
        if (inf) [inf.ops, rest] = xformLists(inf.ops, ps);
        over(rest);
        return {view: view, text: ps};
      }
      // The change holding our splice. The peer joins consecutive local
      // transactions into one change, so others' splices (another tab's)
      // may come before or after ours: ours are the run of one to three
      // splices (a delete the peer split, and the insert) doing what the
      // page's prediction does; those before it are others', applied
      // first.
      this.inflight = null;
      // Ours may have come to nothing (deleting what others had deleted).
      let cur = prev, ours = inf.ops, k = 0, found = -1;
      for (;;) {
        const want = applyAll(cur, ours);
        if (want === cur) found = 0;
        if (found >= 0 || k === ps.length) break;
        for (let m = k + 1; m <= Math.min(ps.length, k + 3) && found < 0; m++) {
          if (applyAll(cur, ps.slice(k, m)) === want) found = m - k;
        }
        if (found >= 0) break;
        let rest;
        [ours, rest] = xformLists(ours, [ps[k]]);
        over(rest);
        cur = apply(cur, ps[k++]);
      }
      if (found >= 0) {
        over(ps.slice(k + found));
      } else {
        // The peer moved it otherwise than the page did: rebase on the
        // peer's text.
        this.mismatches++;
        const d = diff(applyAll(this.text, ours), this.text);
        over(d ? [d] : []);
      }
      return {view: view, text: ps};
    }

    remember(n, ps) {
      this.history.push({n: n, patches: ps});
      if (this.history.length > 256) this.history.shift();
    }

    // since returns the text's splices of the changes after change m, or
    // null when the history does not reach back that far (or m is ahead).
    since(m) {
      if (m === this.n) return [];
      if (m > this.n || this.history.length === 0 || this.history[0].n > m + 1) return null;
      const out = [];
      for (const h of this.history) if (h.n > m) out.push(...h.patches);
      return out;
    }
  }

  return {cpLen, toUnits, toPoints, wellFormed, splice, apply, applyAll, diff, xform, xformLists, mapIndex, mapIndexAll, mapCursor, mapCursorAll, mapCursorState, compose, Client};
})();
