// Package concord keeps application state in sync between peers with no
// central server.
//
// A Node is one peer: a libp2p host, a durable store (Pebble, or memory)
// and the documents it hosts. A Doc is a JSON-like tree of CRDTs —
// registers, counters, sets and nested maps — that converges on every peer
// holding it. Local writes succeed offline and are durable (synced to disk)
// when the call returns; they are gossiped to peers as signed deltas over
// GossipSub, kept in an outbox until a peer acknowledges them, and whatever
// gossip misses is repaired by an anti-entropy exchange when peers
// (re)connect or a summary beacon shows a gap.
//
// # Usage
//
//	node, err := concord.Open(ctx, concord.Config{DataDir: "./data"})
//	if err != nil { ... }
//	defer node.Close()
//	_ = node.Connect(ctx, "/ip4/192.0.2.7/tcp/4001/p2p/12D3Koo...")
//	doc, err := node.Doc(ctx, "groceries")
//	err = doc.Update(ctx, func(tx *concord.Txn) {
//		tx.Set([]string{"title"}, "Saturday").Add([]string{"items"}, "milk")
//	})
//	fmt.Println(string(doc.JSON())) // {"items":["milk"],"title":"Saturday"}
//	for ch := range doc.Subscribe(64).C { ... } // local and remote changes
//
// Presence is ephemeral per-document state (who is here, their cursor),
// never stored: each peer's entries, and its clients', signed and
// gossiped on the document's presence topic, gone from every view within
// Config.PresenceTTL (30 s) after their owner stops refreshing them:
//
//	err = doc.SetPresence(map[string]any{"name": "ann", "cursor": "…"})
//	for ev := range doc.SubscribePresence(64).C { ... } // everyone's changes
//	entries := doc.Presence()
//
// Errors from writes wrap the crdt package's sentinels (crdt.ErrTypeConflict
// for an op of the wrong kind, crdt.ErrInvalidPath, crdt.ErrInvalidValue,
// crdt.ErrInvalidOp) or this package's (ErrTooLarge, ErrNotWriter,
// ErrStorage, ErrClosed).
//
// The packages underneath: crdt (the pure CRDT core and codec), engine
// (one document's replication as a deterministic state machine), wire (the
// byte formats), store (the only package that touches disk), net
// (libp2p host, gossip, the sync stream, peer supervisor, metrics) and
// internal/presence (the rules of presence).
//
// This package owns the Node and Doc API, configuration, every goroutine
// (a node-wide worker pool carries out what the documents' engines ask
// for) and shutdown. It may import every package above; none of them
// imports it.
package concord
