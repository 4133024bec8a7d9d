package bench

import (
	"runtime"
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
	p, ctx := scenarioProfiler(t, "TPUT")
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	defer runtime.SetBlockProfileRate(0)
	defer runtime.SetMutexProfileFraction(0)
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	res, err := Throughput(ctx, Options{Dir: t.TempDir()}, 64, 100_000)
	p.stop("block", "mutex", "allocs")
	if err != nil {
		t.Fatal(err)
	}
	logMetrics(t, res)
}
