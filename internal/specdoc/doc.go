// Package specdoc reads and rewrites the machine-checked parts of WIRE.md,
// the byte-level specification of Concord's wire and log formats, so that
// the document and the code cannot drift apart.
//
// WIRE.md marks what tests check with fenced blocks whose info string names
// a kind and an id:
//
//	```hex id=envelope-single
//	a900010101…        # text after '#' on a line is a comment
//	```
//	```cbor-diag id=envelope-single
//	{0: 1, 1: 1, …}
//	```
//	```text id=topic-todo
//	/concord/doc/todo/1
//	```
//	```constants
//	wire.ProtocolVersion = 1
//	```
//
// A hex block holds the bytes of one test vector (whitespace and comments
// ignored); mode=decode marks bytes that an implementation must decode but
// need not produce byte for byte (compressed frames). A cbor-diag block is
// the CBOR diagnostic notation of the hex block with the same id, as Diag
// renders it. A text block holds one exact string. Constants blocks list
// "name = value" lines; the package that owns a name checks its value.
//
// Each package's tests check the blocks of the vectors it can build and,
// when Updating reports true, rewrite their bodies instead (the prose
// around them is written by hand).
//
// # Ownership and imports
//
// The package owns the block syntax, the diagnostic notation and locating
// WIRE.md; it knows no message. It imports only the standard library, so
// that the tests of every package (wire and crdt included) can use it.
//
// # Usage
//
//	spec, err := specdoc.Load()
//	want, err := spec.Hex("envelope-single")
//	if specdoc.Updating() {
//		err = spec.SetHex("envelope-single", got) // and spec.Save()
//	}
package specdoc
