// The todo page's model of its document, as pure functions of the
// document's JSON view: which items to show in which order, and the
// batches (for POST /v1/docs/{doc}/ops) that add, move, delete and repair
// items.
//
// The document holds items.<id> = {text, done} and "order", a list of item
// ids. An item shows once, at the first occurrence of its id in the list;
// ids whose item is gone from the map (deleted while another peer moved
// it) are skipped; items the list lacks (written by an older version of
// the page) show at the end, sorted by id, and the next add or move
// appends them to the list in that order, so that nothing on the screen
// moves. A move deletes the id and inserts it again, in one batch. Two
// peers moving one item at once each insert it, so the merged list holds
// it twice: the later occurrence is hidden, and repairOps deletes it.
//
// Positions in a batch are the page's view of the list. Each batch that
// deletes by index starts with an empty splice at the end of the list as
// the page saw it: when the list has shrunk since (another page repaired
// the same duplicate, say), the peer refuses the whole batch (409) instead
// of deleting whatever now sits at those indices.
"use strict";

const TodoOrder = (() => {
  const path = ["order"];

  function isObject(v) {
    return v !== null && typeof v === "object" && !Array.isArray(v);
  }

  function splice(index, del, values) {
    const op = {op: "splice", path: path, index: index, delete: del};
    if (values) op.values = values;
    return op;
  }

  // model reads a document's JSON view. rows are the items to show, in
  // order: {id, item, at}, at being the index of the id in the list (-1
  // for an item the list lacks); dups are the indices of later
  // occurrences of shown ids; listed says whether there is a list.
  function model(value) {
    const items = isObject(value) && isObject(value.items) ? value.items : {};
    const listed = isObject(value) && Array.isArray(value.order);
    const order = listed ? value.order : [];
    const rows = [], dups = [], seen = new Set();
    const isItem = (id) => typeof id === "string" && Object.hasOwn(items, id) && isObject(items[id]);
    order.forEach((id, at) => {
      if (!isItem(id)) return;
      if (seen.has(id)) {
        dups.push(at);
        return;
      }
      seen.add(id);
      rows.push({id: id, item: items[id], at: at});
    });
    for (const id of Object.keys(items).sort()) {
      if (!seen.has(id) && isItem(id)) rows.push({id: id, item: items[id], at: -1});
    }
    return {rows: rows, order: order, dups: dups, listed: listed};
  }

  // guard is the empty splice at the list's end that makes the peer refuse
  // a batch built on a longer list than it holds.
  function guard(m) {
    return m.listed ? [splice(m.order.length, 0, [])] : [];
  }

  // orphans returns the ids of the items the list lacks, in the order
  // shown, but except.
  function orphans(m, except) {
    return m.rows.filter((r) => r.at < 0 && r.id !== except).map((r) => r.id);
  }

  // removeAll appends to ops the deletes of every occurrence of id in
  // order (last first, so each index holds when it applies) and removes
  // them from order.
  function removeAll(ops, order, id) {
    for (let i = order.length - 1; i >= 0; i--) {
      if (order[i] === id) {
        ops.push(splice(i, 1));
        order.splice(i, 1);
      }
    }
  }

  // addOps adds an item at the end.
  function addOps(m, id, text) {
    return [
      {op: "set", path: ["items", id, "text"], value: text},
      {op: "set", path: ["items", id, "done"], value: false},
      splice(m.order.length, 0, orphans(m, id).concat([id])),
    ];
  }

  // moveTo moves the item id to where the item target is shown: before it
  // when id is shown below it, after it otherwise. null when either is not
  // shown or they are the same.
  function moveTo(m, id, target) {
    const from = m.rows.findIndex((r) => r.id === id);
    const to = m.rows.findIndex((r) => r.id === target);
    if (from < 0 || to < 0 || from === to) return null;
    const ops = guard(m), order = m.order.slice(), lacking = orphans(m, id);
    if (lacking.length) {
      ops.push(splice(order.length, 0, lacking));
      order.push(...lacking);
    }
    removeAll(ops, order, id);
    const t = order.indexOf(target); // its first occurrence: the one shown
    ops.push(splice(from < to ? t + 1 : t, 0, [id]));
    return ops;
  }

  // moveBy moves the item id step rows (-1 up, 1 down); null past either
  // end.
  function moveBy(m, id, step) {
    const from = m.rows.findIndex((r) => r.id === id);
    const to = from + step;
    if (from < 0 || to < 0 || to >= m.rows.length) return null;
    return moveTo(m, id, m.rows[to].id);
  }

  // deleteOps deletes the item id and every occurrence of it in the list.
  function deleteOps(m, id) {
    const dels = [];
    removeAll(dels, m.order.slice(), id);
    return (dels.length ? guard(m).concat(dels) : []).concat([{op: "delete", path: ["items", id]}]);
  }

  // repairOps deletes the later occurrences of shown ids; null when there
  // are none.
  function repairOps(m) {
    if (m.dups.length === 0) return null;
    return guard(m).concat(m.dups.slice().reverse().map((i) => splice(i, 1)));
  }

  return {model, addOps, moveTo, moveBy, deleteOps, repairOps};
})();
