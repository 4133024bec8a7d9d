package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/concord-p2p/concord"
	cnet "github.com/concord-p2p/concord/net"
)

// Scale scenarios: a late joiner to a big document, many sparse peers, many
// documents. They report what issue targets name (caught_up_s, sync_bytes,
// converged_after_last_write_s, peak_rss_mib, ...).

// progress prints a progress line on long runs.
func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Join: one peer holds a document of txns transactions of perTxn register
// sets each; a fresh peer connects to it. Time until the newcomer shows the
// same document, and bytes on the sync stream.
func Join(ctx context.Context, o Options, txns, perTxn int) (Result, error) {
	var mu sync.Mutex
	var events []cnet.ExchangeEvent
	c, err := newCluster(ctx, o, 1, "join", true, nil)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	src := c.docs[0]
	for t := range txns {
		err := src.Update(ctx, func(tx *concord.Txn) {
			for k := range perTxn {
				tx.Set([]string{"k" + strconv.Itoa(t*perTxn+k)}, t*perTxn+k)
			}
		})
		if err != nil {
			return Result{}, err
		}
	}
	o.progress("join: %d keys written", txns*perTxn)
	cfg := concord.Config{SummaryInterval: 500 * time.Millisecond, MeshDegree: o.MeshDegree, TrustAuthorChannel: o.TrustAuthorChannel}
	if o.Dir != "" {
		cfg.DataDir = o.Dir + "/joiner"
	}
	cfg.Events.SyncFinished = func(e cnet.ExchangeEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	nd, err := concord.Open(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	c.nodes = append(c.nodes, nd)
	d, err := nd.Doc(ctx, "join")
	if err != nil {
		return Result{}, err
	}
	c.docs = append(c.docs, d)
	if o.joinConnect != nil {
		o.joinConnect()
	}
	start := time.Now()
	if err := nd.Connect(ctx, c.nodes[0].Addrs()[0]); err != nil {
		return Result{}, err
	}
	if err := waitUntil(ctx, 2*time.Minute, func() bool { return converged(c.docs) }); err != nil {
		return Result{}, fmt.Errorf("join: %w", err)
	}
	took := time.Since(start)
	// The exchange that carried the document is recorded when it ends.
	var in, out int
	_ = waitUntil(ctx, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		in, out = 0, 0
		carried := false
		for _, e := range events {
			in += e.Stats.BytesIn
			out += e.Stats.BytesOut
			carried = carried || e.Stats.DeltasIn > 0 || e.Stats.Snapshot
		}
		return carried
	})
	syncBytes := in + out
	return Result{
		Scenario: "late joiner", Name: "join",
		Params:   fmt.Sprintf("a %d-key document (%d transactions of %d sets), one fresh peer connects, store=%s", txns*perTxn, txns, perTxn, storeName(o)),
		ParamMap: map[string]any{"keys": txns * perTxn, "txns": txns, "sets_per_txn": perTxn, "store": storeName(o)},
		Metrics: []Metric{
			{Key: "caught_up_s", Name: "connect → same document", Value: took.Seconds(), Unit: "s", Target: "≤ 0.3", Met: met(took <= 300*time.Millisecond)},
			{Key: "sync_bytes", Name: "bytes on the sync stream (both ways)", Value: float64(syncBytes), Unit: "bytes", Target: "≤ 400000", Met: met(syncBytes <= 400_000)},
		},
	}, nil
}

// Scale: peers peers, each dialling up to 3 random earlier ones (a sparse
// graph), one document; writes writes from random peers, one after the
// other; time from the last write until every peer shows the same
// document, and the process's memory and goroutines.
func Scale(ctx context.Context, o Options, peers, writes int) (Result, error) {
	rng := rand.New(rand.NewPCG(uint64(peers), uint64(writes)))
	base := runtime.NumGoroutine()
	c := &cluster{}
	defer c.close()
	for i := range peers {
		cfg := concord.Config{SummaryInterval: 500 * time.Millisecond, MeshDegree: o.MeshDegree, TrustAuthorChannel: o.TrustAuthorChannel}
		if o.Dir != "" {
			cfg.DataDir = fmt.Sprintf("%s/node%d", o.Dir, i)
		}
		nd, err := concord.Open(ctx, cfg)
		if err != nil {
			return Result{}, err
		}
		c.nodes = append(c.nodes, nd)
		d, err := nd.Doc(ctx, "scale")
		if err != nil {
			return Result{}, err
		}
		c.docs = append(c.docs, d)
		for _, j := range rng.Perm(i)[:min(3, i)] {
			if err := nd.Connect(ctx, c.nodes[j].Addrs()[0]); err != nil {
				return Result{}, err
			}
		}
		if (i+1)%25 == 0 {
			o.progress("scale: %d/%d peers up", i+1, peers)
		}
	}
	if err := waitUntil(ctx, time.Minute, func() bool {
		for _, d := range c.docs {
			if len(d.Status().Peers) == 0 {
				return false
			}
		}
		return true
	}); err != nil {
		return Result{}, fmt.Errorf("scale: topic peers: %w", err)
	}
	idleRSS := rssMiB("VmRSS")
	start := time.Now()
	for i := range writes {
		d := c.docs[rng.IntN(peers)]
		if err := d.Set(ctx, []string{"k" + strconv.Itoa(i)}, i); err != nil {
			return Result{}, err
		}
	}
	lastWrite := time.Now()
	o.progress("scale: %d writes in %v; waiting for convergence", writes, lastWrite.Sub(start).Round(time.Millisecond))
	if err := waitUntil(ctx, 5*time.Minute, func() bool { return converged(c.docs) }); err != nil {
		return Result{}, fmt.Errorf("scale: %w", err)
	}
	after := time.Since(lastWrite)
	goroutines := float64(runtime.NumGoroutine()-base) / float64(peers)
	peak := rssMiB("VmHWM")
	target := 1.0
	if peers > 50 {
		target = 2.0
	}
	return Result{
		Scenario: "many sparse peers", Name: "scale",
		Params:   fmt.Sprintf("%d peers, each dialling up to 3 random earlier ones, %d writes from random peers, store=%s", peers, writes, storeName(o)),
		ParamMap: map[string]any{"peers": peers, "writes": writes, "dials_per_peer": 3, "store": storeName(o), "mesh_degree": degreeN(o)},
		Metrics: []Metric{
			{Key: "converged_after_last_write_s", Name: "last write → all converged", Value: after.Seconds(), Unit: "s", Target: fmt.Sprintf("≤ %g", target), Met: met(after.Seconds() <= target)},
			{Key: "writes_s", Name: "the writes took", Value: lastWrite.Sub(start).Seconds(), Unit: "s"},
			{Key: "peak_rss_mib", Name: "peak RSS of the process", Value: peak, Unit: "MiB"},
			{Key: "idle_rss_per_peer_mib", Name: "RSS per idle peer (before the writes)", Value: idleRSS / float64(peers), Unit: "MiB", Target: "≤ 5", Met: met(idleRSS/float64(peers) <= 5)},
			{Key: "goroutines_per_peer", Name: "goroutines per peer", Value: goroutines, Unit: "goroutines"},
		},
	}, nil
}

// Docs: two connected peers open docs documents each and write one key in
// each on the first; time until the second shows them all, goroutines per
// node and memory per idle document.
func Docs(ctx context.Context, o Options, docs int) (Result, error) {
	c, err := newCluster(ctx, o, 2, "docs-0", true, nil)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	base := runtime.NumGoroutine()
	heap0 := heapInuse()
	start := time.Now()
	var a, b []*concord.Doc
	for i := range docs {
		name := "docs-" + strconv.Itoa(i)
		da, err := c.nodes[0].Doc(ctx, name)
		if err != nil {
			return Result{}, err
		}
		db, err := c.nodes[1].Doc(ctx, name)
		if err != nil {
			return Result{}, err
		}
		a, b = append(a, da), append(b, db)
		if (i+1)%250 == 0 {
			o.progress("docs: %d/%d open", i+1, docs)
		}
	}
	opened := time.Since(start)
	heap1 := heapInuse()
	goroutines := runtime.NumGoroutine() - base
	start = time.Now()
	for _, d := range a {
		if err := d.Set(ctx, []string{"k"}, 1); err != nil {
			return Result{}, err
		}
	}
	if err := waitUntil(ctx, 5*time.Minute, func() bool {
		for _, d := range b {
			if _, ok := d.Get("k"); !ok {
				return false
			}
		}
		return true
	}); err != nil {
		return Result{}, fmt.Errorf("docs: %w", err)
	}
	took := time.Since(start)
	perDoc := float64(heap1-heap0) / float64(2*docs)
	perNode := float64(goroutines) / 2
	return Result{
		Scenario: "many documents", Name: "docs",
		Params:   fmt.Sprintf("2 peers, %d documents each, one write per document, store=%s", docs, storeName(o)),
		ParamMap: map[string]any{"peers": 2, "docs": docs, "store": storeName(o)},
		Metrics: []Metric{
			{Key: "open_s", Name: "open the documents on both", Value: opened.Seconds(), Unit: "s"},
			{Key: "converged_s", Name: "writes → all on the other peer", Value: took.Seconds(), Unit: "s"},
			{Key: "goroutines_per_node", Name: "goroutines per node for the documents", Value: perNode, Unit: "goroutines"},
			{Key: "goroutines_per_doc", Name: "goroutines per document", Value: perNode / float64(docs), Unit: "goroutines", Target: "≈ 0 (bounded per node)", Met: met(perNode/float64(docs) < 0.05)},
			{Key: "heap_per_doc_bytes", Name: "heap per idle document", Value: perDoc, Unit: "bytes", Target: "≤ 50000", Met: met(perDoc <= 50_000)},
		},
	}, nil
}

// heapInuse returns the live heap after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// rssMiB reads a memory line of /proc/self/status (VmRSS, VmHWM) in MiB;
// 0 where there is none.
func rssMiB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0
		}
		return kb / 1024
	}
	return 0
}
