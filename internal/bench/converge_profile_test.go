package bench

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestConvergeProfile runs the converge scenario with CPU and allocation
// profiles written to the directory named by CONCORD_CONVERGE_PROFILE;
// without it the test is skipped (it is a measurement, not a check).
func TestConvergeProfile(t *testing.T) {
	dir := os.Getenv("CONCORD_CONVERGE_PROFILE")
	if dir == "" {
		t.Skip("set CONCORD_CONVERGE_PROFILE to a directory to profile the converge scenario")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := newProfiler(t, dir, os.Getenv("CONCORD_CONVERGE_TRACE") != "")
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
