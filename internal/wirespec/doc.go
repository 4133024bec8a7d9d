// Package wirespec builds the test vectors of WIRE.md — every wire
// message kind, the bytes an author signs, and the CRDT states and deltas
// carried inside — from fixed inputs: two authors with fixed Ed25519 key
// seeds (Ed25519 signatures are deterministic), fixed clocks and fixed
// operations. Its tests check that WIRE.md shows exactly these bytes and
// that the recorded bytes in testdata/ still decode to the same values, so
// a change that alters the wire fails a test.
//
// Run the tests with -update (or CONCORD_WIRESPEC_UPDATE=1, see specdoc)
// only to change the wire on purpose: they then rewrite testdata/ and the
// vector blocks of WIRE.md.
//
// # Ownership and imports
//
// The package owns the vector inputs and nothing of the formats
// themselves, which belong to wire and crdt. It imports the standard
// library, libp2p's core/crypto and core/peer, crdt, wire and
// internal/specdoc; never engine, store or net, whose tests use it.
//
// # Usage
//
//	vs, err := wirespec.Vectors()
//	for _, v := range vs {
//		err := v.Check(recorded[v.ID]) // decodes and compares with the inputs
//	}
package wirespec
