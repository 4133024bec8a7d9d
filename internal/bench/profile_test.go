package bench

import (
	"context"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"testing"
	"time"
)

// scenarioProfiler returns the profiler of a profiling test of scenario
// name, writing to the directory named by CONCORD_<NAME>_PROFILE (with an
// execution trace when CONCORD_<NAME>_TRACE is set), and a context of 5
// minutes for the run; without the directory it skips the test (a
// profiling test is a measurement, not a check).
func scenarioProfiler(t *testing.T, name string) (*profiler, context.Context) {
	t.Helper()
	dir := os.Getenv("CONCORD_" + name + "_PROFILE")
	if dir == "" {
		t.Skip("set CONCORD_" + name + "_PROFILE to a directory to profile the scenario")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return newProfiler(t, dir, os.Getenv("CONCORD_"+name+"_TRACE") != ""), ctx
}

// profiler writes a CPU profile (and, when tracing, an execution trace)
// of what runs between start and stop to dir, then the named runtime
// profiles: the profiling tests' shared part.
type profiler struct {
	t       *testing.T
	dir     string
	tracing bool
	cpu, tr *os.File
}

func newProfiler(t *testing.T, dir string, tracing bool) *profiler {
	t.Helper()
	p := &profiler{t: t, dir: dir, tracing: tracing}
	var err error
	if p.cpu, err = os.Create(dir + "/cpu.pprof"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cpu.Close() })
	if tracing {
		if p.tr, err = os.Create(dir + "/trace.out"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.tr.Close() })
	}
	return p
}

// start starts the CPU profile and the trace.
func (p *profiler) start() error {
	if err := pprof.StartCPUProfile(p.cpu); err != nil {
		return err
	}
	if p.tracing {
		return trace.Start(p.tr)
	}
	return nil
}

// stop stops them and writes the named profiles (e.g. "allocs", "block").
func (p *profiler) stop(profiles ...string) {
	p.t.Helper()
	if p.tracing {
		trace.Stop()
	}
	pprof.StopCPUProfile()
	for _, name := range profiles {
		f, err := os.Create(p.dir + "/" + name + ".pprof")
		if err != nil {
			p.t.Fatal(err)
		}
		err = pprof.Lookup(name).WriteTo(f, 0)
		_ = f.Close()
		if err != nil {
			p.t.Fatal(err)
		}
	}
}

// logMetrics logs a scenario's figures.
func logMetrics(t *testing.T, res Result) {
	for _, m := range res.Metrics {
		t.Logf("%s = %v %s", m.Key, m.Value, m.Unit)
	}
}
