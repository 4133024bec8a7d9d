package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/concord-p2p/concord/internal/bench"
)

const benchUsage = `Usage: concord bench [--scenario NAME] [--pebble] [--degree D] [--json]

Run Concord's end-to-end benchmarks: real nodes on 127.0.0.1 in this process,
measured through the public API. Each scenario prints its figures and the
target it meets or misses.

Scenarios (default: all):
  converge   8 replicas, 8 writers, 2000 writes: time until all agree
  tput       2 peers, 64 concurrent writers, 100k writes, Pebble (synced)
  latency    10 peers, 1 writer at 1000 writes/s: write → remote change event
  catchup    2 peers partitioned, 1000 writes per side, healed: sync bytes
  join       a fresh peer joins a 100k-key document (100 txns of 1000 sets)
  scale      --peers N (50) peers, each dialling 3 random earlier ones,
             --writes W (500) writes from random peers: time to converge
             after the last write, peak RSS, goroutines
  docs       2 peers, --docs N (1000) documents: goroutines, memory per doc
  mesh       the gossip layer of --peers N (100) peers over mocknet, in one
             process, --writes W (100): spread time, messages and bytes
             per peer per write (--no-flood: without flood publishing)
  b4         the B4 editing trace through the API, one transaction per edit
  keystroke  the bytes of one typed character on the wire
  textmerge  2 peers type 10k characters each apart into a 100k text
  presence   2 peers, 400 presence updates (8 clients, one every 10 ms):
             set → remote event, bytes per update

Flags:
  --scenario NAME   run one scenario
  --pebble          persist in Pebble (synced) under a temporary directory
                    (tput always does)
  --degree D        GossipSub mesh degree (default 6)
  --trust-author    skip the signature check of deltas straight from their
                    author (Config.TrustAuthorChannel)
  --group-wait D    let concurrent writers share a delta, waiting up to D
                    (e.g. 2ms) for them (Config.GroupCommitWait)
  --peers N         peers of converge, latency and scale
  --writes W        writes of converge, latency (per second), scale
  --docs N          documents of docs
  --no-flood        mesh: authors send to their mesh only, not to every
                    topic peer
  --idontwant B     mesh: GossipSub IDONTWANT for messages from B bytes
                    (default 1024, the library's)
  --json            print one JSON object per scenario on its own line:
                    {"scenario": NAME, "params": {...}, "metrics": {"<name>": n}}

Exit codes: 0 success, 1 runtime error, 2 usage error.
`

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	scenario := fs.String("scenario", "", "")
	pebble := fs.Bool("pebble", false, "")
	degree := fs.Int("degree", 0, "")
	trust := fs.Bool("trust-author", false, "")
	groupWait := fs.Duration("group-wait", 0, "")
	asJSON := fs.Bool("json", false, "")
	peers := fs.Int("peers", 0, "")
	writes := fs.Int("writes", 0, "")
	docs := fs.Int("docs", 1000, "")
	noFlood := fs.Bool("no-flood", false, "")
	idontwant := fs.Int("idontwant", 0, "")
	if err := parseFlags(fs, benchUsage, args, stdout, stderr); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "concord-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o := bench.Options{MeshDegree: *degree, TrustAuthorChannel: *trust, GroupCommitWait: *groupWait, Progress: stderr}
	or := func(v *int, d int) int {
		if *v > 0 {
			return *v
		}
		return d
	}
	if *pebble {
		o.Dir = dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var r bench.Result
	switch *scenario {
	case "":
		return bench.All(ctx, o, stdout, *asJSON)
	case "converge":
		n := or(peers, 8)
		r, err = bench.Convergence(ctx, o, n, n, or(writes, 2000))
	case "tput":
		o.Dir = dir
		r, err = bench.Throughput(ctx, o, 64, 100_000)
	case "latency":
		r, err = bench.Latency(ctx, o, or(peers, 10), or(writes, 1000), 3*time.Second)
	case "catchup":
		r, err = bench.Catchup(ctx, o, 1000)
	case "join":
		r, err = bench.Join(ctx, o, 100, 1000)
	case "scale":
		r, err = bench.Scale(ctx, o, or(peers, 50), or(writes, 500))
	case "docs":
		r, err = bench.Docs(ctx, o, or(docs, 1000))
	case "mesh":
		r, err = bench.Mesh(ctx, o, or(peers, 100), or(writes, 100), !*noFlood, *idontwant)
	case "b4":
		r, err = bench.B4API(ctx, o)
	case "keystroke":
		r, err = bench.Keystroke(ctx, o, 10_000)
	case "textmerge":
		r, err = bench.TextMerge(ctx, o, 100_000, 10_000)
	case "presence":
		r, err = bench.Presence(ctx, o, 400, 8, 10*time.Millisecond)
	default:
		fmt.Fprintf(stderr, "concord bench: unknown scenario %q\n\n%s", *scenario, benchUsage)
		return usagef("unknown scenario %q", *scenario)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return r.JSON(stdout)
	}
	r.Print(stdout)
	return nil
}
