// Package bench holds Concord's end-to-end benchmark scenarios: real nodes
// on 127.0.0.1, measured from the public API. `concord bench` and the root
// package's Go benchmarks both run them.
//
// # Ownership and imports
//
// The package owns the scenarios (Convergence, Throughput, Latency,
// Catchup, Presence and the text ones), their default sizes (All) and the figures they report (Result,
// Metric); it holds no replication rule. It may import the root package
// concord (the public API under test) and net, for what a scenario needs
// beyond that API: the connection gater that partitions two nodes and the
// sync exchange events it measures. It must not import store or crdt
// internals, nor any package of cmd/.
//
// # Usage
//
//	r, err := bench.Convergence(ctx, bench.Options{}, 8, 8, 2000)
//	// or every scenario, one JSON line each:
//	err = bench.All(ctx, bench.Options{Dir: dir}, os.Stdout, false) // true: --json lines
package bench
