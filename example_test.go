package concord_test

import (
	"context"
	"fmt"
	"time"

	"github.com/concord-p2p/concord"
)

// Two peers in one process: a write on one shows up on the other.
func Example() {
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
	da, _ := alice.Doc(ctx, "groceries")
	db, _ := bob.Doc(ctx, "groceries")

	// One transaction: one delta, applied whole or not at all.
	err = da.Update(ctx, func(tx *concord.Txn) {
		tx.Set([]string{"title"}, "Saturday").Add([]string{"items"}, "milk").Inc([]string{"visits"}, 1)
	})
	if err != nil {
		panic(err)
	}
	_ = db.Add(ctx, []string{"items"}, "eggs")

	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if string(da.JSON()) == string(db.JSON()) && len(db.JSON()) > 40 {
			break
		}
	}
	fmt.Println(string(db.JSON()))
	// Output: {"items":["eggs","milk"],"title":"Saturday","visits":1}
}

// Subscribe delivers every applied change, local or remote.
func ExampleDoc_Subscribe() {
	ctx := context.Background()
	node, err := concord.Open(ctx, concord.Config{})
	if err != nil {
		panic(err)
	}
	defer node.Close()
	doc, _ := node.Doc(ctx, "settings")
	sub := doc.Subscribe(16)
	defer sub.Close()
	_ = doc.Set(ctx, []string{"theme", "color"}, "dark")
	ch := <-sub.C
	fmt.Println(ch.Local, ch.Paths)
	v, _ := doc.Get("theme")
	fmt.Println(string(v))
	// Output:
	// true [[theme color]]
	// {"color":"dark"}
}

// A register written concurrently keeps every value; the view shows the
// winner and Conflicts shows them all.
func ExampleDoc_Conflicts() {
	ctx := context.Background()
	a, _ := concord.Open(ctx, concord.Config{})
	defer a.Close()
	b, _ := concord.Open(ctx, concord.Config{})
	defer b.Close()
	da, _ := a.Doc(ctx, "d")
	db, _ := b.Doc(ctx, "d")
	_ = da.Set(ctx, []string{"owner"}, "ann") // while apart
	_ = db.Set(ctx, []string{"owner"}, "bob")
	_ = b.Connect(ctx, a.Addrs()[0]) // anti-entropy runs on connect
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if len(da.Conflicts("owner")) == 2 && len(db.Conflicts("owner")) == 2 {
			break
		}
	}
	fmt.Println(len(da.Conflicts("owner")), string(da.JSON()) == string(db.JSON()))
	// Output: 2 true
}
