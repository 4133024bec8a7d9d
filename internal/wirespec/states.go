package wirespec

import (
	"github.com/concord-p2p/concord/crdt"
)

// buildStates builds one whole state per CRDT kind; each is the join of
// what Alice (a) and Bob (b) wrote, as listed.
func (in *Inputs) buildStates() error {
	a, b := in.Alice.Replica, in.Bob.Replica
	type op struct {
		by  crdt.ReplicaID
		at  crdt.HLC
		ops []crdt.Op
	}
	// run applies each writer's ops to its own state and joins every delta
	// into the result: the writers are concurrent (neither saw the other's).
	run := func(steps ...op) (*crdt.State, error) {
		own := map[crdt.ReplicaID]*crdt.State{a: crdt.New(), b: crdt.New()}
		out := crdt.New()
		for _, s := range steps {
			d, err := own[s.by].Apply(s.by, s.at, s.ops...)
			if err != nil {
				return nil, err
			}
			out.Merge(d)
		}
		return out, nil
	}
	title := []string{"title"}
	var err error
	// Register: a concurrent write each; both values are kept, Bob's wins
	// (higher HLC).
	if in.Register, err = run(
		op{a, HLC(0, 0), []crdt.Op{crdt.Set(title, raw(`"groceries"`))}},
		op{b, HLC(0, 5), []crdt.Op{crdt.Set(title, raw(`"shopping"`))}},
	); err != nil {
		return err
	}
	// Counter: Alice +5 then +1 (her second dot holds her whole
	// contribution, 6, and covers the first), Bob -2: value 4.
	visits := []string{"visits"}
	if in.Counter, err = run(
		op{a, HLC(0, 0), []crdt.Op{crdt.Inc(visits, 5)}},
		op{b, HLC(0, 1), []crdt.Op{crdt.Inc(visits, -2)}},
		op{a, HLC(1, 0), []crdt.Op{crdt.Inc(visits, 1)}},
	); err != nil {
		return err
	}
	// Set: Alice adds "milk", 12 and true, Bob adds "milk" too, Alice
	// removes true: "milk" holds two dots, 12 one.
	items := []string{"items"}
	if in.Set, err = run(
		op{a, HLC(0, 0), []crdt.Op{crdt.Add(items, raw(`"milk"`)), crdt.Add(items, raw(`12`)), crdt.Add(items, raw(`true`))}},
		op{b, HLC(0, 1), []crdt.Op{crdt.Add(items, raw(`"milk"`))}},
		op{a, HLC(1, 0), []crdt.Op{crdt.Remove(items, raw(`true`))}},
	); err != nil {
		return err
	}
	// Map: nested maps, by Alice.
	sa := crdt.New()
	if _, err := sa.Apply(a, HLC(0, 0),
		crdt.Set([]string{"settings", "theme"}, raw(`"dark"`)),
		crdt.Set([]string{"settings", "font", "size"}, raw(`14`)),
		crdt.Set([]string{"settings", "font", "family"}, raw(`"mono"`)),
	); err != nil {
		return err
	}
	in.Map = sa.Clone()
	// Deleting ["settings","font"] from it: a delta holding no value whose
	// context covers Alice's dots 2 and 3 (a dot cloud).
	if in.DeleteMap, err = sa.Apply(a, HLC(1, 0), crdt.Delete([]string{"settings", "font"})); err != nil {
		return err
	}
	// Removal: Alice sets a=1 then b=2 (two deltas); Bob receives only the
	// second, deletes b and sets c=true. Bob's state holds Alice's dot 2
	// without dot 1: a dot cloud.
	sa = crdt.New()
	if _, err := sa.Apply(a, HLC(0, 0), crdt.Set([]string{"a"}, raw(`1`))); err != nil {
		return err
	}
	second, err := sa.Apply(a, HLC(1, 0), crdt.Set([]string{"b"}, raw(`2`)))
	if err != nil {
		return err
	}
	sb := crdt.New()
	sb.Merge(second)
	if _, err := sb.Apply(b, HLC(2, 0), crdt.Delete([]string{"b"}), crdt.Set([]string{"c"}, raw(`true`))); err != nil {
		return err
	}
	in.Removal = sb
	return nil
}
