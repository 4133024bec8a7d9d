// Random cases run in the editor page against its peer by rebase_test.go:
// async (seed, count) => {cases, failures}. Each case writes a text at
// ["case", k], then one to three splices without a base (others' edits),
// then the page's splice made on the first text (with its "base"): the
// peer's text must be what the page predicts with xformLists. And a cursor
// made on the first text (its index moved over the others' splices as the
// page moves a caret, stickRight) ends where mapCursor puts it after the
// page's splice. Texts repeat characters and hold UTF-16 pairs.
async (seed, count) => {
  const T = TextSync;
  const rng = (st) => () => { // mulberry32
    st = (st + 0x6d2b79f5) >>> 0;
    let t = st;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const api = "/v1/docs/" + encodeURIComponent(document.querySelector('meta[name="concord-doc"]').content);
  const post = async (route, body) => {
    const r = await fetch(api + route, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const b = await r.json();
    if (!r.ok) throw new Error(r.status + " " + b.error + " for " + JSON.stringify(body));
    return b;
  };
  const failures = [];
  let cases = 0;
  // One case, its randomness from (seed, k); cases run eight at a time.
  const run = async (k) => {
    const rnd = rng((seed + Math.imul(k, 0x9e3779b1)) >>> 0);
    const int = (n) => Math.floor(rnd() * n);
    const small = (n) => {
      const al = ["a", "b", "\u{1F600}", "é", " "];
      let s = "";
      for (let x = 0; x < n; x++) s += al[int(al.length)];
      return s;
    };
    const randSplice = (len) => {
      const i = int(len + 1);
      const d = rnd() < 0.4 ? 0 : int(Math.min(len - i, 5) + 1);
      return T.splice(i, d, rnd() < 0.65 || d === 0 ? small(1 + int(3)) : "");
    };
    const path = ["case", String(k)];
    const splice = (sp, base) => ({op: "splice", path: path, index: sp.index, delete: sp.delete, text: sp.text, ...(base ? {base: base} : {})});
    try {
      const v0 = small(1 + int(10));
      const base = (await post("/ops", [splice(T.splice(0, 0, v0))])).n;
      const others = [];
      let v = v0;
      for (let m = 1 + int(3); m > 0; m--) {
        const sp = randSplice(T.cpLen(v));
        others.push(sp);
        v = T.apply(v, sp);
        await post("/ops", [splice(sp)]);
      }
      const ours = randSplice(T.cpLen(v0));
      const c = int(T.cpLen(v0) + 1);
      const cur = await post("/cursors", {path: path, base: base, indexes: [c]});
      const mine = await post("/ops", [splice(ours, base)]);
      const got = mine.value.case[String(k)];
      const want = T.applyAll(v, T.xformLists([ours], others)[0]);
      if (got !== want) failures.push(JSON.stringify({what: "rebase", k, v0, others, ours, got, want}));
      // The cursor, on the text before ours was applied (other cases'
      // changes since touch other paths).
      const idx = await post("/indexes", {path: path, cursors: cur.cursors});
      const place = T.mapCursorAll(T.mapIndexAll(c, others, true), T.xformLists([ours], others)[0]);
      if (idx.indexes[0] !== place) {
        failures.push(JSON.stringify({what: "cursor", k, v0, others, ours, c, cursor: cur.cursors[0], got: idx.indexes[0], want: place}));
      }
    } catch (e) {
      failures.push("case " + k + ": " + String(e && e.message || e));
    }
    cases++;
  };
  for (let k = 0; k < count && failures.length < 8; k += 8) {
    const batch = [];
    for (let x = k; x < Math.min(count, k + 8); x++) batch.push(run(x));
    await Promise.all(batch);
  }
  return {cases, failures};
}
