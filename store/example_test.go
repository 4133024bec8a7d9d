package store_test

import (
	"context"
	"fmt"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/store"
)

func Example() {
	ctx := context.Background()
	s, err := store.OpenMemory(store.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	me := crdt.ReplicaID("me")
	// Persist own deltas before publishing them; they enter the outbox.
	if err := s.Append(ctx, "notes", me, []store.Entry{
		{Replica: me, Seq: 1, Data: []byte("d1")},
		{Replica: me, Seq: 2, Data: []byte("d2")},
	}); err != nil {
		panic(err)
	}
	// A peer that has seq 1 asks what it lacks.
	batch, _, done, err := s.Missing(ctx, "notes", crdt.VersionVector{me: 1}, store.Cursor{})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(batch), batch[0].Seq, string(batch[0].Data), done)
	// The peer acknowledged everything: the outbox empties.
	if err := s.Ack(ctx, "notes", 2); err != nil {
		panic(err)
	}
	fmt.Println(s.Contiguous("notes")[me], s.OutboxDepth("notes"))
	// Output:
	// 1 2 d2 true
	// 2 0
}
