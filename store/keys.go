package store

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/concord-p2p/concord/crdt"
	"github.com/ipfs/go-datastore"
)

// Key layout (DESIGN.md, "Storage"):
//
//	/docs/<doc>/log/<replica>/<seq>   logRecord (seq: 16 lower-case hex digits)
//	/docs/<doc>/snap                  snapRecord
//	/docs/<doc>/compacting            intentRecord (present only mid-compaction)
//	/docs/<doc>/acked                 ackRecord (outbox floor)
//	/docs/<doc>/outbox/<seq>          outboxRecord
//	/docs/<doc>/forks/<replica>/<seq>/<id>  logRecord of a fork proof
//	/peers/<id>                       peerRecord
//	/node/key, /node/schema, /node/incarnation
//
// <doc>, <replica> and <id> are escaped by escapeSegment so that any UTF-8
// string (including "", ".", ".." and strings holding '/') maps to exactly one
// path segment that go-datastore's key cleaning leaves untouched.

const (
	nsDocs  = "/docs"
	nsPeers = "/peers"
)

var (
	keyNodeKey         = datastore.NewKey("/node/key")
	keyNodeSchema      = datastore.NewKey("/node/schema")
	keyNodeIncarnation = datastore.NewKey("/node/incarnation")
)

// escapeSegment maps s to "=" followed by s with every byte outside
// [A-Za-z0-9_-] written as %XX. The leading "=" makes the empty string and
// "."/".." safe.
func escapeSegment(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 1)
	b.WriteByte('=')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// unescapeSegment inverts escapeSegment; it rejects anything escapeSegment
// would not produce, so every key has exactly one name.
func unescapeSegment(seg string) (string, error) {
	if len(seg) == 0 || seg[0] != '=' {
		return "", fmt.Errorf("segment %q: missing '=' prefix", seg)
	}
	seg = seg[1:]
	var b strings.Builder
	b.Grow(len(seg))
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-':
			b.WriteByte(c)
		case c == '%':
			if i+2 >= len(seg) {
				return "", fmt.Errorf("segment %q: short escape", seg)
			}
			v, err := strconv.ParseUint(seg[i+1:i+3], 16, 8)
			if err != nil || seg[i+1] >= 'a' || seg[i+2] >= 'a' {
				return "", fmt.Errorf("segment %q: bad escape", seg)
			}
			c := byte(v)
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
				return "", fmt.Errorf("segment %q: needless escape", seg)
			}
			b.WriteByte(c)
			i += 2
		default:
			return "", fmt.Errorf("segment %q: unescaped byte %q", seg, c)
		}
	}
	return b.String(), nil
}

func seqSegment(seq uint64) string {
	const hex = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hex[seq&15]
		seq >>= 4
	}
	return string(b[:])
}

func parseSeqSegment(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("sequence segment %q: want 16 hex digits", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, fmt.Errorf("sequence segment %q: not lower-case hex", s)
		}
	}
	return strconv.ParseUint(s, 16, 64)
}

func docPrefix(doc string) string { return nsDocs + "/" + escapeSegment(doc) }

func logPrefix(doc string) string { return docPrefix(doc) + "/log" }

func logReplicaPrefix(doc string, r crdt.ReplicaID) string {
	return logPrefix(doc) + "/" + escapeSegment(string(r))
}

func logKey(doc string, r crdt.ReplicaID, seq uint64) datastore.Key {
	return datastore.RawKey(logReplicaPrefix(doc, r) + "/" + seqSegment(seq))
}

// logKeyIn builds a log key from a precomputed logReplicaPrefix.
func logKeyIn(prefix string, seq uint64) datastore.Key {
	return datastore.RawKey(prefix + "/" + seqSegment(seq))
}

func snapKey(doc string) datastore.Key   { return datastore.RawKey(docPrefix(doc) + "/snap") }
func intentKey(doc string) datastore.Key { return datastore.RawKey(docPrefix(doc) + "/compacting") }
func ackedKey(doc string) datastore.Key  { return datastore.RawKey(docPrefix(doc) + "/acked") }

func outboxKey(doc string, seq uint64) datastore.Key {
	return datastore.RawKey(docPrefix(doc) + "/outbox/" + seqSegment(seq))
}

func peerKey(id string) datastore.Key { return datastore.RawKey(nsPeers + "/" + escapeSegment(id)) }

// docKeyKind classifies a key under /docs.
type docKeyKind int

const (
	kindLog docKeyKind = iota + 1
	kindSnap
	kindIntent
	kindAcked
	kindOutbox
	kindFork
)

type parsedDocKey struct {
	kind    docKeyKind
	doc     string
	replica crdt.ReplicaID
	seq     uint64
	id      uint64 // kindFork
}

// replicaSeq parses a replica segment and a sequence segment.
func replicaSeq(rs, ss string) (crdt.ReplicaID, uint64, error) {
	r, err := unescapeSegment(rs)
	if err != nil {
		return "", 0, err
	}
	seq, err := parseSeqSegment(ss)
	if err != nil {
		return "", 0, err
	}
	return crdt.ReplicaID(r), seq, nil
}

// parseDocKey parses any key under /docs written by this package.
func parseDocKey(k string) (parsedDocKey, error) {
	var p parsedDocKey
	rest, ok := strings.CutPrefix(k, nsDocs+"/")
	if !ok {
		return p, fmt.Errorf("key %q: not under %s", k, nsDocs)
	}
	parts := strings.Split(rest, "/")
	doc, err := unescapeSegment(parts[0])
	if err != nil {
		return p, fmt.Errorf("key %q: %w", k, err)
	}
	p.doc = doc
	switch {
	case len(parts) == 4 && parts[1] == "log":
		if p.replica, p.seq, err = replicaSeq(parts[2], parts[3]); err != nil {
			return p, fmt.Errorf("key %q: %w", k, err)
		}
		p.kind = kindLog
	case len(parts) == 5 && parts[1] == "forks":
		if p.replica, p.seq, err = replicaSeq(parts[2], parts[3]); err != nil {
			return p, fmt.Errorf("key %q: %w", k, err)
		}
		if p.id, err = parseSeqSegment(parts[4]); err != nil {
			return p, fmt.Errorf("key %q: %w", k, err)
		}
		p.kind = kindFork
	case len(parts) == 3 && parts[1] == "outbox":
		seq, err := parseSeqSegment(parts[2])
		if err != nil {
			return p, fmt.Errorf("key %q: %w", k, err)
		}
		p.kind, p.seq = kindOutbox, seq
	case len(parts) == 2 && parts[1] == "snap":
		p.kind = kindSnap
	case len(parts) == 2 && parts[1] == "compacting":
		p.kind = kindIntent
	case len(parts) == 2 && parts[1] == "acked":
		p.kind = kindAcked
	default:
		return p, fmt.Errorf("key %q: unknown layout", k)
	}
	return p, nil
}
