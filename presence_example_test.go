package concord_test

import (
	"context"
	"fmt"
	"time"

	"github.com/concord-p2p/concord"
)

// Two peers in one process: what one sets as its presence, the other sees
// as an event and in its list; a Clear is a goodbye.
func ExampleDoc_SetPresence() {
	ctx := context.Background()
	alice, err := concord.Open(ctx, concord.Config{}) // in memory, loopback
	if err != nil {
		panic(err)
	}
	defer alice.Close()
	bob, err := concord.Open(ctx, concord.Config{})
	if err != nil {
		panic(err)
	}
	defer bob.Close()
	if err := bob.Connect(ctx, alice.Addrs()[0]); err != nil {
		panic(err)
	}
	da, _ := alice.Doc(ctx, "notes")
	db, _ := bob.Doc(ctx, "notes")
	sub := db.SubscribePresence(64)
	defer sub.Close()

	// The presence topic may still be forming: set (a new state each time)
	// until Bob has it.
	timeout := time.After(10 * time.Second)
	for i := 0; ; i++ {
		if err := da.SetPresence(map[string]any{"name": "alice", "cursor": i}); err != nil {
			panic(err)
		}
		select {
		case ev := <-sub.C:
			fmt.Println("bob sees alice:", ev.Peer == alice.ID(), ev.State != nil)
		case <-time.After(100 * time.Millisecond):
			continue
		case <-timeout:
			panic("no presence")
		}
		break
	}
	fmt.Println("entries on bob:", len(db.Presence()))
	_ = da.ClearPresence()
	for ev := range sub.C {
		if ev.State == nil {
			fmt.Println("alice left")
			break
		}
	}
	// Output:
	// bob sees alice: true true
	// entries on bob: 1
	// alice left
}
