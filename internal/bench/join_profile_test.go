package bench

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"testing"
	"time"
)

// TestJoinProfile runs the late joiner with CPU, heap and execution-trace
// profiles written to the directory named by CONCORD_JOIN_PROFILE; without
// it the test is skipped (it is a measurement, not a check).
func TestJoinProfile(t *testing.T) {
	dir := os.Getenv("CONCORD_JOIN_PROFILE")
	if dir == "" {
		t.Skip("set CONCORD_JOIN_PROFILE to a directory to profile the join scenario")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cpu, err := os.Create(dir + "/cpu.pprof")
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	tr, err := os.Create(dir + "/trace.out")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var perr error
	o := Options{joinConnect: func() {
		runtime.GC()
		perr = pprof.StartCPUProfile(cpu)
		if os.Getenv("CONCORD_JOIN_TRACE") != "" && perr == nil {
			perr = trace.Start(tr)
		}
	}}
	res, err := Join(ctx, o, 100, 1000)
	if os.Getenv("CONCORD_JOIN_TRACE") != "" {
		trace.Stop()
	}
	pprof.StopCPUProfile()
	if err != nil {
		t.Fatal(err)
	}
	if perr != nil {
		t.Fatal(perr)
	}
	heap, err := os.Create(dir + "/heap.pprof")
	if err != nil {
		t.Fatal(err)
	}
	defer heap.Close()
	if err := pprof.Lookup("allocs").WriteTo(heap, 0); err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Metrics {
		t.Logf("%s = %v %s", m.Key, m.Value, m.Unit)
	}
}
