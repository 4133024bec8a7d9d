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

// TestThroughputProfile runs the durable throughput scenario with CPU,
// block and mutex profiles (and, with CONCORD_TPUT_TRACE set, an execution
// trace) written to the directory named by CONCORD_TPUT_PROFILE; without it
// the test is skipped (it is a measurement, not a check). A group commit
// that waits is idle time, which the CPU profile does not show: the block
// profile and the trace do.
func TestThroughputProfile(t *testing.T) {
	dir := os.Getenv("CONCORD_TPUT_PROFILE")
	if dir == "" {
		t.Skip("set CONCORD_TPUT_PROFILE to a directory to profile the tput scenario")
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
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	defer runtime.SetBlockProfileRate(0)
	defer runtime.SetMutexProfileFraction(0)
	tracing := os.Getenv("CONCORD_TPUT_TRACE") != ""
	if err := pprof.StartCPUProfile(cpu); err != nil {
		t.Fatal(err)
	}
	if tracing {
		if err := trace.Start(tr); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Throughput(ctx, Options{Dir: t.TempDir()}, 64, 100_000)
	if tracing {
		trace.Stop()
	}
	pprof.StopCPUProfile()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"block", "mutex", "allocs"} {
		f, err := os.Create(dir + "/" + name + ".pprof")
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	for _, m := range res.Metrics {
		t.Logf("%s = %v %s", m.Key, m.Value, m.Unit)
	}
}
