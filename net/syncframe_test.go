package net

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
	"github.com/klauspost/compress/zstd"
	"github.com/libp2p/go-libp2p/core/network"
)

// The small-window encoder writes, for every frame it is given (up to its
// window), the bytes the big one writes: which encoder a frame goes
// through does not show on the wire.
func TestZstdSmallWindowSameBytes(t *testing.T) {
	big, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithAllLitEntropyCompression(true), zstd.WithWindowSize(zstdWindow))
	if err != nil {
		t.Fatal(err)
	}
	small, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithAllLitEntropyCompression(true), zstd.WithWindowSize(zstdSmallWindow))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var b []byte
	for len(b) < zstdSmallWindow {
		b = append(b, "k"...)
		b = strconv.AppendInt(b, int64(rng.IntN(1_000_000)), 10)
		b = append(b, byte(rng.IntN(256)))
	}
	b = b[:zstdSmallWindow]
	for _, n := range []int{compressMin, 4096, 256 << 10, zstdSmallWindow} {
		if x, y := big.EncodeAll(b[:n], nil), small.EncodeAll(b[:n], nil); !bytes.Equal(x, y) {
			t.Fatalf("%d bytes: the encoders differ (%d and %d bytes)", n, len(x), len(y))
		}
	}
}

// A Deltas message written in the column form reads back as the same
// message, through zstd, with its memory reserved and released; a side
// that did not announce the form refuses it; a column form rebuilding more
// than the frame bound is refused before it is rebuilt; a Hello, a small
// message, or a peer without the form get the other forms.
func TestSyncFrameColumns(t *testing.T) {
	s := quietHost(t)
	rng := rand.New(rand.NewPCG(3, 4))
	var envs [][]byte
	for i := range 40 {
		p := []byte{0xa1, 0x05, 0xa1, 0x63, 'k', byte('a' + i%26), byte('a' + rng.IntN(26))}
		for range 200 {
			p = append(p, byte(rng.IntN(4)))
		}
		env, err := wire.EncodeEnvelope(&wire.Envelope{Doc: "d", Origin: "A.1", Seq: uint64(i + 1), HLC: uint64(1000 + i), Payload: p, Sig: make([]byte, 64)})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	deltas := &wire.SyncMsg{Type: wire.TypeSyncDeltas, Doc: "d", Envelopes: envs}
	write := func(m *wire.SyncMsg, columns bool) []byte {
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		if err := s.write(bw, &streamCounts{}, &sync.Mutex{}, m, columns); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	read := func(frame []byte, own wire.Features, scope network.ResourceScope) (*wire.SyncMsg, error) {
		fr := &frameReader{s: s, br: bufio.NewReader(bytes.NewReader(frame)), scope: scope, own: own}
		defer fr.release()
		m, _, err := fr.next(func(bool) (int, error) { return s.cfg.Limits.MaxFrameBytes, nil })
		return m, err
	}
	plain, cols := write(deltas, false), write(deltas, true)
	if f := flagOf(t, cols); f != frameZstd|frameColumns {
		t.Fatalf("flag %#x, want zstd and columns", f)
	}
	if f := flagOf(t, plain); f != frameZstd {
		t.Fatalf("flag %#x without the form, want zstd", f)
	}
	t.Logf("%d envelopes: %d bytes zstd, %d in the column form", len(envs), len(plain), len(cols))
	// Reserved: the body received (comp), then the column form it
	// inflates to (z), then the message rebuilt (c) and, once decoded, the
	// message kept until release: the peak is the largest of comp+z, z+c
	// and 2c, and c stays held until the frame is released.
	raw, err := wire.EncodeSyncMsg(deltas)
	if err != nil {
		t.Fatal(err)
	}
	form, err := wire.EncodeColumns(raw)
	if err != nil {
		t.Fatal(err)
	}
	_, k := binary.Uvarint(cols)
	comp, z, c := len(cols)-k-1, len(form), len(raw)
	scope := &countingScope{}
	fr := &frameReader{s: s, br: bufio.NewReader(bytes.NewReader(cols)), scope: scope, own: wire.SupportedFeatures}
	m, _, err := fr.next(func(bool) (int, error) { return s.cfg.Limits.MaxFrameBytes, nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := sameMsg(m, deltas); err != nil {
		t.Fatal(err)
	}
	if want := max(comp+z, z+c, 2*c); scope.held != c || scope.peak != want {
		t.Fatalf("held %d after the frame (want %d), peak %d (want %d)", scope.held, c, scope.peak, want)
	}
	fr.release()
	if scope.held != 0 {
		t.Fatalf("held %d after release", scope.held)
	}
	// A message whose column form is larger than itself (pairs [0, ""]:
	// 3 bytes, 5 in the form), within the bound while its form is not:
	// the writer sends it without the form, and it reads back.
	pairs := []byte{0x99, 0x07, 0xd0} // an array of 2000
	for range 2000 {
		pairs = append(pairs, 0x82, 0x00, 0x60)
	}
	env, err := wire.EncodeEnvelope(&wire.Envelope{Doc: "d", Origin: "A.1", Seq: 1, Payload: pairs, Sig: make([]byte, 64)})
	if err != nil {
		t.Fatal(err)
	}
	big := &wire.SyncMsg{Type: wire.TypeSyncDeltas, Doc: "d", Envelopes: [][]byte{env}}
	braw, _ := wire.EncodeSyncMsg(big)
	bform, _ := wire.EncodeColumns(braw)
	if len(bform) <= len(braw) {
		t.Fatalf("the column form of the pairs is %d bytes, the message %d: the case tests nothing", len(bform), len(braw))
	}
	tight := quietHost(t)
	tight.cfg.Limits.MaxFrameBytes = len(braw)
	frame := writeWith(t, tight, big, true)
	if f := flagOf(t, frame); f&frameColumns != 0 {
		t.Fatalf("flag %#x: a column form of %d bytes past the bound %d", f, len(bform), len(braw))
	}
	tfr := &frameReader{s: tight, br: bufio.NewReader(bytes.NewReader(frame)), scope: &network.NullScope{}, own: wire.SupportedFeatures}
	if _, _, err := tfr.next(func(bool) (int, error) { return len(braw), nil }); err != nil {
		t.Fatalf("the frame within the bound: %v", err)
	}
	// A Hello is never read in the column form, even by a side that
	// announced it.
	hform, _ := wire.EncodeColumns(mustEncode(t, &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: "d"}))
	hframe := append(binary.AppendUvarint(nil, uint64(len(hform)+1)), frameColumns)
	if _, err := read(append(hframe, hform...), wire.SupportedFeatures, &network.NullScope{}); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("a Hello in the column form: %v", err)
	}
	if _, err := read(cols, wire.PayloadFeatures, &network.NullScope{}); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("read without announcing the form: %v", err)
	}
	hello := &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: "d", Features: wire.SupportedFeatures}
	small := &wire.SyncMsg{Type: wire.TypeSyncDeltas, Doc: "d", Envelopes: envs[:1]}
	for _, m := range []*wire.SyncMsg{hello, small} {
		if f := flagOf(t, write(m, true)); f&frameColumns != 0 {
			t.Fatalf("type %d: flag %#x", m.Type, f)
		}
	}
	// A column form declaring 5 MiB, past MaxFrameBytes.
	body := binary.AppendUvarint(nil, 5<<20)
	body = append(body, 1, 1, 0x00)
	frame = binary.AppendUvarint(nil, uint64(len(body)+1))
	frame = append(append(frame, frameColumns), body...)
	if _, err := read(frame, wire.SupportedFeatures, &network.NullScope{}); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("column form past the bound: %v", err)
	}
}

func mustEncode(t *testing.T, m *wire.SyncMsg) []byte {
	b, err := wire.EncodeSyncMsg(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeWith writes m as a frame with s.
func writeWith(t *testing.T, s *Syncer, m *wire.SyncMsg, columns bool) []byte {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := s.write(bw, &streamCounts{}, &sync.Mutex{}, m, columns); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// countingScope is a resource scope that counts what is reserved.
type countingScope struct {
	network.NullScope
	held, peak int
}

func (c *countingScope) ReserveMemory(n int, _ uint8) error {
	c.held += n
	c.peak = max(c.peak, c.held)
	return nil
}

func (c *countingScope) ReleaseMemory(n int) { c.held -= n }

// BenchmarkSyncFrameColumns: the size and the cost of a Deltas frame of
// 8 aggregates of 8 transactions of 125 register sets each, zstd alone
// against the column form under zstd, for keys and values written in
// sequence (what `concord bench --scenario join` writes: the best case
// for the form) and random ones (16-character keys, random JSON strings
// and numbers); and for a text typed in bursts (8,000 one-character inserts
// at random places, aggregates of 100).
func BenchmarkSyncFrameColumns(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	letters := "abcdefghijklmnopqrstuvwxyz0123456789"
	word := func(n int) string {
		w := make([]byte, n)
		for i := range w {
			w[i] = letters[rng.IntN(len(letters))]
		}
		return string(w)
	}
	sig := func() []byte {
		s := make([]byte, 64)
		for i := range s {
			s[i] = byte(rng.Uint32())
		}
		return s
	}
	// aggregates returns n aggregates of txns transactions of per ops.
	aggregates := func(n, txns, per int, op func(k int) crdt.Op) [][]byte {
		src := crdt.New()
		var envs [][]byte
		k := 0
		for a := range n {
			acc := crdt.New()
			for range txns {
				ops := make([]crdt.Op, per)
				for i := range ops {
					ops[i] = op(k)
					k++
				}
				d, err := src.Apply("A", crdt.HLC(1<<40+k), ops...)
				if err != nil {
					b.Fatal(err)
				}
				acc.JoinDelta(d)
			}
			env, err := wire.EncodeEnvelope(&wire.Envelope{Doc: "d", Origin: "A", Seq: uint64(a*txns + 1), Last: uint64(a*txns + txns), HLC: uint64(1<<40 + k), Payload: crdt.EncodeDelta(acc, "A"), Sig: sig()})
			if err != nil {
				b.Fatal(err)
			}
			envs = append(envs, env)
		}
		return envs
	}
	sets := func(keys func(k int) string, vals func(k int) string) func(k int) crdt.Op {
		return func(k int) crdt.Op {
			return crdt.Set([]string{keys(k)}, json.RawMessage(vals(k)))
		}
	}
	cases := []struct {
		name string
		envs func() [][]byte
	}{
		{"sequential", func() [][]byte {
			return aggregates(8, 8, 125, sets(func(k int) string { return "k" + strconv.Itoa(k) }, strconv.Itoa))
		}},
		{"random", func() [][]byte {
			return aggregates(8, 8, 125, sets(func(int) string { return word(16) }, func(int) string {
				if rng.IntN(2) == 0 {
					return strconv.Itoa(rng.IntN(1_000_000))
				}
				return strconv.Quote(word(4 + rng.IntN(20)))
			}))
		}},
		{"text", func() [][]byte {
			at := 0
			return aggregates(80, 100, 1, func(int) crdt.Op {
				op := crdt.Splice([]string{"body"}, rng.IntN(at+1), 0, word(1))
				at++
				return op
			})
		}},
	}
	for _, c := range cases {
		envs := c.envs()
		m := &wire.SyncMsg{Type: wire.TypeSyncDeltas, Doc: "d", Envelopes: envs}
		raw, err := wire.EncodeSyncMsg(m)
		if err != nil {
			b.Fatal(err)
		}
		s := quietHost(b)
		for _, columns := range []bool{false, true} {
			name := c.name + "/zstd"
			if columns {
				name = c.name + "/columns"
			}
			write := func() []byte {
				var buf bytes.Buffer
				bw := bufio.NewWriter(&buf)
				if err := s.write(bw, &streamCounts{}, &sync.Mutex{}, m, columns); err != nil {
					b.Fatal(err)
				}
				return buf.Bytes()
			}
			frame := write()
			b.Run(name+"/write", func(b *testing.B) {
				for range b.N {
					write()
				}
				b.ReportMetric(float64(len(raw)), "cbor_bytes")
				b.ReportMetric(float64(len(frame)), "frame_bytes")
			})
			b.Run(name+"/read", func(b *testing.B) {
				for range b.N {
					fr := &frameReader{s: s, br: bufio.NewReader(bytes.NewReader(frame)), scope: &network.NullScope{}, own: wire.SupportedFeatures}
					if _, _, err := fr.next(func(bool) (int, error) { return s.cfg.Limits.MaxFrameBytes, nil }); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
