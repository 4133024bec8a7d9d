package sim

import (
	"bytes"
	"os"
	"strconv"
	"testing"
	"time"
)

// seeds returns the seeds to run: CONCORD_SIM_SEED=S replays one seed
// verbosely; CONCORD_SIM_SEEDS=N runs seeds 1..N; otherwise def.
func seeds(t *testing.T, def int) (first uint64, n int, verbose bool) {
	if s := os.Getenv("CONCORD_SIM_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CONCORD_SIM_SEED=%q: %v", s, err)
		}
		return seed, 1, true
	}
	n = def
	if s := os.Getenv("CONCORD_SIM_SEEDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("CONCORD_SIM_SEEDS=%q: want a positive integer", s)
		}
		n = v
	}
	return 1, n, false
}

func TestSim(t *testing.T) {
	def := 500
	if testing.Short() {
		def = 100
	}
	first, n, verbose := seeds(t, def)
	var total Stats
	var hlcSeeds []uint64
	failures := 0
	start := time.Now()
	for seed := first; seed < first+uint64(n); seed++ {
		var trace func(string)
		if verbose {
			trace = func(l string) { t.Log(l) }
		}
		stats, _, err := Run(seed, trace)
		if err != nil {
			failures++
			t.Errorf("seed %d: %v\nreplay: CONCORD_SIM_SEED=%d go test ./internal/sim -run 'TestSim$' -v", seed, err, seed)
			if failures >= 5 {
				t.Fatalf("stopping after %d failing seeds", failures)
			}
			continue
		}
		total.add(stats)
		if stats.HLCRegressions() > 0 && len(hlcSeeds) < 10 {
			hlcSeeds = append(hlcSeeds, seed)
		}
	}
	t.Logf("%d seeds in %v: %v", n, time.Since(start).Round(time.Millisecond), total)
	if len(hlcSeeds) > 0 {
		// Not a convergence failure (registers order causally, the HLC only
		// breaks ties between concurrent writes), but a replica's own
		// timestamps must never go backwards.
		t.Errorf("own HLC went backwards after a restart in seeds %v", hlcSeeds)
	}
	if n >= 50 && failures == 0 {
		// The fault mix must actually be exercised.
		for name, v := range total.Exercised() {
			if v == 0 {
				t.Errorf("no %s in %d seeds", name, n)
			}
		}
	}
}

// TestSimDeterministic runs seeds twice and compares the trace digests: a
// seed is a complete description of a run, so a failure replays exactly.
func TestSimDeterministic(t *testing.T) {
	for _, seed := range []uint64{3, 11, 42} {
		_, d1, err := Run(seed, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		_, d2, err := Run(seed, nil)
		if err != nil {
			t.Fatalf("seed %d (second run): %v", seed, err)
		}
		if !bytes.Equal(d1, d2) {
			t.Errorf("seed %d: two runs differ (%x vs %x)", seed, d1, d2)
		}
	}
}
