package crdt

import (
	"strconv"
	"testing"
)

// joinBatches returns the encodings of batches aggregates, each the join
// of txns transactions of per register sets on fresh top-level keys, all
// by one author in order: what a late joiner receives from the author.
func joinBatches(tb testing.TB, origin ReplicaID, batches, txns, per int) [][]byte {
	tb.Helper()
	src := New()
	k := 0
	var out [][]byte
	for range batches {
		acc := New()
		for range txns {
			ops := make([]Op, per)
			for i := range ops {
				ops[i] = Set([]string{"k" + strconv.Itoa(k)}, js(strconv.Itoa(k)))
				k++
			}
			d, err := src.Apply(origin, HLC(1<<40+k), ops...)
			if err != nil {
				tb.Fatal(err)
			}
			acc.JoinDelta(d)
		}
		out = append(out, EncodeDelta(acc, origin))
	}
	return out
}

// BenchmarkJoinBatch: what a late joiner does with one 8,000-key aggregate
// (8 transactions of 1,000 sets): decode it, and merge it into a document
// already holding the 48,000 keys written before.
func BenchmarkJoinBatch(b *testing.B) {
	encs := joinBatches(b, "A", 7, 8, 1000)
	enc := encs[6]
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for range b.N {
			if _, err := DecodeDelta(enc, "A", DeltaLimits()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("merge", func(b *testing.B) {
		base := New()
		for _, e := range encs[:6] {
			d, err := DecodeDelta(e, "A", DeltaLimits())
			if err != nil {
				b.Fatal(err)
			}
			base.Merge(d)
		}
		delta, err := DecodeDelta(enc, "A", DeltaLimits())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for range b.N {
			b.StopTimer()
			s := base.Clone()
			b.StartTimer()
			s.Merge(delta)
		}
	})
}

// BenchmarkJoinDisjoint: the author joining a run of 8 transactions of
// 1,000 fresh register sets into one aggregate, raw.
func BenchmarkJoinDisjoint(b *testing.B) {
	src := New()
	var run [][]byte
	for i := range 8 {
		var ops []Op
		for k := range 1000 {
			ops = append(ops, Set([]string{"k" + strconv.Itoa(i*1000+k)}, js(strconv.Itoa(k))))
		}
		d, err := src.Apply("A", HLC(i+1), ops...)
		if err != nil {
			b.Fatal(err)
		}
		run = append(run, EncodeDelta(d, "A"))
	}
	for _, c := range []struct {
		name string
		join func(ReplicaID, [][]byte, Limits) ([]byte, bool)
	}{{"fast", joinDisjointFast}, {"reference", joinDisjointReference}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, ok := c.join("A", run, DeltaLimits()); !ok {
					b.Fatal("not joined")
				}
			}
		})
	}
}

// BenchmarkJoinView: the JSON view of the late joiner's 96,000-key
// document (what the join scenario's check encodes).
func BenchmarkJoinView(b *testing.B) {
	s := New()
	for _, e := range joinBatches(b, "A", 12, 8, 1000) {
		d, err := DecodeDelta(e, "A", DeltaLimits())
		if err != nil {
			b.Fatal(err)
		}
		s.Merge(d)
	}
	b.ReportAllocs()
	for range b.N {
		s.JSON()
	}
}
