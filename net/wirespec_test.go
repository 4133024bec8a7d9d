package net

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/concord-p2p/concord/internal/specdoc"
	"github.com/concord-p2p/concord/wire"
)

// The parts of WIRE.md that net owns: sync frames, GossipSub message IDs,
// topic names and net's constants. The messages inside are WIRE.md's own
// vectors (checked against the wire package by internal/wirespec); here
// they are framed and hashed by the real code.

// quietHost returns a host that listens nowhere: nothing here needs a
// connection.
func quietHost(t testing.TB) *Syncer {
	t.Helper()
	cfg := LoopbackHostConfig()
	cfg.ListenAddrs = nil
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSyncer(h, SyncerConfig{})
	t.Cleanup(func() {
		_ = s.Close()
		_ = h.Close()
	})
	return s
}

func loadSpec(t *testing.T) *specdoc.Spec {
	t.Helper()
	spec, err := specdoc.Load()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestWireSpecFrames frames WIRE.md's sync messages with the stream's
// writer and reads WIRE.md's frames with its reader. A frame block names
// its message (msg=<id>). By default it must be exactly what the writer
// produces; mode=decode marks a compressed frame, of which only the flag
// and the decoding are checked (zstd output may differ between encoders);
// mode=raw marks an uncompressed frame built as WIRE.md describes, which
// the reader must accept. Every one must decode to its message.
func TestWireSpecFrames(t *testing.T) {
	spec := loadSpec(t)
	s := quietHost(t)
	ids := spec.IDs(specdoc.KindHex)
	n := 0
	for _, id := range ids {
		if !strings.HasPrefix(id, "frame-") {
			continue
		}
		n++
		t.Run(id, func(t *testing.T) {
			blk, err := spec.Block(specdoc.KindHex, id)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := spec.Hex(blk.Attrs["msg"])
			if err != nil {
				t.Fatalf("frame %s names message %q: %v", id, blk.Attrs["msg"], err)
			}
			want, err := wire.DecodeSyncMsg(raw, s.cfg.Limits)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			bw := bufio.NewWriter(&buf)
			if err := s.write(bw, &streamCounts{}, &sync.Mutex{}, want, false); err != nil {
				t.Fatal(err)
			}
			written := buf.Bytes()
			mode := blk.Attrs["mode"]
			if mode == "raw" {
				written = rawFrame(want.Type, raw)
			}
			frame, err := spec.Hex(id)
			if err != nil {
				t.Fatal(err)
			}
			if specdoc.Updating() {
				// A compressed frame is kept while it still decodes to
				// its message with the writer's flag.
				if mode != "decode" || len(frame) == 0 || flagOf(t, frame) != flagOf(t, written) || readFrame(s, frame, want) != nil {
					if err := spec.SetHex(id, written); err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			switch mode {
			case "decode":
				if got, w := flagOf(t, frame), flagOf(t, written); got != w {
					t.Errorf("frame flag %d in WIRE.md, the writer now uses %d", got, w)
				}
			case "", "raw":
				if !bytes.Equal(frame, written) {
					t.Errorf("WIRE.md frame differs from the code's:\n spec %x\n code %x", frame, written)
				}
			default:
				t.Fatalf("unknown frame mode %q", mode)
			}
			if err := readFrame(s, frame, want); err != nil {
				t.Error(err)
			}
		})
	}
	if n == 0 {
		t.Fatal("WIRE.md has no frame vectors")
	}
	if specdoc.Updating() {
		if err := spec.Save(); err != nil {
			t.Fatal(err)
		}
	}
}

// readFrame reads frame with the stream's reader and checks that it holds
// want, whole.
func readFrame(s *Syncer, frame []byte, want *wire.SyncMsg) error {
	fr := &frameReader{s: s, br: bufio.NewReader(bytes.NewReader(frame)), scope: &network.NullScope{}}
	defer fr.release()
	got, size, err := fr.next(func(snapshot bool) (int, error) {
		if snapshot {
			return s.cfg.Limits.MaxSnapshotBytes, nil
		}
		return s.cfg.Limits.MaxFrameBytes, nil
	})
	if err != nil {
		return fmt.Errorf("the reader refuses the frame: %w", err)
	}
	if size != len(frame) {
		return fmt.Errorf("the reader counts %d bytes, the frame has %d", size, len(frame))
	}
	return sameMsg(got, want)
}

// rawFrame frames msg uncompressed: uvarint(len+1), the flag, the body.
func rawFrame(typ uint64, msg []byte) []byte {
	flag := frameRaw
	if typ == wire.TypeSyncSnapshot {
		flag |= frameSnapshot
	}
	out := binary.AppendUvarint(nil, uint64(len(msg)+1))
	return append(append(out, flag), msg...)
}

func flagOf(t *testing.T, frame []byte) byte {
	t.Helper()
	_, k := binary.Uvarint(frame)
	if k <= 0 || k >= len(frame) {
		t.Fatalf("frame %x has no header", frame)
	}
	return frame[k]
}

func sameMsg(got, want *wire.SyncMsg) error {
	a, err := wire.EncodeSyncMsg(got)
	if err != nil {
		return err
	}
	b, err := wire.EncodeSyncMsg(want)
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		return fmt.Errorf("the frame decodes to %x, want %x", a, b)
	}
	return nil
}

// TestWireSpecMessageIDs publishes WIRE.md's gossip messages through the
// GossipSub configured by NewGossip and checks the message IDs it assigns,
// and that the messages carry no pubsub author, sequence number or
// signature.
func TestWireSpecMessageIDs(t *testing.T) {
	spec := loadSpec(t)
	cfg := LoopbackHostConfig()
	cfg.ListenAddrs = nil
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	g, err := NewGossip(h, DefaultGossipConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Close() }()
	topic, err := g.ps.Join(TopicName("wirespec"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = topic.Close() }()
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	for _, id := range spec.IDs(specdoc.KindHex) {
		if !strings.HasPrefix(id, "msgid-") {
			continue
		}
		n++
		blk, err := spec.Block(specdoc.KindHex, id)
		if err != nil {
			t.Fatal(err)
		}
		data, err := spec.Hex(blk.Attrs["msg"])
		if err != nil {
			t.Fatalf("%s names message %q: %v", id, blk.Attrs["msg"], err)
		}
		if err := topic.Publish(ctx, data); err != nil {
			t.Fatal(err)
		}
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.From != nil || m.Seqno != nil || m.Signature != nil || m.Key != nil {
			t.Errorf("%s: the message carries pubsub author fields: %+v", id, m.Message)
		}
		if specdoc.Updating() {
			if err := spec.SetHex(id, []byte(m.ID)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := spec.Hex(id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal([]byte(m.ID), want) {
			t.Errorf("%s: GossipSub gives message ID %x, WIRE.md says %x", id, m.ID, want)
		}
	}
	if n == 0 {
		t.Fatal("WIRE.md has no message ID vectors")
	}
	if specdoc.Updating() {
		if err := spec.Save(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWireSpecNetConstants checks WIRE.md's topic name vectors and the
// constants named net.*.
func TestWireSpecNetConstants(t *testing.T) {
	spec := loadSpec(t)
	if specdoc.Updating() {
		if err := spec.SetBody(specdoc.KindText, "topic-todo", TopicName("todo")); err != nil {
			t.Fatal(err)
		}
		if err := spec.SetBody(specdoc.KindText, "topic-presence-todo", PresenceTopicName("todo")); err != nil {
			t.Fatal(err)
		}
		if err := spec.Save(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := spec.Text("topic-todo"); err != nil {
		t.Error(err)
	} else if got != TopicName("todo") {
		t.Errorf("WIRE.md topic %q, TopicName gives %q", got, TopicName("todo"))
	}
	if got, err := spec.Text("topic-presence-todo"); err != nil {
		t.Error(err)
	} else if got != PresenceTopicName("todo") {
		t.Errorf("WIRE.md presence topic %q, PresenceTopicName gives %q", got, PresenceTopicName("todo"))
	}
	s := quietHost(t)
	actual := map[string]string{
		"net.SyncProtocol":         strconv.Quote(string(SyncProtocol)),
		"net.SyncService":          strconv.Quote(SyncService),
		"net.frameRaw":             fmt.Sprint(frameRaw),
		"net.frameZstd":            fmt.Sprint(frameZstd),
		"net.frameSnapshot":        fmt.Sprint(frameSnapshot),
		"net.frameColumns":         fmt.Sprint(frameColumns),
		"net.compressMin":          fmt.Sprint(compressMin),
		"net.columnsMin":           fmt.Sprint(columnsMin),
		"net.columnsMax":           fmt.Sprint(columnsMax),
		"net.zstdWindow":           fmt.Sprint(zstdWindow),
		"net.maxPubsubMessage":     fmt.Sprint(maxPubsubMessage),
		"net.maxInbound":           fmt.Sprint(maxInbound),
		"net.maxInboundPerPeer":    fmt.Sprint(maxInboundPerPeer),
		"net.maxOutbound":          fmt.Sprint(maxOutbound),
		"net.maxOutboundPerPeer":   fmt.Sprint(maxOutboundPerPeer),
		"net.SyncerConfig.Timeout": s.cfg.Timeout.String(),
	}
	for _, err := range spec.CompareConstants("net.", actual) {
		t.Error(err)
	}
}
