package bench

import (
	"runtime"
	"testing"
)

// TestConvergeProfile runs the converge scenario with CPU and allocation
// profiles written to the directory named by CONCORD_CONVERGE_PROFILE.
func TestConvergeProfile(t *testing.T) {
	p, ctx := scenarioProfiler(t, "CONVERGE")
	runtime.GC()
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	res, err := Convergence(ctx, Options{}, 8, 8, 2000)
	p.stop("allocs")
	if err != nil {
		t.Fatal(err)
	}
	logMetrics(t, res)
}
