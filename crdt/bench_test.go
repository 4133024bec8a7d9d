package crdt

import (
	"strconv"
	"testing"
)

func bigMap(b *testing.B, r ReplicaID, n int) *State {
	b.Helper()
	s := New()
	for i := 0; i < n; i++ {
		if _, err := s.Apply(r, HLC(i+1), Set([]string{strconv.Itoa(i)}, js(`1`))); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkRegisterSet: a local set applied to a 100k-key map (target ≥ 1M/s).
func BenchmarkRegisterSet(b *testing.B) {
	s := bigMap(b, "A", 100_000)
	keys := make([][]string, 100_000)
	for i := range keys {
		keys[i] = []string{strconv.Itoa(i)}
	}
	val := js(`42`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Apply("A", HLC(200_000+i), Set(keys[i%len(keys)], val)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegisterSetBatched: the same sets joined into one delta per 64
// writes with ApplyTo — how a node batches writes arriving together.
func BenchmarkRegisterSetBatched(b *testing.B) {
	s := bigMap(b, "A", 100_000)
	keys := make([][]string, 100_000)
	for i := range keys {
		keys[i] = []string{strconv.Itoa(i)}
	}
	val := js(`42`)
	acc := New()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%64 == 0 {
			acc = New()
		}
		if err := s.ApplyTo(acc, "A", HLC(200_000+i), Set(keys[i%len(keys)], val)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchOp(b *testing.B, mk func(i int) Op) {
	s := New()
	b.ReportAllocs()
	var size int
	for i := 0; i < b.N; i++ {
		d, err := s.Apply("A", HLC(i+1), mk(i))
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			size = len(EncodeDelta(d, "A"))
		}
	}
	b.ReportMetric(float64(size), "bytes/delta")
}

func BenchmarkMutate(b *testing.B) {
	b.Run("register", func(b *testing.B) {
		benchOp(b, func(i int) Op { return Set([]string{strconv.Itoa(i % 1000)}, js(`"v"`)) })
	})
	b.Run("counter", func(b *testing.B) {
		benchOp(b, func(i int) Op { return Inc([]string{"n"}, 1) })
	})
	b.Run("set-add", func(b *testing.B) {
		benchOp(b, func(i int) Op { return Add([]string{"s"}, js(strconv.Itoa(i%1000))) })
	})
	b.Run("nested-map", func(b *testing.B) {
		benchOp(b, func(i int) Op { return Set([]string{"m", strconv.Itoa(i % 100), "x"}, js(`1`)) })
	})
}

// BenchmarkMergeDelta: a remote one-op delta merged into a 100k-key map.
func BenchmarkMergeDelta(b *testing.B) {
	s := bigMap(b, "A", 100_000)
	src := New()
	deltas := make([]*State, 1000)
	for i := range deltas {
		d, _ := src.Apply("B", HLC(i+1), Set([]string{strconv.Itoa(i)}, js(`2`)))
		deltas[i] = d
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Merge(deltas[i%len(deltas)])
	}
}

// BenchmarkMergeRemoteState: join a whole remote 100k-key state (target ≤ 100 ms).
func BenchmarkMergeRemoteState(b *testing.B) {
	remote := bigMap(b, "B", 100_000)
	local := bigMap(b, "A", 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := local.Clone()
		b.StartTimer()
		s.Merge(remote)
	}
}

func BenchmarkCodec(b *testing.B) {
	s := bigMap(b, "A", 100_000)
	enc := Encode(s)
	b.Run("encode-100k", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for i := 0; i < b.N; i++ {
			Encode(s)
		}
	})
	b.Run("decode-100k", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for i := 0; i < b.N; i++ {
			if _, err := Decode(enc, DefaultLimits()); err != nil {
				b.Fatal(err)
			}
		}
	})
	d, _ := s.Apply("A", 1<<40, Set([]string{"k"}, js(`"small"`)))
	denc := EncodeDelta(d, "A")
	b.Run("encode-delta", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			EncodeDelta(d, "A")
		}
		b.ReportMetric(float64(len(denc)), "bytes/delta")
	})
	b.Run("decode-delta", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := DecodeDelta(denc, "A", DeltaLimits()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkScatteredDelete: deleting a map of 50k values whose dots are
// scattered (every other counter of the replica).
func BenchmarkScatteredDelete(b *testing.B) {
	for range b.N {
		b.StopTimer()
		s := New()
		for i := range 50_000 {
			if _, err := s.Apply("A", HLC(i+1), Set([]string{"m", strconv.Itoa(i)}, js(`1`))); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Apply("A", HLC(i+1), Inc([]string{"other"}, 1)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if _, err := s.Apply("A", HLC(1e9), Delete([]string{"m"})); err != nil {
			b.Fatal(err)
		}
	}
}
