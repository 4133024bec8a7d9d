// Package crdt is Concord's pure core: delta-state CRDTs for JSON-like
// documents, their causal context, a hybrid logical clock and a
// deterministic CBOR codec. It starts no goroutines, does no I/O and reads no
// clock: replica IDs and timestamps are arguments.
//
// A document (State) is an observed-remove map whose values are
// multi-value registers of JSON, PN-counters, add-wins observed-remove sets
// of JSON scalars, and nested maps. Every mutation returns a delta — a small
// State — and Merge is a join (commutative, associative, idempotent), so
// deltas may be lost and re-sent, duplicated or reordered (Almeida, Shoker,
// Baquero: "Delta State Replicated Data Types").
//
// Each kind is one file — register.go, counter.go, set.go, mapkind.go,
// seqkind.go (texts and lists) — holding its content at a key and what
// depends on the kind: the dots a write covers in it, its merge, its JSON
// view, its encoding and its part in splitting a delta. A key holds one
// store per kind it has received, behind one internal interface, and the
// rest of the package (state.go, merge.go, view.go, codec.go, ops.go,
// split.go) loops over them.
//
// # Causal context
//
// Every value is tagged with dots (replica, counter). A state's causal
// context is a version vector plus a dot cloud for counters seen out of
// order; the cloud folds back into the vector as gaps fill. Removes carry
// the dots they observed in the context of their delta instead of leaving
// tombstones, so a fully synced document keeps one vector entry per replica
// and nothing per removed element.
//
// # Kind resolution
//
// Locally, an op whose kind conflicts with what a key shows (inc on a
// register, set on a map) is refused with ErrTypeConflict. Concurrent writes
// of different kinds at one key are all kept; the key shows the highest kind
// in the order map > list > text > set > counter > register, the same on
// every replica. The next local write at that key (or below it) covers the
// dots of the other kinds it observed and so resolves the conflict.
//
// Counters are causal counters: each replica keeps one dot holding its whole
// contribution, so a remove concurrent with an increment by replica R keeps
// R's increment and, if R had incremented before without seeing the remove,
// R's earlier contribution too.
//
// # Ownership and imports
//
// The package owns the CRDT types and their merge rules, the causal
// context, the HLC, the validation of paths and values, the splitting of
// deltas (SplitDelta) and the CBOR encoding of states and deltas with its
// decoding limits. It owns no I/O, no networking, no persistence and no
// replica numbering policy. It may import only the standard library,
// fxamacker/cbor and internal/decmode (a cache of CBOR decoders): no other
// Concord package, no go-datastore, no libp2p. Every other package may
// import it.
//
// # Usage
//
//	doc := crdt.New()
//	var clock crdt.HLC
//	clock = clock.Now(time.Now().UnixMilli())
//	delta, err := doc.Apply("replica-a", clock,
//		crdt.Set([]string{"title"}, json.RawMessage(`"groceries"`)),
//		crdt.Add([]string{"items"}, json.RawMessage(`"milk"`)))
//	wire := crdt.EncodeDelta(delta, "replica-a")
//	// on another replica:
//	d, err := crdt.DecodeDelta(wire, "replica-a", crdt.DeltaLimits())
//	other.Merge(d)
//	fmt.Println(string(other.JSON())) // {"items":["milk"],"title":"groceries"}
package crdt
