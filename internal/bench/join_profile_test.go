package bench

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestJoinProfile runs the late joiner with CPU and allocation profiles
// (and, with CONCORD_JOIN_TRACE set, an execution trace), from the
// joiner's connect on, written to the directory named by
// CONCORD_JOIN_PROFILE; without it the test is skipped (it is a
// measurement, not a check).
func TestJoinProfile(t *testing.T) {
	dir := os.Getenv("CONCORD_JOIN_PROFILE")
	if dir == "" {
		t.Skip("set CONCORD_JOIN_PROFILE to a directory to profile the join scenario")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := newProfiler(t, dir, os.Getenv("CONCORD_JOIN_TRACE") != "")
	var perr error
	o := Options{joinConnect: func() {
		runtime.GC()
		perr = p.start()
	}}
	res, err := Join(ctx, o, 100, 1000)
	p.stop("allocs")
	if err != nil {
		t.Fatal(err)
	}
	if perr != nil {
		t.Fatal(perr)
	}
	logMetrics(t, res)
}
