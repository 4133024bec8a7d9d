package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/concord-p2p/concord"
)

// Metric is one measured figure, with its target when there is one.
type Metric struct {
	// Key names the metric in --json output: snake_case, ending in its
	// unit (_s, _ms, _bytes, _per_s, _mib; none for a count or a ratio).
	Key    string
	Name   string
	Value  float64
	Unit   string
	Target string // e.g. "≥ 50000"; empty when none
	Met    *bool  // nil when there is no target
}

// Result is one scenario's figures.
type Result struct {
	Scenario string         // its title
	Name     string         // its --scenario name
	Params   string         // for the text output
	ParamMap map[string]any // for --json
	Metrics  []Metric
}

// JSON writes r as one line: {"scenario": Name, "params": {...},
// "metrics": {"<key>": number}} (the bench contract of DESIGN.md).
func (r Result) JSON(w io.Writer) error {
	metrics := make(map[string]float64, len(r.Metrics))
	for _, m := range r.Metrics {
		metrics[m.Key] = m.Value
	}
	b, err := json.Marshal(struct {
		Scenario string             `json:"scenario"`
		Params   map[string]any     `json:"params"`
		Metrics  map[string]float64 `json:"metrics"`
	}{r.Name, r.ParamMap, metrics})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Print writes r as aligned text.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "%s (%s)\n", r.Scenario, r.Params)
	for _, m := range r.Metrics {
		status := ""
		if m.Met != nil {
			status = "  target " + m.Target
			if *m.Met {
				status += " — met"
			} else {
				status += " — MISSED"
			}
		}
		fmt.Fprintf(w, "  %-34s %14.3f %-10s%s\n", m.Name, m.Value, m.Unit, status)
	}
}

func met(v bool) *bool { return &v }

// Options tune the scenarios.
type Options struct {
	// Dir, if set, makes nodes persist in Pebble under it (synced writes);
	// otherwise stores are in memory.
	Dir string
	// MeshDegree overrides GossipSub's mesh degree (0: the default, 6).
	MeshDegree int
	// TrustAuthorChannel skips the signature check of deltas received
	// straight from their author (concord.Config.TrustAuthorChannel).
	TrustAuthorChannel bool
	// GroupCommitWait is concord.Config.GroupCommitWait (0: off).
	GroupCommitWait time.Duration
	// Progress, if set, gets a line now and then on long runs.
	Progress io.Writer

	// joinConnect, if set, is called by Join just before the newcomer
	// connects (a profile of the join starts there).
	joinConnect func()
}

type cluster struct {
	nodes []*concord.Node
	docs  []*concord.Doc
}

func (c *cluster) close() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Close() }()
	}
	wg.Wait()
}

// newCluster starts n nodes and opens doc on each. connectAll: full mesh;
// otherwise a star around node 0.
func newCluster(ctx context.Context, o Options, n int, doc string, connectAll bool, mod func(int, *concord.Config)) (*cluster, error) {
	dir := o.Dir
	c := &cluster{}
	for i := 0; i < n; i++ {
		cfg := concord.Config{SummaryInterval: 500 * time.Millisecond, MeshDegree: o.MeshDegree, TrustAuthorChannel: o.TrustAuthorChannel, GroupCommitWait: o.GroupCommitWait}
		if dir != "" {
			cfg.DataDir = fmt.Sprintf("%s/node%d", dir, i)
		}
		if mod != nil {
			mod(i, &cfg)
		}
		nd, err := concord.Open(ctx, cfg)
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, nd)
		d, err := nd.Doc(ctx, doc)
		if err != nil {
			c.close()
			return nil, err
		}
		c.docs = append(c.docs, d)
	}
	for i := 1; i < n; i++ {
		for j := 0; j < i; j++ {
			if !connectAll && j > 0 {
				break
			}
			if err := c.nodes[i].Connect(ctx, c.nodes[j].Addrs()[0]); err != nil {
				c.close()
				return nil, err
			}
		}
	}
	// Wait until every node sees the others on the document's topic, so
	// the first messages are not lost to a mesh still forming.
	want := 1
	if connectAll {
		want = n - 1
	}
	if err := waitUntil(ctx, 10*time.Second, func() bool {
		for i, d := range c.docs {
			need := want
			if !connectAll && i == 0 {
				need = n - 1
			}
			if len(d.Status().Peers) < need {
				return false
			}
		}
		return true
	}); err != nil {
		c.close()
		return nil, fmt.Errorf("topic mesh: %w", err)
	}
	return c, nil
}

func waitUntil(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// counterSum adds up the counter name with label direction=dir over nodes.
func counterSum(nodes []*concord.Node, name, dir string) float64 {
	var sum float64
	for _, n := range nodes {
		mfs, err := n.Registry().Gather()
		if err != nil {
			continue
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "direction" && lp.GetValue() == dir {
						sum += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return sum
}

func converged(docs []*concord.Doc) bool {
	// The versions first: they are cheap to compare, and the views are
	// encoded (under each document's lock, on a big one for tens of
	// milliseconds) only once they agree, so that polling does not slow
	// down what it measures.
	va := fmt.Sprint(docs[0].Status().Version)
	for _, d := range docs[1:] {
		if fmt.Sprint(d.Status().Version) != va {
			return false
		}
	}
	// The views are encoded at once, each under its own document's lock:
	// one after the other, the check would take as long as two encodings
	// of a big document after the documents agree.
	views := make([]string, len(docs))
	var wg sync.WaitGroup
	for i, d := range docs {
		wg.Go(func() { views[i] = string(d.JSON()) })
	}
	wg.Wait()
	for _, v := range views[1:] {
		if v != views[0] {
			return false
		}
	}
	return true
}

func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(p * float64(len(s)-1))
	return s[k]
}

// All runs every scenario with its default size.
func All(ctx context.Context, o Options, w io.Writer, asJSON bool) error {
	runs := []func(context.Context, Options) (Result, error){
		func(ctx context.Context, o Options) (Result, error) { return Convergence(ctx, o, 8, 8, 2000) },
		func(ctx context.Context, o Options) (Result, error) {
			if o.Dir == "" {
				dir, err := os.MkdirTemp("", "concord-tput-")
				if err != nil {
					return Result{}, err
				}
				defer os.RemoveAll(dir)
				o.Dir = dir
			}
			return Throughput(ctx, o, 64, 100_000)
		},
		func(ctx context.Context, o Options) (Result, error) { return Latency(ctx, o, 10, 1000, 3*time.Second) },
		func(ctx context.Context, o Options) (Result, error) {
			o.MeshDegree = 3
			return Latency(ctx, o, 10, 1000, 3*time.Second)
		},
		func(ctx context.Context, o Options) (Result, error) { return Catchup(ctx, o, 1000) },
	}
	var errs []string
	for _, run := range runs {
		r, err := run(ctx, o)
		if err != nil {
			errs = append(errs, err.Error())
			if !asJSON {
				fmt.Fprintf(w, "error: %v\n", err)
			}
			continue
		}
		if asJSON {
			if err := r.JSON(w); err != nil {
				return err
			}
			continue
		}
		r.Print(w)
	}
	if len(errs) > 0 {
		return fmt.Errorf("bench: %s", strings.Join(errs, "; "))
	}
	return nil
}
