package crdt_test

import (
	"encoding/json"
	"fmt"

	"github.com/concord-p2p/concord/crdt"
)

func Example() {
	a, b := crdt.New(), crdt.New()
	d1, _ := a.Apply("replica-a", 1, crdt.Set([]string{"title"}, json.RawMessage(`"groceries"`)),
		crdt.Add([]string{"items"}, json.RawMessage(`"milk"`)))
	d2, _ := b.Apply("replica-b", 1, crdt.Add([]string{"items"}, json.RawMessage(`"eggs"`)),
		crdt.Inc([]string{"visits"}, 2))
	wire := crdt.EncodeDelta(d1, "replica-a")
	got, err := crdt.DecodeDelta(wire, "replica-a", crdt.DeltaLimits())
	if err != nil {
		panic(err)
	}
	b.Merge(got)
	a.Merge(d2)
	fmt.Println(string(a.JSON()))
	fmt.Println(string(b.JSON()))
	// Output:
	// {"items":["eggs","milk"],"title":"groceries","visits":2}
	// {"items":["eggs","milk"],"title":"groceries","visits":2}
}
