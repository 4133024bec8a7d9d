package main

// The chaos test's writers and the model they keep of what was
// acknowledged; chaos_test.go runs them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeClient opens a connection per request, so that a write to a peer
// that is down fails at connect (not applied) rather than on a stale
// pooled connection (outcome unknown).
var writeClient = &http.Client{
	Timeout:   chaosWriteTimeout,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// postOps posts a batch and returns the status (0 with the error text when
// there was no answer).
func postOps(p *chaosPeer, doc string, body []byte) (int, string) {
	resp, err := writeClient.Post(p.url+"/v1/docs/"+doc+"/ops", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// chaosView is the part of a document view the model checks.
type chaosView struct {
	R     map[string]json.RawMessage `json:"r"`
	C     map[string]json.Number     `json:"c"`
	S     map[string][]string        `json:"s"`
	Tags  []string                   `json:"tags"`
	Marks []string                   `json:"marks"`
}

func getDocView(t *testing.T, p *chaosPeer, doc string) chaosView {
	t.Helper()
	v := p.p.get("/v1/docs/" + doc)
	b, _ := json.Marshal(v["value"])
	var cv chaosView
	if err := json.Unmarshal(b, &cv); err != nil {
		t.Fatalf("peer %d doc %s: %v in %s", p.idx, doc, err, b)
	}
	return cv
}

// The driver's model. Every key is written by one worker only, so the
// worker knows the order of its writes; a register or sole-writer set is
// also written through one peer only, so each write observes the one
// before it (with several peers, two writes could be concurrent and the
// register would keep either). After a write whose answer is lost, its key
// is retired (the worker moves to a fresh key): so each key has at most one
// write of unknown outcome, and it is the last one.

// regModel is a register at ["r", key].
type regModel struct {
	doc, key string
	acked    []byte // compact JSON of the last acknowledged set; nil: absent
	unknown  bool
	pending  []byte // the unknown write's value; nil: a delete
}

// setModel is a set at ["s", key] with elements e0..e3.
type setModel struct {
	doc, key string
	present  map[string]bool // after the acknowledged writes
	unknown  bool
	pendElem string
	pendAdd  bool
}

// counterModel is a counter at ["c", key], incremented through any peer.
type counterModel struct {
	doc, key string
	acked    int64
	unknown  bool
	pendBy   int64
}

// tagModel is one element added to the shared set at [path] (any worker,
// any peer, never removed).
type tagModel struct {
	doc, path, elem string
	acked, unknown  bool
}

// effect is one op of a batch, and what it does to the model.
type effect struct {
	reg  *regModel
	val  []byte // for reg: nil is a delete
	set  *setModel
	elem string
	add  bool
	ctr  *counterModel
	by   int64
	tag  *tagModel
}

type chaosWorker struct {
	c   *chaos
	w   int
	rng *rand.Rand
	seq int

	regs           map[string]*regModel // active, by "peer/doc/slot"
	sets           map[string]*setModel // active, by "peer/doc"
	ctrs           map[string]*counterModel
	allRegs        []*regModel
	allSets        []*setModel
	allCtrs        []*counterModel
	tags           []*tagModel
	unknownBatches [][]effect // batches of unknown outcome
	opsSent        int64
	problems       []string // unexpected answers
}

func newChaosWorker(c *chaos, w int) *chaosWorker {
	return &chaosWorker{
		c: c, w: w, rng: rand.New(rand.NewPCG(c.seed, uint64(w)+1)),
		regs: map[string]*regModel{}, sets: map[string]*setModel{}, ctrs: map[string]*counterModel{},
	}
}

func (c *chaos) stopAndWaitWriters() {
	c.stopWriters.Store(true)
	c.wg.Wait()
}

func (cw *chaosWorker) run() {
	defer cw.c.wg.Done()
	for !cw.c.stopWriters.Load() {
		var live []*chaosPeer
		for _, p := range cw.c.peers {
			if p.state.Load() != peerDown {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		p := live[cw.rng.IntN(len(live))]
		doc := chaosDocs[cw.rng.IntN(len(chaosDocs))]
		effs, ops := cw.batch(p, doc)
		body, _ := json.Marshal(ops)
		cw.opsSent += int64(len(ops))
		code, msg := postOps(p, doc, body)
		switch {
		case code == 200:
			cw.c.acked.Add(1)
			cw.c.ackedOps.Add(int64(len(ops)))
			for _, e := range effs {
				e.ack()
			}
		case code == 0 && strings.Contains(msg, "connection refused"):
			// Never connected: not applied.
			cw.c.refused.Add(1)
		case code == 0 || code >= 500:
			// Killed or shutting down mid-request: may or may not have applied.
			cw.c.unknown.Add(1)
			if code >= 500 {
				cw.c.errors5xx.Add(1)
			}
			for _, e := range effs {
				cw.retire(e)
			}
			cw.unknownBatches = append(cw.unknownBatches, effs)
		default:
			cw.problems = append(cw.problems, fmt.Sprintf("peer %d doc %s: %s answered %d %s", p.idx, doc, body, code, msg))
			cw.c.stopWriters.Store(true)
		}
		time.Sleep(time.Duration(cw.rng.IntN(10)) * time.Millisecond)
	}
}

func (e effect) ack() {
	switch {
	case e.reg != nil:
		e.reg.acked = e.val
	case e.set != nil:
		e.set.present[e.elem] = e.add
	case e.ctr != nil:
		e.ctr.acked += e.by
	case e.tag != nil:
		e.tag.acked = true
	}
}

// retire records a write of unknown outcome and takes its key out of use.
func (cw *chaosWorker) retire(e effect) {
	switch {
	case e.reg != nil:
		e.reg.unknown, e.reg.pending = true, e.val
		for k, r := range cw.regs {
			if r == e.reg {
				delete(cw.regs, k)
			}
		}
	case e.set != nil:
		e.set.unknown, e.set.pendElem, e.set.pendAdd = true, e.elem, e.add
		for k, s := range cw.sets {
			if s == e.set {
				delete(cw.sets, k)
			}
		}
	case e.ctr != nil:
		e.ctr.unknown, e.ctr.pendBy = true, e.by
		for k, x := range cw.ctrs {
			if x == e.ctr {
				delete(cw.ctrs, k)
			}
		}
	case e.tag != nil:
		e.tag.unknown = true
	}
}

// batch builds one to three ops on distinct keys of doc, for peer p.
func (cw *chaosWorker) batch(p *chaosPeer, doc string) ([]effect, []map[string]any) {
	families := cw.rng.Perm(4)[:1+cw.rng.IntN(3)]
	var effs []effect
	var ops []map[string]any
	for _, f := range families {
		cw.seq++
		switch f {
		case 0: // register set or delete (this peer's key)
			slot := fmt.Sprintf("%d/%s/%d", p.idx, doc, cw.rng.IntN(2))
			r := cw.regs[slot]
			if r == nil {
				r = &regModel{doc: doc, key: fmt.Sprintf("w%dp%d_%d", cw.w, p.idx, cw.seq)}
				cw.regs[slot] = r
				cw.allRegs = append(cw.allRegs, r)
			}
			path := []string{"r", r.key}
			if r.acked != nil && cw.rng.IntN(4) == 0 {
				effs = append(effs, effect{reg: r})
				ops = append(ops, map[string]any{"op": "delete", "path": path})
				continue
			}
			var v any
			switch cw.rng.IntN(3) {
			case 0:
				v = cw.seq
			case 1:
				v = fmt.Sprintf("w%d-%d", cw.w, cw.seq)
			default:
				v = map[string]any{"w": cw.w, "n": cw.seq, "ok": true}
			}
			b, _ := json.Marshal(v)
			effs = append(effs, effect{reg: r, val: b})
			ops = append(ops, map[string]any{"op": "set", "path": path, "value": v})
		case 1: // add or remove in this peer's set
			slot := fmt.Sprintf("%d/%s", p.idx, doc)
			s := cw.sets[slot]
			if s == nil {
				s = &setModel{doc: doc, key: fmt.Sprintf("w%dp%d_%d", cw.w, p.idx, cw.seq), present: map[string]bool{}}
				cw.sets[slot] = s
				cw.allSets = append(cw.allSets, s)
			}
			elem := fmt.Sprintf("e%d", cw.rng.IntN(4))
			add := !s.present[elem]
			if cw.rng.IntN(5) == 0 {
				add = !add
			}
			op := "remove"
			if add {
				op = "add"
			}
			effs = append(effs, effect{set: s, elem: elem, add: add})
			ops = append(ops, map[string]any{"op": op, "path": []string{"s", s.key}, "value": elem})
		case 2: // counter increment (any peer)
			slot := fmt.Sprintf("%s/%d", doc, cw.rng.IntN(3))
			x := cw.ctrs[slot]
			if x == nil {
				x = &counterModel{doc: doc, key: fmt.Sprintf("w%d_%d", cw.w, cw.seq)}
				cw.ctrs[slot] = x
				cw.allCtrs = append(cw.allCtrs, x)
			}
			by := int64(1 + cw.rng.IntN(5))
			effs = append(effs, effect{ctr: x, by: by})
			ops = append(ops, map[string]any{"op": "inc", "path": []string{"c", x.key}, "by": by})
		case 3: // a new element of the shared set (any peer)
			tg := &tagModel{doc: doc, path: "tags", elem: fmt.Sprintf("w%d-%d", cw.w, cw.seq)}
			cw.tags = append(cw.tags, tg)
			effs = append(effs, effect{tag: tg})
			ops = append(ops, map[string]any{"op": "add", "path": []string{"tags"}, "value": tg.elem})
		}
	}
	return effs, ops
}

// check reads every document from every peer and returns what is wrong:
// "" when every peer shows the same state and every acknowledged write.
func (c *chaos) check() string {
	var problems []string
	for _, w := range c.workers {
		problems = append(problems, w.problems...)
	}
	if len(problems) > 0 { // a valid write was refused: no point waiting
		c.t.Fatalf("unexpected answers to valid writes:\n%s", strings.Join(problems, "\n"))
	}
	if msg := c.sameOnAll(chaosDocs...); msg != "" {
		return msg
	}
	views := map[string]chaosView{}
	for _, d := range chaosDocs {
		views[d] = getDocView(c.t, c.peers[0], d)
	}
	lost := 0
	miss := func(format string, a ...any) {
		lost++
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}
	issued := map[string]map[string]bool{} // doc/path → elements written
	note := func(doc, path, elem string) {
		k := doc + "/" + path
		if issued[k] == nil {
			issued[k] = map[string]bool{}
		}
		issued[k][elem] = true
	}
	checkTag := func(tg *tagModel) {
		note(tg.doc, tg.path, tg.elem)
		v := views[tg.doc]
		set := v.Tags
		if tg.path == "marks" {
			set = v.Marks
		}
		if tg.acked && !slices.Contains(set, tg.elem) {
			miss("doc %s: %s lacks %q (acknowledged)", tg.doc, tg.path, tg.elem)
		}
	}
	for _, m := range c.marks {
		checkTag(m)
	}
	for _, w := range c.workers {
		for _, r := range w.allRegs {
			got, ok := views[r.doc].R[r.key]
			if !ok {
				got = nil
			}
			if jsonEqual(got, r.acked) || (r.unknown && jsonEqual(got, r.pending)) {
				continue
			}
			miss("doc %s: register %s is %s, want %s (last acknowledged)%s", r.doc, r.key, orAbsent(got), orAbsent(r.acked), pendingNote(r.unknown, orAbsent(r.pending)))
		}
		for _, s := range w.allSets {
			have := views[s.doc].S[s.key]
			for _, e := range have {
				if !slices.Contains([]string{"e0", "e1", "e2", "e3"}, e) {
					miss("doc %s: set %s holds %q, never written", s.doc, s.key, e)
				}
			}
			for _, e := range []string{"e0", "e1", "e2", "e3"} {
				in := slices.Contains(have, e)
				if in == s.present[e] || (s.unknown && s.pendElem == e && in == s.pendAdd) {
					continue
				}
				miss("doc %s: set %s has %s=%v, want %v (last acknowledged)", s.doc, s.key, e, in, s.present[e])
			}
		}
		for _, x := range w.allCtrs {
			var got int64
			if n, ok := views[x.doc].C[x.key]; ok {
				got, _ = n.Int64()
			}
			if got == x.acked || (x.unknown && got == x.acked+x.pendBy) {
				continue
			}
			miss("doc %s: counter %s is %d, want %d (sum acknowledged)%s", x.doc, x.key, got, x.acked, pendingNote(x.unknown, fmt.Sprint(x.acked+x.pendBy)))
		}
		for _, tg := range w.tags {
			checkTag(tg)
		}
	}
	for _, d := range chaosDocs {
		for path, set := range map[string][]string{"tags": views[d].Tags, "marks": views[d].Marks} {
			for _, e := range set {
				if !issued[d+"/"+path][e] {
					miss("doc %s: %s holds %q, never written", d, path, e)
				}
			}
		}
	}
	// A batch of unknown outcome applied whole or not at all.
	for _, w := range c.workers {
		for _, effs := range w.unknownBatches {
			var seen []bool
			for _, e := range effs {
				if applied, known := e.applied(views[docOf(e)]); known {
					seen = append(seen, applied)
				}
			}
			if slices.Contains(seen, true) && slices.Contains(seen, false) {
				miss("a batch of unknown outcome was applied in part: %v", seen)
			}
		}
	}
	c.lost = lost
	if lost > 0 {
		return fmt.Sprintf("%d acknowledged writes not visible or wrong (first ones):\n%s", lost, strings.Join(problems, "\n"))
	}
	return ""
}

// sameOnAll returns "" when every peer shows the same value and version
// vector of each doc.
func (c *chaos) sameOnAll(docs ...string) string {
	for _, d := range docs {
		want := chaosDocState(c.peers[0], d)
		for _, p := range c.peers[1:] {
			if got := chaosDocState(p, d); got != want {
				return fmt.Sprintf("doc %s: peer %d differs from peer 0 (%d vs %d bytes)", d, p.idx, len(got), len(want))
			}
		}
	}
	return ""
}

// checkProbes returns "" when what the probes got accepted shows the same
// on every peer, and every accepted deep value shows exactly.
func (c *chaos) checkProbes() string {
	if msg := c.sameOnAll(chaosProbeDoc); msg != "" {
		return fmt.Sprintf("%s; accepted probes: %v", msg, c.accepted)
	}
	pv := c.peers[0].p.get("/v1/docs/" + chaosProbeDoc)
	pb, _ := json.Marshal(pv["value"])
	var probeView struct {
		Probe map[string]json.RawMessage `json:"probe"`
	}
	_ = json.Unmarshal(pb, &probeView)
	for _, dw := range c.deep {
		if !jsonEqual(probeView.Probe[dw.key], dw.value) {
			return fmt.Sprintf("probe doc: accepted deep value %s does not show", dw.key)
		}
	}
	return ""
}

func docOf(e effect) string {
	switch {
	case e.reg != nil:
		return e.reg.doc
	case e.set != nil:
		return e.set.doc
	case e.ctr != nil:
		return e.ctr.doc
	default:
		return e.tag.doc
	}
}

// applied tells, when the view can tell, whether an op of unknown outcome
// was applied.
func (e effect) applied(v chaosView) (applied, known bool) {
	switch {
	case e.reg != nil:
		if jsonEqual(e.reg.acked, e.val) {
			return false, false
		}
		return jsonEqual(v.R[e.reg.key], e.val), true
	case e.set != nil:
		if e.set.present[e.elem] == e.add {
			return false, false
		}
		return slices.Contains(v.S[e.set.key], e.elem) == e.add, true
	case e.ctr != nil:
		n, _ := v.C[e.ctr.key].Int64()
		return n == e.ctr.acked+e.by, true
	default:
		return slices.Contains(v.Tags, e.tag.elem), true
	}
}

func chaosDocState(p *chaosPeer, doc string) string {
	v := p.p.get("/v1/docs/" + doc)
	b, _ := json.Marshal([]any{v["value"], v["version"]})
	return string(b)
}

// jsonEqual compares two JSON values (nil: absent).
func jsonEqual(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func orAbsent(b []byte) string {
	if b == nil {
		return "absent"
	}
	return string(b)
}

func pendingNote(unknown bool, v string) string {
	if !unknown {
		return ""
	}
	return " or " + v + " (a write of unknown outcome)"
}
