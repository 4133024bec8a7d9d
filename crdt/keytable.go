package crdt

import "hash/maphash"

// keySeed seeds the hash of map keys. A key's hash is never encoded nor
// shown, so it may differ from one process to the next — and must, for
// the keys are chosen by peers: with a known hash function one could
// send a map whose keys all land in one probe sequence.
var keySeed = maphash.MakeSeed()

// keyTable is a hash table of a map's entries by key (a keyMap's past the
// inline one), with open addressing: the entry of slot i is ents[i], and
// tags[i] tells what the slot holds — slotEmpty, slotDeleted, or a key
// whose hash has top bits tagOf. A probe reads the tags, one byte a slot
// (a 100k-key map's are 128 KiB), and an entry only where its tag
// matches; the entry holds its key. hashes keeps each key's hash, so
// that resizing moves the keys without reading their entries. Compared
// with a Go map of strings it holds one pointer a slot (the collector
// marks fewer), 13 bytes a slot rather than 25, and no key a second time.
type keyTable struct {
	tags   []uint8 // len is a power of two (or 0)
	hashes []uint32
	ents   []*entry
	n      int // keys held
	used   int // slots not empty: keys and deleted ones
	walks  int // walks (all) under way: the table must not resize
}

const (
	slotEmpty   = 0
	slotDeleted = 1
	// maxLoad16ths bounds the slots used (keys and deleted) to 13/16 of
	// them: linear probing stays short, and a probe always ends at an
	// empty slot.
	maxLoad16ths = 13
)

// keyHash is k's hash. A key's slot comes from its low bits, its tag
// from its top ones.
func keyHash(k string) uint32 { return uint32(maphash.String(keySeed, k)) }

// tagOf is the tag of a key of hash h: its top 7 bits, with the top bit
// set so that it is neither slotEmpty nor slotDeleted.
func tagOf(h uint32) uint8 { return uint8(h>>25) | 0x80 }

// get returns the entry at k, or nil.
func (t *keyTable) get(k string) *entry {
	if t.n == 0 {
		return nil
	}
	h := keyHash(k)
	tag, mask := tagOf(h), uint64(len(t.tags)-1)
	for i := uint64(h) & mask; ; i = (i + 1) & mask {
		switch t.tags[i] {
		case slotEmpty:
			return nil
		case tag:
			if e := t.ents[i]; e.key == k {
				return e
			}
		}
	}
}

// put makes e the entry at k (e is not nil, and e.key is k).
func (t *keyTable) put(k string, e *entry) {
	if (t.used+1)*16 > len(t.tags)*maxLoad16ths {
		t.resize((t.n + 1) * 3 / 2)
	}
	h := keyHash(k)
	tag, mask := tagOf(h), uint64(len(t.tags)-1)
	free := -1 // the first deleted slot probed, where k goes when new
	for i := uint64(h) & mask; ; i = (i + 1) & mask {
		switch c := t.tags[i]; {
		case c == slotEmpty:
			if free < 0 {
				free = int(i)
				t.used++
			}
			t.tags[free], t.hashes[free], t.ents[free] = tag, h, e
			t.n++
			return
		case c == slotDeleted:
			if free < 0 {
				free = int(i)
			}
		case c == tag && t.ents[i].key == k:
			t.ents[i] = e
			return
		}
	}
}

// del removes the entry at k.
func (t *keyTable) del(k string) {
	if t.n == 0 {
		return
	}
	h := keyHash(k)
	tag, mask := tagOf(h), uint64(len(t.tags)-1)
	for i := uint64(h) & mask; ; i = (i + 1) & mask {
		switch t.tags[i] {
		case slotEmpty:
			return
		case tag:
			if t.ents[i].key != k {
				continue
			}
			t.ents[i] = nil
			t.n--
			if t.tags[(i+1)&mask] == slotEmpty {
				// No probe passes through i to reach a later slot.
				t.tags[i] = slotEmpty
				t.used--
			} else {
				t.tags[i] = slotDeleted
			}
			return
		}
	}
}

// reserve makes room for n keys without resizing again.
func (t *keyTable) reserve(n int) {
	if (n+1)*16 > len(t.tags)*maxLoad16ths {
		t.resize(n + 1)
	}
}

// resize moves the keys to a table with room for n (at least t.n), and
// no deleted slots.
func (t *keyTable) resize(n int) {
	if t.walks > 0 {
		// A walk goes on over the old arrays, where a later delete no
		// longer lands: it would yield deleted entries.
		panic("crdt: a key added to a map while the map is walked")
	}
	size := 8
	for n*16 > size*maxLoad16ths {
		size *= 2
	}
	tags, hashes, ents := t.tags, t.hashes, t.ents
	t.tags, t.hashes, t.ents = make([]uint8, size), make([]uint32, size), make([]*entry, size)
	t.used = t.n
	mask := uint64(size - 1)
	for j, e := range ents {
		if tags[j] < 0x80 {
			continue
		}
		h := hashes[j]
		i := uint64(h) & mask
		for t.tags[i] != slotEmpty {
			i = (i + 1) & mask
		}
		t.tags[i], t.hashes[i], t.ents[i] = tags[j], h, e
	}
}

// all yields every key and its entry, in slot order. The caller may
// delete the key it is given, but must not add keys.
func (t *keyTable) all(yield func(string, *entry) bool) {
	t.walks++
	defer func() { t.walks-- }()
	ents := t.ents
	for i := range ents {
		if e := ents[i]; e != nil && !yield(e.key, e) {
			return
		}
	}
}
