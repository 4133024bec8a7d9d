package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The chaos test runs five "concord peer" processes, each on its own Pebble
// directory, writes to them over the HTTP API from a seeded driver while it
// kills (SIGKILL, SIGTERM), freezes (SIGSTOP/SIGCONT), restarts and
// partitions them and sends them bad input, then heals everything and
// checks that every acknowledged write is visible on every peer.
// RELIABILITY.md describes what it injects and what it checks.
//
//	CONCORD_CHAOS_SEED=N     replay a schedule (printed on failure and in the log)
//	CONCORD_CHAOS_CYCLES=N   fault cycles (default 20)
//	CONCORD_CHAOS_PROBES=a,b only these bad-input probes (default all)
//
// The seed fixes the driver's choices (faults, targets, ops, values); the
// interleaving with the processes is up to the machine.

const (
	chaosPeers   = 5
	chaosWorkers = 4
	// chaosWriteTimeout bounds one write; past it the outcome is unknown.
	chaosWriteTimeout = 3 * time.Second
	// chaosConverge bounds the wait for every peer to show every
	// acknowledged write once everything is up and healed.
	chaosConverge = 90 * time.Second
)

var chaosDocs = []string{"d0", "d1", "d2"}

// chaosProbeDoc receives the bad-input probes.
const chaosProbeDoc = "probes"

// Peer states, as the writers see them.
const (
	peerDown int32 = iota
	peerUp
	peerStopped
)

type chaosPeer struct {
	idx      int
	dir      string
	p2pPort  string
	httpPort string
	id       string
	addr     string // full listen multiaddr (…/p2p/<id>)
	url      string
	p        *proc
	state    atomic.Int32
}

type chaos struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand // the fault loop's
	peers []*chaosPeer

	stopWriters atomic.Bool
	wg          sync.WaitGroup
	workers     []*chaosWorker

	// Counted over all writers.
	acked, ackedOps, unknown, refused, errors5xx atomic.Int64

	marks    []*tagModel // partition markers (acknowledged)
	faults   map[string]int
	probes   map[string]map[int]int // kind → status → count
	accepted []string               // probes that got a 200
	deep     []deepWrite            // accepted deep-nesting probes
	heals    []time.Duration        // partition heal → marker on every peer
	tagSeq   int
}

type deepWrite struct {
	key   string
	value []byte
}

func envInt(t *testing.T, name string, def uint64) uint64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

func TestChaosPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	seed := envInt(t, "CONCORD_CHAOS_SEED", rand.Uint64())
	cycles := int(envInt(t, "CONCORD_CHAOS_CYCLES", 20))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with: CONCORD_CHAOS_SEED=%d CONCORD_CHAOS_CYCLES=%d go test ./cmd/concord -run TestChaosPeers -v", seed, cycles)
		}
	})
	t.Logf("seed %d, %d cycles", seed, cycles)
	t.Setenv(testControlEnv, "1")
	c := &chaos{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0)),
		faults: map[string]int{}, probes: map[string]map[int]int{},
	}
	begin := time.Now()
	c.startAll()
	for w := range chaosWorkers {
		cw := newChaosWorker(c, w)
		c.workers = append(c.workers, cw)
		c.wg.Add(1)
		go cw.run()
	}
	t.Cleanup(c.stopAndWaitWriters) // before the processes are killed
	probes := chaosProbes(t)
	for i := range cycles {
		c.cycle()
		c.probe(probes[i%len(probes)])
	}
	c.stopAndWaitWriters()
	faultTime := time.Since(begin)

	// Heal: every peer is up (the cycles leave none down or stopped) and
	// nothing is blocked; then wait for the condition.
	for _, p := range c.peers {
		if p.state.Load() != peerUp {
			t.Fatalf("peer %d is not up after the cycles", p.idx)
		}
	}
	healed := time.Now()
	waitUntil(t, chaosConverge, c.check)
	converge := time.Since(healed)
	waitUntil(t, chaosConverge, c.checkProbes)
	for _, p := range c.peers {
		if code := p.p.stop(); code != 0 {
			t.Errorf("peer %d exited %d after SIGTERM; stderr:\n%s", p.idx, code, p.p.stderr)
		}
	}
	var ops int64
	for _, w := range c.workers {
		ops += w.opsSent
	}
	t.Logf("chaos: seed=%d cycles=%d faults=%v ops_sent=%d writes_acked=%d ops_acked=%d writes_unknown=%d writes_refused=%d writes_5xx=%d lost=0 converge_after_heal=%v fault_phase=%v",
		seed, cycles, c.faults, ops, c.acked.Load(), c.ackedOps.Load(), c.unknown.Load(), c.refused.Load(), c.errors5xx.Load(),
		converge.Round(time.Millisecond), faultTime.Round(time.Millisecond))
	t.Logf("probes (kind → status → count): %v", c.probes)
	if len(c.heals) > 0 {
		slices.Sort(c.heals)
		t.Logf("partition heals: %d, marker on every peer after min %v, median %v, max %v", len(c.heals),
			c.heals[0].Round(time.Millisecond), c.heals[len(c.heals)/2].Round(time.Millisecond), c.heals[len(c.heals)-1].Round(time.Millisecond))
	}
}

// startAll starts the peers: the first one alone, each next one with the
// ones before it as bootstrap peers. Ports are chosen by the system on the
// first start and kept for every restart.
func (c *chaos) startAll() {
	root := c.t.TempDir()
	for i := range chaosPeers {
		p := &chaosPeer{idx: i, dir: filepath.Join(root, fmt.Sprintf("peer%d", i)), p2pPort: "0", httpPort: "0"}
		var boot []string
		for _, q := range c.peers {
			boot = append(boot, q.addr)
		}
		c.launch(p, boot)
		p.addr = p.p.listen[0]
		u, err := url.Parse(p.p.url)
		if err != nil {
			c.t.Fatal(err)
		}
		p.httpPort = u.Port()
		ma := strings.Split(p.addr, "/") // /ip4/127.0.0.1/tcp/PORT/p2p/ID
		if len(ma) < 5 || ma[3] != "tcp" {
			c.t.Fatalf("unexpected listen address %q", p.addr)
		}
		p.p2pPort = ma[4]
		p.id, p.url = p.p.id, p.p.url
		c.peers = append(c.peers, p)
	}
}

// launch starts p's process on its directory and ports and waits for ready.
func (c *chaos) launch(p *chaosPeer, bootstrap []string) {
	args := []string{"--data", p.dir, "--listen", "/ip4/127.0.0.1/tcp/" + p.p2pPort, "--http", "127.0.0.1:" + p.httpPort}
	for _, d := range append(slices.Clone(chaosDocs), chaosProbeDoc) {
		args = append(args, "--doc", d)
	}
	for _, b := range bootstrap {
		args = append(args, "--bootstrap", b)
	}
	p.p = startPeerProc(c.t, args...)
	p.p.ready(p.p.lines)
	if p.id != "" && p.p.id != p.id {
		c.t.Fatalf("peer %d restarted as %s, was %s", p.idx, p.p.id, p.id)
	}
	if p.url != "" && p.p.url != p.url {
		c.t.Fatalf("peer %d restarted on %s, was %s", p.idx, p.p.url, p.url)
	}
	p.state.Store(peerUp)
}

// restart starts a peer that is down, on the same directory and ports, with
// every other peer as bootstrap.
func (c *chaos) restart(p *chaosPeer) {
	var boot []string
	for _, q := range c.peers {
		if q != p {
			boot = append(boot, q.addr)
		}
	}
	c.launch(p, boot)
}

func (c *chaos) kill(p *chaosPeer) {
	p.state.Store(peerDown)
	if err := p.p.cmd.Process.Kill(); err != nil {
		c.t.Fatal(err)
	}
	p.p.wait()
}

func (c *chaos) term(p *chaosPeer) {
	p.state.Store(peerDown)
	if code := p.p.stop(); code != 0 {
		c.t.Errorf("peer %d exited %d after SIGTERM; stderr:\n%s", p.idx, code, p.p.stderr)
	}
}

func (c *chaos) signal(p *chaosPeer, sig syscall.Signal) {
	if err := p.p.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("peer %d: %v: %v", p.idx, sig, err)
	}
}

// pick returns n distinct peers, chosen by the fault loop's RNG.
func (c *chaos) pick(n int) []*chaosPeer {
	perm := c.rng.Perm(len(c.peers))
	out := make([]*chaosPeer, n)
	for i := range n {
		out[i] = c.peers[perm[i]]
	}
	return out
}

// hold keeps the current fault in place until at least minAcks more writes
// are acknowledged and d has passed, so every fault sees traffic. Writes
// that stall for 30 s fail the test.
func (c *chaos) hold(minAcks int64, d time.Duration) {
	start, t0 := c.acked.Load(), time.Now()
	for c.acked.Load() < start+minAcks || time.Since(t0) < d {
		if time.Since(t0) > 30*time.Second {
			c.t.Fatalf("writes stalled: %d acknowledged in 30 s (seed %d)", c.acked.Load()-start, c.seed)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *chaos) holdRandom() {
	c.hold(int64(5+c.rng.IntN(30)), time.Duration(100+c.rng.IntN(900))*time.Millisecond)
}

// cycle injects one fault (or two overlapping ones), holds it while the
// writers run, and recovers: every peer is up and unpartitioned after it.
func (c *chaos) cycle() {
	switch r := c.rng.IntN(100); {
	case r < 30: // kill -9 one or two peers, restart them on the same directory and ports
		n := 1 + c.rng.IntN(2)
		c.faults["kill9"] += n
		victims := c.pick(n)
		for _, p := range victims {
			c.kill(p)
		}
		c.holdRandom()
		for _, p := range victims {
			c.restart(p)
		}
	case r < 50: // SIGTERM: a clean shutdown (exit 0) mid-traffic, then restart
		c.faults["sigterm"]++
		p := c.pick(1)[0]
		c.term(p)
		c.holdRandom()
		c.restart(p)
	case r < 70: // freeze one or two peers
		n := 1 + c.rng.IntN(2)
		c.faults["sigstop"] += n
		victims := c.pick(n)
		for _, p := range victims {
			p.state.Store(peerStopped)
			c.signal(p, syscall.SIGSTOP)
		}
		c.holdRandom()
		for _, p := range victims {
			c.signal(p, syscall.SIGCONT)
			p.state.Store(peerUp)
		}
	default:
		c.faults["partition"]++
		c.partition()
	}
}

// partition cuts the peers in two, checks that no connection crosses the
// cut and that a write on one side does not reach the other, and heals.
// Sometimes a peer is also killed and restarted while the cut holds.
func (c *chaos) partition() {
	perm := c.rng.Perm(len(c.peers))
	cut := 1 + c.rng.IntN(2)
	side := make([]int, len(c.peers)) // 0 or 1
	for i, j := range perm {
		if i < cut {
			side[j] = 1
		}
	}
	others := func(p *chaosPeer) []string {
		var ids []string
		for _, q := range c.peers {
			if side[q.idx] != side[p.idx] {
				ids = append(ids, q.id)
			}
		}
		return ids
	}
	block := func(p *chaosPeer) {
		controlPost(c.t, p, "/test/block", others(p))
	}
	for _, p := range c.peers {
		block(p)
	}
	// Wait until no connection crosses the cut (block again where one
	// slipped through between the gater check and the close).
	waitUntil(c.t, 20*time.Second, func() string {
		for _, p := range c.peers {
			conn := controlPeers(c.t, p)
			for _, id := range others(p) {
				if slices.Contains(conn, id) {
					block(p)
					return fmt.Sprintf("peer %d still connected to %s across the cut", p.idx, id)
				}
			}
		}
		return ""
	})
	// A marker written on one side must not reach the other before the heal.
	var writer *chaosPeer
	for _, p := range c.peers {
		if side[p.idx] == 1 {
			writer = p
			break
		}
	}
	c.tagSeq++
	mark := &tagModel{doc: chaosDocs[0], path: "marks", elem: fmt.Sprintf("mark%d", c.tagSeq)}
	body, _ := json.Marshal([]map[string]any{{"op": "add", "path": []string{"marks"}, "value": mark.elem}})
	if code, b := postOps(writer, chaosDocs[0], body); code != 200 {
		c.t.Fatalf("marker write on peer %d: %d %s", writer.idx, code, b)
	}
	mark.acked = true
	c.marks = append(c.marks, mark)
	if c.rng.IntN(3) == 0 { // a crash inside the partition
		c.faults["kill9_in_partition"]++
		p := c.pick(1)[0]
		c.kill(p)
		c.holdRandom()
		c.restart(p)
		block(p) // its gater starts empty; the other side's still refuses it
	}
	c.holdRandom()
	for _, p := range c.peers {
		if side[p.idx] == 1 {
			continue
		}
		if v := getDocView(c.t, p, chaosDocs[0]); slices.Contains(v.Marks, mark.elem) {
			c.t.Errorf("peer %d shows %s, written across the cut before the heal", p.idx, mark.elem)
		}
	}
	for _, p := range c.peers {
		controlPost(c.t, p, "/test/unblock", others(p))
	}
	// The heal: the marker reaches every peer (the writers keep writing).
	healed := time.Now()
	waitUntil(c.t, chaosConverge, func() string {
		for _, p := range c.peers {
			if v := getDocView(c.t, p, chaosDocs[0]); !slices.Contains(v.Marks, mark.elem) {
				return fmt.Sprintf("peer %d lacks %s after the heal", p.idx, mark.elem)
			}
		}
		return ""
	})
	c.heals = append(c.heals, time.Since(healed))
}

func controlPost(t *testing.T, p *chaosPeer, route string, ids []string) {
	t.Helper()
	body, _ := json.Marshal(map[string][]string{"peers": ids})
	resp, err := http.Post(p.url+route, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("peer %d %s: %v", p.idx, route, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("peer %d %s: %d %s", p.idx, route, resp.StatusCode, b)
	}
}

func controlPeers(t *testing.T, p *chaosPeer) []string {
	t.Helper()
	resp, err := http.Get(p.url + "/test/peers")
	if err != nil {
		t.Fatalf("peer %d /test/peers: %v", p.idx, err)
	}
	defer resp.Body.Close()
	var v struct {
		Connected []string `json:"connected"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("peer %d /test/peers: %d %v", p.idx, resp.StatusCode, err)
	}
	return v.Connected
}

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
	doc, key   string
	present    map[string]bool // after the acknowledged writes
	unknown    bool
	pendElem   string
	pendAdd    bool
	everWanted bool
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

	regs     map[string]*regModel // active, by "peer/doc/slot"
	sets     map[string]*setModel // active, by "peer/doc"
	ctrs     map[string]*counterModel
	allRegs  []*regModel
	allSets  []*setModel
	allCtrs  []*counterModel
	tags     []*tagModel
	lost     [][]effect // batches of unknown outcome
	opsSent  int64
	problems []string // unexpected answers
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
			cw.lost = append(cw.lost, effs)
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
		for _, effs := range w.lost {
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

// A chaosProbe is a bad input sent to a live peer: want lists the answers
// that are right. body returns the request body and, for a probe that may
// be accepted, the key under ["probe"] and the value it must then show on
// every peer once healed.
type chaosProbe struct {
	name string
	want []int
	body func(n int) (body []byte, key string, value []byte)
}

// chaosProbes returns the probes, all of them unless CONCORD_CHAOS_PROBES
// names some (comma-separated), to replay one.
func chaosProbes(t *testing.T) []chaosProbe {
	all := allChaosProbes()
	only := os.Getenv("CONCORD_CHAOS_PROBES")
	if only == "" {
		return all
	}
	var out []chaosProbe
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(all, func(p chaosProbe) bool { return p.name == name })
		if i < 0 {
			t.Fatalf("CONCORD_CHAOS_PROBES: no probe %q", name)
		}
		out = append(out, all[i])
	}
	return out
}

func allChaosProbes() []chaosProbe {
	nested := func(depth int) []byte {
		return []byte(strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth))
	}
	one := func(op string) []byte { return []byte("[" + op + "]") }
	return []chaosProbe{
		{"utf8_set_element", []int{400}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"add","path":["probe","set"],"value":"a` + "\xff\xfe" + `b"}`), "", nil
		}},
		{"utf8_path_key", []int{400}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"set","path":["probe","k` + "\xc3\x28" + `"],"value":1}`), "", nil
		}},
		{"utf8_register_value", []int{400}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"set","path":["probe","v"],"value":"a` + "\xed\xa0\x80" + `b"}`), "", nil
		}},
		{"body_5mib", []int{413}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"set","path":["probe","big"],"value":"` + strings.Repeat("x", 5<<20) + `"}`), "", nil
		}},
		{"nesting_100k", []int{400}, func(int) ([]byte, string, []byte) {
			return one(`{"op":"set","path":["probe","deep"],"value":` + string(nested(100_000)) + `}`), "", nil
		}},
		{"nesting_5000", []int{200, 400}, func(n int) ([]byte, string, []byte) {
			key := fmt.Sprintf("deep%d", n)
			return one(`{"op":"set","path":["probe","` + key + `"],"value":` + string(nested(5000)) + `}`), key, nested(5000)
		}},
		{"path_1000_keys", []int{400}, func(int) ([]byte, string, []byte) {
			path, _ := json.Marshal(slices.Repeat([]string{"p"}, 1000))
			return one(`{"op":"set","path":` + string(path) + `,"value":1}`), "", nil
		}},
		{"million_ops", []int{413, 400}, func(int) ([]byte, string, []byte) {
			op := `{"op":"inc","path":["probe","n"],"by":1}`
			return []byte("[" + strings.TrimSuffix(strings.Repeat(op+",", 1_000_000), ",") + "]"), "", nil
		}},
	}
}

// probe sends one bad input to a live peer and checks the answer and that
// the peer is still up and serving.
func (c *chaos) probe(pr chaosProbe) {
	p := c.peers[c.rng.IntN(len(c.peers))]
	c.tagSeq++
	body, key, value := pr.body(c.tagSeq)
	code, msg, err := rawPost(p.url, "/v1/docs/"+chaosProbeDoc+"/ops", body)
	if err != nil {
		c.t.Errorf("probe %s on peer %d: no answer: %v", pr.name, p.idx, err)
	}
	if c.probes[pr.name] == nil {
		c.probes[pr.name] = map[int]int{}
	}
	c.probes[pr.name][code]++
	if !slices.Contains(pr.want, code) {
		c.t.Errorf("probe %s on peer %d: %d %.200s, want %v", pr.name, p.idx, code, msg, pr.want)
	}
	if code == 200 {
		c.accepted = append(c.accepted, pr.name)
		if key != "" {
			c.deep = append(c.deep, deepWrite{key, value})
		}
	}
	select {
	case <-p.p.waited:
		c.t.Fatalf("peer %d exited after probe %s; stderr:\n%s", p.idx, pr.name, p.p.stderr)
	default:
	}
	p.p.get("/v1/status") // fails the test unless 200
}

// rawPost sends a POST over its own connection and reads the answer while
// the body is still being written: a peer may answer (413) and close before
// it has read a large body, which an http.Client reports as a write error.
func rawPost(base, path string, body []byte) (int, string, error) {
	hostport := strings.TrimPrefix(base, "http://")
	conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		w := bufio.NewWriter(conn)
		fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", path, hostport, len(body))
		_, _ = w.Write(body)
		_ = w.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	var code int
	var msg []byte
	if err == nil {
		code = resp.StatusCode
		msg, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}
	conn.Close()
	<-wrote
	if err != nil {
		return 0, "", fmt.Errorf("read answer: %w", err)
	}
	return code, string(msg), nil
}
