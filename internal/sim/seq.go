package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/concord-p2p/concord/crdt"
)

// Texts and lists. Writes splice into two texts and a list (one text
// inside the map m, so deletes of m delete it as well as deletes of the
// keys themselves) at random places within the length the writing replica
// sees. Every tracked element is unique in the run: a text inserts code
// points of the private-use areas (3 and 4 bytes of UTF-8), a list inserts
// the strings "#n", among untracked fillers. The simulation records which
// tracked elements acknowledged writes inserted, where, and which ones
// acknowledged writes deleted (a splice's deleted range, or everything a
// delete of the key or of a map above it saw), and checks at the end that
// every element inserted and never deleted is in its sequence, exactly
// once, that no deleted one came back, and that the elements of one
// insert are still in the order they were inserted.

// simSeqSeeds is the share of seeds whose writes edit sequences; they run
// the whole fault mix, snapshots and compaction included (held-back
// sequence changes travel with snapshots: seed 185 of the first runs lost
// one when they did not).
const simSeqSeeds = 0.5

// simSeqs are the sequences writes splice into; no random map op uses
// their keys (m is a map op's key, so they delete m.t now and then).
var simSeqs = []struct {
	path []string
	kind crdt.Kind
}{
	{[]string{"t"}, crdt.KindText}, {[]string{"m", "t"}, crdt.KindText}, {[]string{"l"}, crdt.KindList},
}

// Untracked elements inserted among the tracked ones.
var (
	simFillRunes  = []rune{'a', 'é', '€', '😀'}
	simFillValues = []string{`1`, `"x"`, `null`, `{"v":2}`, `[1,"é"]`}
)

// seqTrack is what acknowledged writes did to the sequences.
type seqTrack struct {
	minted  int             // tracked elements minted (acknowledged or not)
	at      map[string]int  // tracked element → index in simSeqs it was inserted into
	deleted map[string]bool // tracked elements an acknowledged write deleted
	runs    []seqRun        // the tracked elements of each acknowledged insert
}

// seqRun is the tracked elements one splice inserted into simSeqs[k], in
// order.
type seqRun struct {
	k     int
	elems []string
}

// seqView is one sequence as the transaction being drawn sees it: its
// elements as strings (a text's code points, a list's compact JSON).
type seqView struct {
	loaded bool
	exists bool // the key holds this kind of sequence
	elems  []string
}

// seqTxn follows a transaction's effect on the sequences as its ops are
// drawn (none is applied before the transaction is proposed, so the
// replica's state is the one every op starts from).
type seqTxn struct {
	st    *crdt.State
	views [3]seqView
	ins   []seqRun // tracked elements inserted
	dels  []string // tracked elements deleted
	ops   int      // splices drawn
	keyed int      // tracked elements deleted by deletes of keys
}

func (s *sim) seqTrackInit() {
	s.seqs = seqTrack{at: map[string]int{}, deleted: map[string]bool{}}
}

// mint returns a new tracked element for sequence kind k.
func (s *sim) mint(k crdt.Kind) string {
	n := s.seqs.minted
	s.seqs.minted++
	if k == crdt.KindList {
		return fmt.Sprintf(`"#%d"`, n)
	}
	if n%2 == 0 {
		return string(rune(0xE000 + n/2)) // BMP private use: 3 bytes
	}
	return string(rune(0xF0000 + n/2)) // plane 15 private use: 4 bytes
}

// tracked reports whether e is an element minted by mint.
func tracked(e string) bool {
	if strings.HasPrefix(e, `"#`) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(e)
	return r >= 0xE000 && r <= 0xF8FF || r >= 0xF0000 && r <= 0xFFFFD
}

// seqElems returns sequence k of st as elements, and whether st holds it.
func seqElems(st *crdt.State, k int) ([]string, bool) {
	sq := simSeqs[k]
	if st.KindAt(sq.path) != sq.kind {
		return nil, false
	}
	var out []string
	if sq.kind == crdt.KindText {
		t, _ := st.Text(sq.path)
		for _, r := range t {
			out = append(out, string(r))
		}
		return out, true
	}
	vs, _ := st.List(sq.path)
	for _, v := range vs {
		out = append(out, string(v))
	}
	return out, true
}

func (tx *seqTxn) view(k int) *seqView {
	v := &tx.views[k]
	if !v.loaded {
		v.loaded = true
		v.elems, v.exists = seqElems(tx.st, k)
	}
	return v
}

func (tx *seqTxn) deleted(elems []string, byKey bool) {
	for _, e := range elems {
		if tracked(e) {
			tx.dels = append(tx.dels, e)
			if byKey {
				tx.keyed++
			}
		}
	}
}

// apply follows op, drawn next in the transaction.
func (tx *seqTxn) apply(op crdt.Op) {
	for k, sq := range simSeqs {
		switch {
		case op.Kind == crdt.OpDelete && len(op.Path) <= len(sq.path) && slices.Equal(op.Path, sq.path[:len(op.Path)]):
			v := tx.view(k)
			tx.deleted(v.elems, true)
			v.elems, v.exists = nil, false
		case op.Kind == crdt.OpSplice && slices.Equal(op.Path, sq.path):
			v := tx.view(k)
			tx.deleted(v.elems[op.Index:op.Index+op.Del], false)
			var ins []string
			if op.Seq == crdt.KindText {
				for _, r := range op.Text {
					ins = append(ins, string(r))
				}
			} else {
				for _, val := range op.Values {
					ins = append(ins, string(val))
				}
			}
			v.elems = slices.Insert(slices.Delete(v.elems, op.Index, op.Index+op.Del), op.Index, ins...)
			v.exists = true
			run := seqRun{k: k}
			for _, e := range ins {
				if tracked(e) {
					run.elems = append(run.elems, e)
				}
			}
			if len(run.elems) > 0 {
				tx.ins = append(tx.ins, run)
			}
		}
	}
}

// seqOp draws a splice (or, now and then, a delete of a sequence's key)
// for the transaction tx.
func (s *sim) seqOp(tx *seqTxn) crdt.Op {
	k := []int{0, 0, 0, 1, 1, 2, 2}[s.rng.IntN(7)]
	sq := simSeqs[k]
	path := slices.Clone(sq.path)
	v := tx.view(k)
	n := len(v.elems)
	if s.chance(0.04) {
		return crdt.Delete(path)
	}
	tx.ops++
	index := s.rng.IntN(n + 1)
	del := 0
	if index < n && s.chance(0.4) {
		del = 1 + s.rng.IntN(min(n-index, 4))
	}
	if n > 0 && s.chance(0.03) {
		index, del = 0, n // everything
	}
	if del > 0 && v.exists && s.chance(0.3) {
		return crdt.SpliceDelete(path, index, del)
	}
	ins := s.rng.IntN(5)
	if del == 0 && ins == 0 {
		ins = 1
	}
	if sq.kind == crdt.KindList {
		vals := make([]json.RawMessage, ins)
		for j := range vals {
			if s.chance(0.7) {
				vals[j] = json.RawMessage(s.mint(crdt.KindList))
			} else {
				vals[j] = json.RawMessage(simFillValues[s.rng.IntN(len(simFillValues))])
			}
		}
		return crdt.SpliceList(path, index, del, vals...)
	}
	var b strings.Builder
	for range ins {
		if s.chance(0.7) {
			b.WriteString(s.mint(crdt.KindText))
		} else {
			b.WriteRune(simFillRunes[s.rng.IntN(len(simFillRunes))])
		}
	}
	return crdt.Splice(path, index, del, b.String())
}

// seqAcked records what an acknowledged transaction did to the sequences.
func (s *sim) seqAcked(tx *seqTxn) {
	for _, run := range tx.ins {
		for _, e := range run.elems {
			s.seqs.at[e] = run.k
		}
	}
	s.seqs.runs = append(s.seqs.runs, tx.ins...)
	for _, e := range tx.dels {
		s.seqs.deleted[e] = true
	}
	s.stats.seqOps += tx.ops
	s.stats.seqDeleted += len(tx.dels)
	s.stats.keyDeleted += tx.keyed
}

// checkSeqs checks the sequences of the converged state st against what
// acknowledged writes did to them.
func (s *sim) checkSeqs(st *crdt.State) {
	pos := map[string]int{} // tracked element → position in its sequence
	for k, sq := range simSeqs {
		elems, _ := seqElems(st, k)
		for p, e := range elems {
			if !tracked(e) {
				continue
			}
			name := strings.Join(sq.path, ".")
			switch at, ok := s.seqs.at[e]; {
			case !ok:
				s.fail("%s holds %+q, which no acknowledged write inserted", name, e)
			case at != k:
				s.fail("%s holds %+q, inserted into %s", name, e, strings.Join(simSeqs[at].path, "."))
			case s.seqs.deleted[e]:
				s.fail("%s holds %+q, which an acknowledged write deleted", name, e)
			}
			if _, dup := pos[e]; dup {
				s.fail("%s holds %+q twice", name, e)
			}
			pos[e] = p
		}
	}
	for e, k := range s.seqs.at {
		if _, ok := pos[e]; !ok && !s.seqs.deleted[e] {
			s.fail("%s lacks %+q, inserted by an acknowledged write and never deleted", strings.Join(simSeqs[k].path, "."), e)
		}
	}
	for _, run := range s.seqs.runs {
		last, prev := -1, ""
		for _, e := range run.elems {
			p, ok := pos[e]
			if !ok {
				continue
			}
			if p < last {
				s.fail("%+q, inserted after %+q, is now before it", e, prev)
			}
			last, prev = p, e
		}
	}
	s.logf("sequences: %d tracked elements inserted, %d deleted, %d present", len(s.seqs.at), len(s.seqs.deleted), len(pos))
}
