package crdt

import (
	"bytes"
	"encoding/json"
)

// KindAt returns the kind held at path (KindNone when nothing is there).
func (s *State) KindAt(path []string) Kind {
	if len(path) == 0 {
		return KindMap
	}
	return s.lookup(path).kind()
}

// Conflicts returns every value the register at path holds, winner first.
// It returns nil when path holds no register.
func (s *State) Conflicts(path []string) []RegisterValue {
	e := s.lookup(path)
	if e == nil || e.register() == nil || e.register().empty() {
		return nil
	}
	return e.register().conflicts()
}

// Counter returns the value of the counter at path (0 when absent).
func (s *State) Counter(path []string) int64 {
	e := s.lookup(path)
	if e == nil || e.counter() == nil {
		return 0
	}
	return e.counter().sum()
}

// JSON returns the JSON view of the whole document: a register shows its
// winning value, a counter a number, a set a sorted array, a map an object
// with sorted keys.
func (s *State) JSON() json.RawMessage {
	var buf bytes.Buffer
	s.root.writeJSON(&buf)
	return buf.Bytes()
}

// Get returns the JSON view of what path holds, and false when it holds
// nothing. An empty path returns the whole document.
func (s *State) Get(path []string) (json.RawMessage, bool) {
	if len(path) == 0 {
		return s.JSON(), true
	}
	e := s.lookup(path)
	if e.kind() == KindNone {
		return nil, false
	}
	var buf bytes.Buffer
	writeEntry(&buf, e)
	return buf.Bytes(), true
}

// writeEntry writes the JSON view of what e shows.
func writeEntry(buf *bytes.Buffer, e *entry) {
	if k := e.kind(); k != KindNone {
		e.at(k).writeJSON(buf)
		return
	}
	buf.WriteString("null")
}
