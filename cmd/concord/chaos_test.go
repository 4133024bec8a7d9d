package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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
	lost     int                    // acknowledged writes not visible, at the last check
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
			probes := ""
			if v := os.Getenv("CONCORD_CHAOS_PROBES"); v != "" {
				probes = " CONCORD_CHAOS_PROBES=" + v
			}
			t.Logf("replay with: CONCORD_CHAOS_SEED=%d CONCORD_CHAOS_CYCLES=%d%s go test ./cmd/concord -run TestChaosPeers -v", seed, cycles, probes)
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
		if (i+1)%50 == 0 {
			t.Logf("cycle %d: %d writes acknowledged, %v", i+1, c.acked.Load(), time.Since(begin).Round(time.Second))
		}
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
	t.Logf("chaos: seed=%d cycles=%d faults=%v ops_sent=%d writes_acked=%d ops_acked=%d writes_unknown=%d writes_refused=%d writes_5xx=%d lost=%d converge_after_heal=%v fault_phase=%v",
		seed, cycles, c.faults, ops, c.acked.Load(), c.ackedOps.Load(), c.unknown.Load(), c.refused.Load(), c.errors5xx.Load(), c.lost,
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
