package crdt

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
)

// RegisterValue is one of the values a register holds.
type RegisterValue struct {
	Value   json.RawMessage
	HLC     HLC
	Replica ReplicaID
}

// regWins reports whether a beats b: higher HLC, then higher replica, then
// higher counter. Every replica computes the same winner.
func regWins(a, b regDot) bool {
	if a.hlc != b.hlc {
		return a.hlc > b.hlc
	}
	if a.dot.Replica != b.dot.Replica {
		return a.dot.Replica > b.dot.Replica
	}
	return a.dot.Counter > b.dot.Counter
}

func (e *entry) winner() regDot {
	w := e.reg[0]
	for _, r := range e.reg[1:] {
		if regWins(r, w) {
			w = r
		}
	}
	return w
}

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
	if e == nil || len(e.reg) == 0 {
		return nil
	}
	regs := append([]regDot(nil), e.reg...)
	sort.Slice(regs, func(i, j int) bool { return regWins(regs[i], regs[j]) })
	out := make([]RegisterValue, len(regs))
	for i, r := range regs {
		out[i] = RegisterValue{Value: append(json.RawMessage(nil), r.val...), HLC: r.hlc, Replica: r.dot.Replica}
	}
	return out
}

// Counter returns the value of the counter at path (0 when absent).
func (s *State) Counter(path []string) int64 {
	e := s.lookup(path)
	if e == nil {
		return 0
	}
	var n int64
	for _, c := range e.ctr {
		n += c.n
	}
	return n
}

// JSON returns the JSON view of the whole document: a register shows its
// winning value, a counter a number, a set a sorted array, a map an object
// with sorted keys.
func (s *State) JSON() json.RawMessage {
	var buf bytes.Buffer
	writeMap(&buf, s.root)
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

func writeMap(buf *bytes.Buffer, n *mapNode) {
	buf.WriteByte('{')
	if n != nil {
		keys := make([]string, 0, len(n.kids))
		for k, e := range n.kids {
			if e.kind() != KindNone {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteByte(':')
			writeEntry(buf, n.kids[k])
		}
	}
	buf.WriteByte('}')
}

func writeEntry(buf *bytes.Buffer, e *entry) {
	switch e.kind() {
	case KindMap:
		writeMap(buf, e.sub)
	case KindSet:
		elems := make([]string, 0, len(e.set))
		for el := range e.set {
			elems = append(elems, el)
		}
		sort.Slice(elems, func(i, j int) bool { return scalarLess(elems[i], elems[j]) })
		buf.WriteByte('[')
		for i, el := range elems {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(el)
		}
		buf.WriteByte(']')
	case KindCounter:
		var n int64
		for _, c := range e.ctr {
			n += c.n
		}
		buf.WriteString(strconv.FormatInt(n, 10))
	case KindRegister:
		buf.Write(e.winner().val)
	case KindText:
		b, _ := json.Marshal(e.text.view().String()) // valid UTF-8: cannot fail
		buf.Write(b)
	case KindList:
		buf.WriteByte('[')
		for i, v := range e.list.view().Values() {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(v)
		}
		buf.WriteByte(']')
	default:
		buf.WriteString("null")
	}
}

// scalarRank orders JSON scalars by type: null, false, true, numbers, strings.
func scalarRank(s string) int {
	switch {
	case s == "null":
		return 0
	case s == "false":
		return 1
	case s == "true":
		return 2
	case len(s) > 0 && s[0] == '"':
		return 4
	}
	return 3
}

// scalarLess orders set elements (compact JSON scalars) for the view.
func scalarLess(a, b string) bool {
	ra, rb := scalarRank(a), scalarRank(b)
	if ra != rb {
		return ra < rb
	}
	switch ra {
	case 3:
		fa, ea := strconv.ParseFloat(a, 64)
		fb, eb := strconv.ParseFloat(b, 64)
		if ea == nil && eb == nil && fa != fb {
			return fa < fb
		}
	case 4:
		var sa, sb string
		if json.Unmarshal([]byte(a), &sa) == nil && json.Unmarshal([]byte(b), &sb) == nil && sa != sb {
			return sa < sb
		}
	}
	return a < b
}
