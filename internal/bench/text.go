package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/internal/b4trace"
)

// Text scenarios: the B4 editing trace through the public API, the bytes
// of one keystroke, and the merge of two peers that typed apart.

var textPath = []string{"text"}

// B4API replays the B4 editing trace (259,778 edits) on one node through
// the public API, every edit its own transaction (Doc.Splice), each
// returning once durable; the final text must equal the trace's.
func B4API(ctx context.Context, o Options) (Result, error) {
	tr, err := b4trace.Load()
	if err != nil {
		return Result{}, fmt.Errorf("the B4 trace (../shared/data/%s beside the repository): %w", b4trace.File, err)
	}
	c, err := newCluster(ctx, o, 1, "b4", true, nil)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	d := c.docs[0]
	if err := d.Splice(ctx, textPath, 0, 0, tr.Start); err != nil {
		return Result{}, err
	}
	start := time.Now()
	for i, p := range tr.Patches {
		if err := d.Splice(ctx, textPath, p.Pos, p.Del, string(p.Ins)); err != nil {
			return Result{}, fmt.Errorf("edit %d: %w", i, err)
		}
	}
	took := time.Since(start)
	if got, _ := d.Text(textPath...); got != tr.End {
		return Result{}, fmt.Errorf("the replay ends in %d code points, not the trace's %d", len([]rune(got)), len([]rune(tr.End)))
	}
	n := len(tr.Patches)
	var deltas uint64
	for _, k := range d.Status().Version {
		deltas += k // one replica: this node's
	}
	return Result{
		Scenario: "B4 editing trace through the public API", Name: "b4",
		Params:   fmt.Sprintf("1 node, %d edits, one transaction each, store=%s", n, storeName(o)),
		ParamMap: map[string]any{"edits": n, "store": storeName(o)},
		Metrics: []Metric{
			{Key: "replay_s", Name: "whole replay", Value: took.Seconds(), Unit: "s"},
			{Key: "edits_per_s", Name: "edits", Value: float64(n) / took.Seconds(), Unit: "edits/s"},
			{Key: "deltas", Name: "own deltas (group commits)", Value: float64(deltas), Unit: "deltas"},
		},
	}, nil
}

// Keystroke measures the bytes one typed character costs on the wire: the
// envelope, and its payload, of a one-character splice into the middle of
// a text of base characters (written in one splice before it, so its
// neighbours are one run).
func Keystroke(ctx context.Context, o Options, base int) (Result, error) {
	c, err := newCluster(ctx, o, 1, "key", true, nil)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	d := c.docs[0]
	if err := d.Splice(ctx, textPath, 0, 0, strings.Repeat("x", base)); err != nil {
		return Result{}, err
	}
	have := d.Status().Version
	if err := d.Splice(ctx, textPath, base/2, 0, "y"); err != nil {
		return Result{}, err
	}
	envs, payloads, err := d.LackingSizes(ctx, have)
	if err != nil {
		return Result{}, err
	}
	if len(envs) != 1 {
		return Result{}, fmt.Errorf("a keystroke made %d deltas", len(envs))
	}
	envBytes, payloadBytes := envs[0], payloads[0]
	return Result{
		Scenario: "one keystroke on the wire", Name: "keystroke",
		Params:   fmt.Sprintf("a one-character splice in the middle of a %d-character text", base),
		ParamMap: map[string]any{"text_chars": base},
		Metrics: []Metric{
			{Key: "envelope_bytes", Name: "signed envelope (payload, signature, header)", Value: float64(envBytes), Unit: "bytes"},
			{Key: "payload_bytes", Name: "payload (the encoded delta)", Value: float64(payloadBytes), Unit: "bytes", Target: "≤ 30", Met: met(payloadBytes <= 30)},
		},
	}, nil
}

// TextMerge: two peers share a text of base characters, are partitioned,
// each types typed characters (one transaction per keystroke, at its own
// cursor), and are healed: time to converge and bytes on the sync stream.
func TextMerge(ctx context.Context, o Options, base, typed int) (Result, error) {
	c, err := newPair(ctx, o, "merge")
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	da, db := c.docs[0], c.docs[1]
	line := strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit\n", base/56+1)
	if err := da.Splice(ctx, textPath, 0, 0, line[:base]); err != nil {
		return Result{}, err
	}
	if err := waitUntil(ctx, 30*time.Second, func() bool { return converged(c.docs) }); err != nil {
		return Result{}, fmt.Errorf("the shared text: %w", err)
	}
	if err := c.partition(ctx); err != nil {
		return Result{}, err
	}
	// What each side types: pseudo-random letters and spaces (so that the
	// sync stream's compression sees text, not one repeated letter).
	var words [2][]rune
	for side := range words {
		x := uint32(side*7919 + 1)
		for range typed {
			x = x*1664525 + 1013904223
			words[side] = append(words[side], rune("etaoin shrdlucmfwyp"[x>>24%19]))
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	typeStart := time.Now()
	for side, d := range []*concord.Doc{da, db} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := base * (side + 1) / 3
			for k, r := range words[side] {
				if err := d.Splice(ctx, textPath, at+k, 0, string(r)); err != nil {
					errs[side] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	typing := time.Since(typeStart)
	for _, err := range errs {
		if err != nil {
			return Result{}, err
		}
	}
	n, missedBytes, err := c.missed(ctx)
	if err != nil {
		return Result{}, err
	}
	took, err := c.heal(ctx, 120*time.Second)
	if err != nil {
		return Result{}, fmt.Errorf("merge: %w", err)
	}
	text, _ := da.Text(textPath...)
	if got, want := len([]rune(text)), base+2*typed; got != want {
		return Result{}, fmt.Errorf("merged text has %d code points, want %d", got, want)
	}
	for side := range 2 {
		if !strings.Contains(text, string(words[side])) {
			return Result{}, fmt.Errorf("peer %d's typing is not one run in the merged text", side)
		}
	}
	events, err := c.settled(ctx)
	if err != nil {
		return Result{}, err
	}
	var in, out int
	for _, e := range events {
		if e.Initiator {
			out += e.Stats.BytesOut
			in += e.Stats.BytesIn
		}
	}
	return Result{
		Scenario: "merge of two peers that typed apart", Name: "textmerge",
		Params:   fmt.Sprintf("2 peers, a %d-character text, %d keystrokes per side while partitioned (%d+%d deltas), store=%s", base, typed, n[0], n[1], storeName(o)),
		ParamMap: map[string]any{"peers": 2, "text_chars": base, "typed_per_side": typed, "missed_deltas": n[0] + n[1], "store": storeName(o)},
		Metrics: []Metric{
			{Key: "heal_to_converged_ms", Name: "heal → converged", Value: took.Seconds() * 1000, Unit: "ms"},
			{Key: "sync_bytes", Name: "bytes on the sync stream (both ways)", Value: float64(in + out), Unit: "bytes"},
			{Key: "missed_envelope_bytes", Name: "envelopes missed (both sides)", Value: float64(missedBytes), Unit: "bytes"},
			{Key: "typing_per_s", Name: "keystrokes while apart (both peers)", Value: float64(2*typed) / typing.Seconds(), Unit: "keys/s"},
		},
	}, nil
}
