package bench

import (
	"runtime"
	"testing"
)

// TestJoinProfile runs the late joiner with CPU and allocation profiles
// (and, with CONCORD_JOIN_TRACE set, an execution trace), from the
// joiner's connect on, written to the directory named by
// CONCORD_JOIN_PROFILE; without it the test is skipped (it is a
// measurement, not a check).
func TestJoinProfile(t *testing.T) {
	p, ctx := scenarioProfiler(t, "JOIN")
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
