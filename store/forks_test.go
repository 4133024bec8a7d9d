package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/concord-p2p/concord/crdt"
)

func TestForks(t *testing.T) {
	forBackends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := b.reopen(t)
		f := Fork{Replica: "r1", Seq: 3, ID: 0xabc, Data: []byte("second")}
		if ok, err := s.AddFork(ctx, "d", f); err != nil || !ok {
			t.Fatalf("AddFork: %v %v", ok, err)
		}
		if ok, err := s.AddFork(ctx, "d", f); err != nil || ok {
			t.Fatalf("AddFork twice: %v %v, want false", ok, err)
		}
		if _, err := s.AddFork(ctx, "d", Fork{Replica: "r1"}); err == nil {
			t.Fatal("a fork without a seq was stored")
		}
		for i := uint64(1); i < MaxForks+5; i++ {
			if _, err := s.AddFork(ctx, "d", Fork{Replica: "r2", Seq: i, ID: i, Data: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		// A snapshot compacts the log, never the forks.
		if err := s.Compact(ctx, "d", Snapshot{State: []byte("s"), VV: crdt.VersionVector{"r1": 5}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = b.reopen(t)
		defer s.Close()
		got, err := s.Forks(ctx, "d")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != MaxForks {
			t.Fatalf("%d forks after reopen, want the bound %d", len(got), MaxForks)
		}
		if got[0].Replica != "r1" || got[0].Seq != 3 || got[0].ID != 0xabc || !bytes.Equal(got[0].Data, f.Data) {
			t.Fatalf("first fork %+v, want %+v", got[0], f)
		}
		if ok, _ := s.AddFork(ctx, "d", Fork{Replica: "r3", Seq: 1, ID: 1, Data: []byte("x")}); ok {
			t.Fatal("a fork past the bound was stored after reopen")
		}
		if fs, err := s.Forks(ctx, "other"); err != nil || len(fs) != 0 {
			t.Fatalf("forks of another doc: %v %v", fs, err)
		}
		if err := s.Problems(); err != nil {
			t.Fatalf("problems: %v", err)
		}
	})
}
