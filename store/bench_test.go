package store

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
)

// benchBigEnv enables the 1M-delta compaction benchmark (default 100k).
const benchBigEnv = "CONCORD_BENCH_BIG"

var benchPayload = bytes.Repeat([]byte("x"), 100)

// BenchmarkAppend measures single-entry Appends with 1, 8 and 64 concurrent
// writers, durable (group commit + sync) and NoSync; the appends/s metric is
// what to compare.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{"durable", "nosync"} {
		for _, writers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				s, err := OpenPebble(b.TempDir(), Options{NoSync: mode == "nosync"})
				if err != nil {
					b.Fatal(err)
				}
				defer mustClose(b, s)
				ctx := context.Background()
				groups0 := s.groups.Load()
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for w := range writers {
					n := b.N / writers
					if w < b.N%writers {
						n++
					}
					wg.Go(func() {
						r := crdt.ReplicaID(fmt.Sprint("w", w))
						for i := 1; i <= n; i++ {
							if err := s.Append(ctx, "bench", r, []Entry{{Replica: r, Seq: uint64(i), Data: benchPayload}}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/el.Seconds(), "appends/s")
				b.ReportMetric(float64(b.N)/float64(max(1, s.groups.Load()-groups0)), "appends/sync")
			})
		}
	}
}

func fillStore(b *testing.B, s *Store, doc string, replicas, n int) {
	ctx := context.Background()
	const chunk = 1000
	per := n / replicas
	for r := range replicas {
		rid := crdt.ReplicaID(fmt.Sprint("r", r))
		for lo := 1; lo <= per; lo += chunk {
			var es []Entry
			for seq := lo; seq < lo+chunk && seq <= per; seq++ {
				es = append(es, Entry{Replica: rid, Seq: uint64(seq), Data: benchPayload})
			}
			if err := s.Append(ctx, doc, "", es); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkMissing100k reads 100k deltas (4 replicas, 100-byte payloads)
// through Missing with the default 256 KiB batches.
func BenchmarkMissing100k(b *testing.B) {
	const n = 100_000
	s, err := OpenPebble(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer mustClose(b, s)
	fillStore(b, s, "bench", 4, n)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		got := 0
		var cur Cursor
		for {
			batch, next, done, err := s.Missing(ctx, "bench", nil, cur)
			if err != nil {
				b.Fatal(err)
			}
			got += len(batch)
			if done {
				break
			}
			cur = next
		}
		if got != n {
			b.Fatalf("read %d", got)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delta")
}

// BenchmarkCompact compacts a whole log of 100k deltas (1M with
// CONCORD_BENCH_BIG=1) into a snapshot.
func BenchmarkCompact(b *testing.B) {
	n := 100_000
	if os.Getenv(benchBigEnv) != "" {
		n = 1_000_000
	}
	b.Run(fmt.Sprintf("deltas=%d", n), func(b *testing.B) {
		ctx := context.Background()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s, err := OpenPebble(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			fillStore(b, s, "bench", 4, n)
			vv := s.Contiguous("bench")
			b.StartTimer()
			if err := s.Compact(ctx, "bench", Snapshot{State: []byte("state"), VV: vv}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if left := allEntries(b, s, "bench"); len(left) != 0 {
				b.Fatalf("%d entries left", len(left))
			}
			mustClose(b, s)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delta")
	})
}

// BenchmarkBytesPerDelta writes 100k deltas with 100-byte payloads, closes
// the store and reports the directory size per delta (all files, and SSTables
// only).
func BenchmarkBytesPerDelta(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		dir := b.TempDir()
		s, err := OpenPebble(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		fillStore(b, s, "bench", 4, n)
		mustClose(b, s)
		var total, sst int64
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
			if strings.HasSuffix(path, ".sst") {
				sst += info.Size()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(total)/n, "disk-bytes/delta")
		b.ReportMetric(float64(sst)/n, "sst-bytes/delta")
	}
}
