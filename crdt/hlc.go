package crdt

import "fmt"

// HLC is a hybrid logical clock timestamp: the high 48 bits are physical
// milliseconds since the Unix epoch, the low 16 bits a logical counter that
// orders events within one millisecond or while the physical clock lags.
// Timestamps from one replica strictly increase even if its wall clock steps
// back. HLC is a plain value: the caller keeps the last one it issued and
// passes the wall clock in.
type HLC uint64

const hlcLogicalBits = 16

// MakeHLC builds a timestamp from physical milliseconds and a logical counter.
func MakeHLC(physMillis int64, logical uint16) HLC {
	if physMillis < 0 {
		physMillis = 0
	}
	return HLC(uint64(physMillis)<<hlcLogicalBits | uint64(logical))
}

// Physical returns the physical part in Unix milliseconds.
func (h HLC) Physical() int64 { return int64(uint64(h) >> hlcLogicalBits) }

// Logical returns the logical counter.
func (h HLC) Logical() uint16 { return uint16(h) }

// String formats h as "physical.logical".
func (h HLC) String() string { return fmt.Sprintf("%d.%d", h.Physical(), h.Logical()) }

// Now returns the timestamp of a local event that happens after h, given the
// wall clock in Unix milliseconds. The result is > h and ≥ physMillis.
func (h HLC) Now(physMillis int64) HLC {
	p := MakeHLC(physMillis, 0)
	if p > h {
		return p
	}
	if h == ^HLC(0) {
		return h // saturated: never wrap around to the past
	}
	return h + 1 // carries into the physical part when the logical counter wraps
}

// Observe returns the timestamp of a local event that happens after h and
// after receiving a message stamped remote. The result is > h, > remote and
// ≥ physMillis.
func (h HLC) Observe(remote HLC, physMillis int64) HLC {
	if remote > h {
		h = remote
	}
	return h.Now(physMillis)
}
