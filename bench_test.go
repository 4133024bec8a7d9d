package concord_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/concord-p2p/concord/internal/bench"
)

// The end-to-end benchmarks run one scenario per iteration and print its
// figures; `go run ./cmd/concord bench` runs them all.

func report(b *testing.B, r bench.Result) {
	b.Helper()
	r.Print(os.Stdout)
	for _, m := range r.Metrics {
		if m.Unit != "" && m.Unit[0] != 'o' {
			b.ReportMetric(m.Value, m.Unit)
		}
	}
}

func BenchmarkConvergence8x8(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := bench.Convergence(context.Background(), bench.Options{}, 8, 8, 2000)
		if err != nil {
			b.Fatal(err)
		}
		report(b, r)
	}
}

func BenchmarkThroughput2Peers(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := bench.Throughput(context.Background(), bench.Options{Dir: b.TempDir()}, 64, 100_000)
		if err != nil {
			b.Fatal(err)
		}
		report(b, r)
	}
}

func BenchmarkLatency10Peers(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := bench.Latency(context.Background(), bench.Options{}, 10, 1000, 3*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		report(b, r)
	}
}

func BenchmarkLatency10PeersDegree3(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := bench.Latency(context.Background(), bench.Options{MeshDegree: 3}, 10, 1000, 3*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		report(b, r)
	}
}

func BenchmarkCatchup(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := bench.Catchup(context.Background(), bench.Options{}, 1000)
		if err != nil {
			b.Fatal(err)
		}
		report(b, r)
	}
}

func BenchmarkB4API(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := bench.B4API(context.Background(), bench.Options{})
		if err != nil {
			b.Skip(err) // the trace is read from ../shared/data beside the repository
		}
		report(b, r)
	}
}

func BenchmarkTextMerge(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := bench.TextMerge(context.Background(), bench.Options{}, 100_000, 10_000)
		if err != nil {
			b.Fatal(err)
		}
		report(b, r)
	}
}
