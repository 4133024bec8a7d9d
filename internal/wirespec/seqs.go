package wirespec

import (
	"fmt"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// SeqDoc is the document of the sequence envelopes (a history of its own,
// apart from the "todo" scenario).
const SeqDoc = "notes"

// Seqs are the inputs of the text and list vectors.
type Seqs struct {
	// Text is the join of three splices of the text at "note":
	//   Alice (T0+3s):   splice 0 0 "hello"   made A:1, elements A:2..A:6
	//   Bob, who holds Alice's (T0+3.5s):
	//                    splice 5 0 " world"  elements B:1..B:6
	//   Alice, concurrently with Bob (T0+4s):
	//                    splice 0 1 "H"       delete A:7 (of A:2), element A:8
	Text *crdt.State
	// List is the join of three splices of the list at "items":
	//   Alice (T0):      splice 0 0 "milk" "eggs" "tea"   made A:1, A:2..A:4
	//   Bob, who holds Alice's (T0+1s):
	//                    splice 1 1 {"qty":2,"what":"flour"}
	//                                                     delete B:1 (of A:3), element B:2
	//   Alice, concurrently with Bob (T0+2s):
	//                    splice 3 0 true                  element A:5
	List *crdt.State
	// Replace is Alice's splice 0 1 "H" of Text: a delete and an insert
	// in one delta.
	Replace *crdt.State
	// Create is Alice's first delta of the text alone (splice 0 0
	// "hello"), Keystroke her next one: splice 5 0 "!" (element A:7).
	Create, Keystroke *crdt.State
	// Delete is Bob's delta deleting the key "note" once he holds Text:
	// it covers the creation dot A:1 and deletes the visible elements he
	// saw with one dot, B:7.
	Delete *crdt.State
	// EnvCreate and EnvKeystroke are Alice's seqs 1 and 2 of SeqDoc, their
	// payloads Create and Keystroke, flagged wire.FeatureSequences.
	EnvCreate, EnvKeystroke *wire.Envelope
	// Backspace is Alice's next delta after Keystroke: splice 5 1 (delete
	// dot A:8, of A:7). EnvBackspace is her seq 3 of SeqDoc (T0+3.4s),
	// its payload Backspace in the compact splice form, flagged
	// wire.FeatureSequences and wire.FeatureCompactSplice.
	Backspace    *crdt.State
	EnvBackspace *wire.Envelope
	// Tea is Alice's splice 3 0 true of List: element A:5, a list insert.
	Tea *crdt.State
}

// buildSeqs builds the sequence inputs.
func (in *Inputs) buildSeqs() error {
	a, b := in.Alice.Replica, in.Bob.Replica
	note, items := []string{"note"}, []string{"items"}
	sq := &in.Seqs

	// The text.
	sa := crdt.New()
	first, err := sa.Apply(a, HLC(3000, 0), crdt.Splice(note, 0, 0, "hello"))
	if err != nil {
		return err
	}
	sb := crdt.New()
	sb.Merge(first)
	world, err := sb.Apply(b, HLC(3500, 0), crdt.Splice(note, 5, 0, " world"))
	if err != nil {
		return err
	}
	capital, err := sa.Apply(a, HLC(4000, 0), crdt.Splice(note, 0, 1, "H"))
	if err != nil {
		return err
	}
	sq.Replace = capital
	sq.Text = crdt.New()
	for _, d := range []*crdt.State{first, world, capital} {
		sq.Text.Merge(d)
	}
	sb.Merge(capital)
	if sq.Delete, err = sb.Apply(b, HLC(5000, 0), crdt.Delete(note)); err != nil {
		return err
	}

	// The keystroke, in a history of its own.
	sk := crdt.New()
	if sq.Create, err = sk.Apply(a, HLC(3000, 0), crdt.Splice(note, 0, 0, "hello")); err != nil {
		return err
	}
	if sq.Keystroke, err = sk.Apply(a, HLC(3200, 0), crdt.Splice(note, 5, 0, "!")); err != nil {
		return err
	}
	sq.EnvCreate = &wire.Envelope{Doc: SeqDoc, Origin: a, Seq: 1, HLC: uint64(HLC(3000, 0)), Dot: 6,
		Features: wire.FeatureSequences, Payload: crdt.EncodeDelta(sq.Create, a)}
	sq.EnvKeystroke = &wire.Envelope{Doc: SeqDoc, Origin: a, Seq: 2, HLC: uint64(HLC(3200, 0)), Dot: 7,
		Features: wire.FeatureSequences, Payload: crdt.EncodeDelta(sq.Keystroke, a)}
	if sq.Backspace, err = sk.Apply(a, HLC(3400, 0), crdt.SpliceDelete(note, 5, 1)); err != nil {
		return err
	}
	back, ok := crdt.EncodeDeltaCompact(sq.Backspace, a)
	if !ok {
		return fmt.Errorf("the backspace has no compact form")
	}
	sq.EnvBackspace = &wire.Envelope{Doc: SeqDoc, Origin: a, Seq: 3, HLC: uint64(HLC(3400, 0)), Dot: 8,
		Features: wire.FeatureSequences | wire.FeatureCompactSplice, Payload: back}
	for _, e := range []*wire.Envelope{sq.EnvCreate, sq.EnvKeystroke, sq.EnvBackspace} {
		if err := wire.SignEnvelope(in.Alice.Priv, e); err != nil {
			return err
		}
	}

	// The list.
	la := crdt.New()
	made, err := la.Apply(a, HLC(0, 0), crdt.SpliceList(items, 0, 0, raw(`"milk"`), raw(`"eggs"`), raw(`"tea"`)))
	if err != nil {
		return err
	}
	lb := crdt.New()
	lb.Merge(made)
	flour, err := lb.Apply(b, HLC(1000, 0), crdt.SpliceList(items, 1, 1, raw(`{"qty":2,"what":"flour"}`)))
	if err != nil {
		return err
	}
	tea, err := la.Apply(a, HLC(2000, 0), crdt.SpliceList(items, 3, 0, raw(`true`)))
	if err != nil {
		return err
	}
	sq.Tea = tea
	sq.List = crdt.New()
	for _, d := range []*crdt.State{made, flour, tea} {
		sq.List.Merge(d)
	}
	return nil
}
