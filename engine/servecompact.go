package engine

import (
	"github.com/concord-p2p/concord/store"
	"github.com/concord-p2p/concord/wire"
)

// readableOwn returns own entry e as a peer that did not announce
// wire.FeatureCompactSplice can read it: a compact single delta becomes
// an aggregate of it and a neighbouring own single delta (the one before,
// else the one after), whose payload is in the classic form — the author
// alone can re-sign, and an aggregate is a new envelope, not a second
// version of the delta. Any other entry, or one with no such neighbour,
// is returned as it is (withoutSeqs then leaves a compact one out).
func (d *logReader) readableOwn(e store.Entry) store.Entry {
	if !d.noCompact || d.legacy {
		return e
	}
	env, err := wire.DecodeEnvelope(e.Data, StoredLimits)
	if err != nil || env.Last != 0 || !env.Features.Has(wire.FeatureCompactSplice) {
		return e
	}
	single := func(seq uint64) (store.Entry, bool) {
		if seq == 0 {
			return store.Entry{}, false
		}
		n, err := d.st.Get(d.self, seq)
		if err != nil {
			return store.Entry{}, false
		}
		if _, marker := wire.DecodeMarker(n.Data); marker {
			return store.Entry{}, false
		}
		nenv, err := wire.DecodeEnvelope(n.Data, StoredLimits)
		if err != nil || nenv.Last != 0 {
			return store.Entry{}, false
		}
		return n, true
	}
	var run []store.Entry
	if prev, ok := single(e.Seq - 1); ok {
		run = []store.Entry{prev, e}
	} else if next, ok := single(e.Seq + 1); ok {
		run = []store.Entry{e, next}
	} else {
		return e
	}
	agg, err := d.aggregate(run)
	if err != nil {
		return e
	}
	return agg
}
