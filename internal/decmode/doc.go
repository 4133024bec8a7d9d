// Package decmode caches CBOR decoders by the limits they enforce: building
// a cbor.DecMode allocates tens of kilobytes, too much to do per message.
//
// # Ownership and imports
//
// The package owns the cache and nothing else: which limits exist and how
// a decoder is built from them stay with the decoding package (crdt for
// states and deltas, wire for wire messages). It imports only
// fxamacker/cbor and the standard library.
//
// # Usage
//
//	var modes = decmode.New(func(l Limits) (cbor.DecMode, error) {
//		return cbor.DecOptions{MaxArrayElements: l.MaxArray}.DecMode()
//	})
//	dm, err := modes.Get(lim)
package decmode
