package store

import (
	"fmt"
	"hash/crc32"
	"time"

	"github.com/concord-p2p/concord/crdt"
	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-datastore"
)

// schemaVersion is the on-disk layout version written to /node/schema.
const schemaVersion = 1

// Records are CBOR maps with integer keys (keyasint), encoded with Core
// Deterministic Encoding and decoded with explicit limits. New fields get new
// integer keys; unknown fields are ignored so an older reader of the same
// schema version still loads.

type logRecord struct {
	Data []byte `cbor:"1,keyasint"`
	CRC  uint32 `cbor:"2,keyasint"` // CRC-32C of Data
}

type snapRecord struct {
	State []byte            `cbor:"1,keyasint"`
	VV    map[string]uint64 `cbor:"2,keyasint"`
	CRC   uint32            `cbor:"3,keyasint"` // CRC-32C of State
	Clock uint64            `cbor:"4,keyasint,omitempty"`
	Heads [][]byte          `cbor:"5,keyasint,omitempty"`
}

type intentRecord struct {
	VV map[string]uint64 `cbor:"1,keyasint"`
}

type ackRecord struct {
	UpTo uint64 `cbor:"1,keyasint"`
}

type outboxRecord struct {
	Replica string `cbor:"1,keyasint"`
}

type peerRecord struct {
	ID       string   `cbor:"1,keyasint"`
	Addrs    []string `cbor:"2,keyasint"`
	LastSeen int64    `cbor:"3,keyasint"` // Unix nanoseconds, 0 = zero time
}

type nodeKeyRecord struct {
	Key []byte `cbor:"1,keyasint"`
}

type uintRecord struct {
	V uint64 `cbor:"1,keyasint"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// codec holds the encoder and decoder modes. It is immutable after newCodec.
type codec struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

func newCodec() codec {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options; cannot fail
	}
	dec, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  8,
		MaxArrayElements: 1 << 16,
		MaxMapPairs:      1 << 20,
		TagsMd:           cbor.TagsForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return codec{enc: enc, dec: dec}
}

func (c codec) marshal(v any) []byte {
	b, err := c.enc.Marshal(v)
	if err != nil {
		panic(err) // only plain structs of our own are encoded
	}
	return b
}

// unmarshal decodes a record; failures wrap ErrCorrupt and name the key.
func (c codec) unmarshal(k datastore.Key, b []byte, v any) error {
	if err := c.dec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, k, err)
	}
	return nil
}

func (c codec) encodeLog(data []byte) []byte {
	return c.marshal(logRecord{Data: data, CRC: crc32.Checksum(data, castagnoli)})
}

func (c codec) decodeLog(k datastore.Key, b []byte) ([]byte, error) {
	var r logRecord
	if err := c.unmarshal(k, b, &r); err != nil {
		return nil, err
	}
	if crc32.Checksum(r.Data, castagnoli) != r.CRC {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, k)
	}
	if r.Data == nil {
		r.Data = []byte{}
	}
	return r.Data, nil
}

func (c codec) encodeSnap(s Snapshot) []byte {
	return c.marshal(snapRecord{State: s.State, VV: vvToMap(s.VV), CRC: crc32.Checksum(s.State, castagnoli), Clock: s.Clock, Heads: s.Heads})
}

func (c codec) decodeSnap(k datastore.Key, b []byte) (Snapshot, error) {
	var r snapRecord
	if err := c.unmarshal(k, b, &r); err != nil {
		return Snapshot{}, err
	}
	if crc32.Checksum(r.State, castagnoli) != r.CRC {
		return Snapshot{}, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, k)
	}
	return Snapshot{State: r.State, VV: vvFromMap(r.VV), Clock: r.Clock, Heads: r.Heads}, nil
}

func (c codec) encodePeer(p PeerRecord) []byte {
	var ns int64
	if !p.LastSeen.IsZero() {
		ns = p.LastSeen.UnixNano()
	}
	return c.marshal(peerRecord{ID: p.ID, Addrs: p.Addrs, LastSeen: ns})
}

func (c codec) decodePeer(k datastore.Key, b []byte) (PeerRecord, error) {
	var r peerRecord
	if err := c.unmarshal(k, b, &r); err != nil {
		return PeerRecord{}, err
	}
	p := PeerRecord{ID: r.ID, Addrs: r.Addrs}
	if r.LastSeen != 0 {
		p.LastSeen = time.Unix(0, r.LastSeen)
	}
	return p, nil
}

func vvToMap(vv crdt.VersionVector) map[string]uint64 {
	m := make(map[string]uint64, len(vv))
	for r, n := range vv {
		if n > 0 {
			m[string(r)] = n
		}
	}
	return m
}

func vvFromMap(m map[string]uint64) crdt.VersionVector {
	vv := make(crdt.VersionVector, len(m))
	for r, n := range m {
		if n > 0 {
			vv[crdt.ReplicaID(r)] = n
		}
	}
	return vv
}
