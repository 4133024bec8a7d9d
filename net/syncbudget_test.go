package net

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concord-p2p/concord/crdt"
	"github.com/concord-p2p/concord/wire"
)

// syncReasons are the reason labels the budget tests look at.
var syncReasons = []string{"busy", "refused_snapshot", "too_many_seqs", "too_large", "version",
	"malformed", "protocol", "rejected", "storage", "timeout", "canceled", "reset", "open", "unknown"}

// frameBytes encodes m as a sync frame: raw, or zstd-compressed when z.
func frameBytes(t testing.TB, m *wire.SyncMsg, z bool) []byte {
	t.Helper()
	body, err := wire.EncodeSyncMsg(m)
	if err != nil {
		t.Fatal(err)
	}
	flag := frameRaw
	if z {
		enc, _ := zstd.NewWriter(nil)
		body = enc.EncodeAll(body, nil)
		_ = enc.Close()
		flag = frameZstd
	}
	if m.Type == wire.TypeSyncSnapshot {
		flag |= frameSnapshot
	}
	return append(frameHeader(len(body), flag), body...)
}

// frameHeader is the header of a frame whose body has n bytes.
func frameHeader(n int, flag byte) []byte {
	var hdr [binary.MaxVarintLen64 + 1]byte
	k := binary.PutUvarint(hdr[:], uint64(n)+1)
	hdr[k] = flag
	return hdr[:k+1]
}

// zstdBomb is a zstd frame declaring (and inflating to) n zero bytes: a
// few kilobytes on the wire.
func zstdBomb(n int) []byte {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	defer enc.Close()
	return enc.EncodeAll(make([]byte, n), nil)
}

// zeros streams zero bytes without holding them.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// attackStream opens a sync stream to victim, writes what write writes
// (stopping at the first error: the victim resets refused streams), then
// waits for the victim to end the stream.
func attackStream(ctx context.Context, h host.Host, victim peer.ID, write func(w io.Writer) error) {
	st, err := h.NewStream(ctx, victim, SyncProtocol)
	if err != nil {
		return // refused by the victim's resource manager
	}
	defer st.Reset()
	_ = st.SetDeadline(time.Now().Add(20 * time.Second))
	if write(st) == nil {
		_ = st.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, st)
}

// hostileHello claims deltas the victim lacks, so a snapshot after it is
// one the exchange may call for.
func hostileHello(doc string, from peer.ID) *wire.SyncMsg {
	return &wire.SyncMsg{Type: wire.TypeSyncHello, Doc: doc, VV: crdt.VersionVector{wire.ReplicaFor(from, 1): 1 << 20}}
}

// attacks are the hostile streams of the budget tests, by name.
func attacks(t testing.TB, doc string, from peer.ID) map[string]func(w io.Writer) error {
	hello := frameBytes(t, hostileHello(doc, from), false)
	bombSnap := zstdBomb(8 << 20)
	bombDeltas := zstdBomb(4 << 20)
	bombHello := zstdBomb(40 << 20)
	bombSmall := zstdBomb(1 << 20)
	write := func(w io.Writer, parts ...[]byte) error {
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
	stream := func(w io.Writer, n int64) error { _, err := io.CopyN(w, zeros{}, n); return err }
	return map[string]func(w io.Writer) error{
		// The tester's attack: a 40 MiB "snapshot" as the first frame.
		"first frame: 40 MiB snapshot": func(w io.Writer) error {
			if err := write(w, frameHeader(40<<20, frameSnapshot)); err != nil {
				return err
			}
			return stream(w, 40<<20)
		},
		"first frame: 40 MiB": func(w io.Writer) error {
			if err := write(w, frameHeader(40<<20, frameRaw)); err != nil {
				return err
			}
			return stream(w, 40<<20)
		},
		"first frame: zstd bomb of 40 MiB": func(w io.Writer) error {
			return write(w, frameHeader(len(bombHello), frameZstd), bombHello)
		},
		"first frame: zstd bomb of 1 MiB": func(w io.Writer) error {
			return write(w, frameHeader(len(bombSmall), frameZstd), bombSmall)
		},
		"hello, then a zstd bomb of 4 MiB": func(w io.Writer) error {
			return write(w, hello, frameHeader(len(bombDeltas), frameZstd), bombDeltas)
		},
		"hello, then a 60 MiB snapshot": func(w io.Writer) error {
			if err := write(w, hello, frameHeader(60<<20, frameSnapshot)); err != nil {
				return err
			}
			return stream(w, 60<<20)
		},
		"hello, then an 8 MiB snapshot": func(w io.Writer) error {
			if err := write(w, hello, frameHeader(8<<20, frameSnapshot)); err != nil {
				return err
			}
			return stream(w, 8<<20)
		},
		"hello, then a snapshot zstd bomb of 8 MiB": func(w io.Writer) error {
			return write(w, hello, frameHeader(len(bombSnap), frameZstd|frameSnapshot), bombSnap)
		},
	}
}

const victimEnv = "CONCORD_SYNC_VICTIM"

// victimStats is what the victim process reports.
type victimStats struct {
	RSS, HWM int64 // bytes
	Errors   map[string]float64
	Drops    float64
	OK       float64
}

func procStatus(t testing.TB, field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestSyncVictimProcess is the node under attack of
// TestSyncMemoryUnderAttack, in a process of its own so that its memory is
// measured alone. It hosts "doc" with 50 deltas, prints its address, and
// answers "stats" on stdin with a victimStats line until stdin closes.
func TestSyncVictimProcess(t *testing.T) {
	if os.Getenv(victimEnv) == "" {
		t.Skip("run by TestSyncMemoryUnderAttack")
	}
	peerMem, _ := strconv.ParseInt(os.Getenv(victimEnv), 10, 64)
	cfg := LoopbackHostConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.SyncPeerMemory = peerMem
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	r := newFakeReplica(t, 1, 0)
	r.write(t, 1, 50)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	s := NewSyncer(h, SyncerConfig{Metrics: m, Resolve: func(doc string) SyncDoc {
		if doc == r.doc {
			return r
		}
		return nil
	}})
	defer s.Close()
	fmt.Printf("VICTIM %s %s\n", h.ID(), h.Addrs()[0])
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		st := victimStats{RSS: procStatus(t, "VmRSS"), HWM: procStatus(t, "VmHWM"), Errors: map[string]float64{},
			Drops: counterValue(m.Dropped.WithLabelValues("sync_inbound", "busy")),
			OK:    counterValue(m.SyncExchanges.WithLabelValues("ok"))}
		for _, reason := range syncReasons {
			if n := counterValue(m.SyncErrors.WithLabelValues(reason)); n > 0 {
				st.Errors[reason] = n
			}
		}
		b, _ := json.Marshal(st)
		fmt.Printf("STATS %s\n", b)
	}
}

// One hostile peer opens 64 streams at once, many times over, of each
// attack: 40 MiB first frames, zstd bombs, Hello then huge snapshots. The
// victim (another process, so the attacker's buffers are not counted)
// must grow by less than 100 MiB at its peak, refuse and count every kind
// of attack, and complete exchanges with an honest peer meanwhile.
func TestSyncMemoryUnderAttack(t *testing.T) {
	if raceEnabled {
		t.Skip("memory figures of the race detector are not the node's")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	// The victim's SyncPeerMemory: room for the 8 MiB snapshots of the
	// attack (twice, while decoded), not for the 60 MiB one.
	const peerMem = 24 << 20
	cmd := exec.Command(os.Args[0], "-test.run=^TestSyncVictimProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), victimEnv+"="+strconv.Itoa(peerMem))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	exited := false
	defer func() {
		if !exited {
			_ = stdin.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	expect := func(prefix string) string {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("victim exited before %q", prefix)
				}
				if rest, ok := strings.CutPrefix(l, prefix+" "); ok {
					return rest
				}
			case <-deadline:
				t.Fatalf("no %q line from the victim", prefix)
			}
		}
	}
	stats := func() victimStats {
		t.Helper()
		if _, err := io.WriteString(stdin, "stats\n"); err != nil {
			t.Fatal(err)
		}
		var st victimStats
		if err := json.Unmarshal([]byte(expect("STATS")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	id, addr, _ := strings.Cut(expect("VICTIM"), " ")
	victim, err := peer.Decode(id)
	if err != nil {
		t.Fatal(err)
	}
	ma, err := multiaddr.NewMultiaddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	victimInfo := peer.AddrInfo{ID: victim, Addrs: []multiaddr.Multiaddr{ma}}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	attacker := newTestHost(t, LoopbackHostConfig())
	honestHost := newTestHost(t, LoopbackHostConfig())
	for _, h := range []host.Host{attacker, honestHost} {
		if err := h.Connect(ctx, victimInfo); err != nil {
			t.Fatal(err)
		}
	}
	honest := newFakeReplica(t, 3, 0)
	honest.write(t, 1, 50)
	hs := NewSyncer(honestHost, SyncerConfig{})
	defer hs.Close()
	// Warm up: one honest exchange, so the baseline includes what any
	// exchange allocates once.
	if _, err := hs.Sync(ctx, victim, honest); err != nil {
		t.Fatal(err)
	}
	base := stats()

	attackStart := time.Now()
	var okDuring atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const streams, rounds = 64, 3
	for name, write := range attacks(t, "doc", attacker.ID()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; ; round++ {
				var sw sync.WaitGroup
				for range streams {
					sw.Add(1)
					go func() { defer sw.Done(); attackStream(ctx, attacker, victim, write) }()
				}
				sw.Wait()
				select {
				case <-stop:
					if round >= rounds {
						return
					}
				default:
				}
				if ctx.Err() != nil {
					t.Errorf("attack %q: %v", name, ctx.Err())
					return
				}
			}
		}()
	}
	// The honest peer keeps syncing while the attack runs; three
	// exchanges must complete before it ends.
	for okDuring.Load() < 3 {
		if ctx.Err() != nil {
			t.Fatal("no honest exchange completed during the attack")
		}
		if _, err := hs.Sync(ctx, victim, honest); err != nil {
			// libp2p refuses streams past its transient limits while
			// hundreds of hostile ones are being negotiated.
			t.Logf("honest exchange during the attack: %v", err)
		} else {
			okDuring.Add(1)
		}
	}
	honestDone := time.Now()
	close(stop)
	wg.Wait()
	t.Logf("attack started %v before three honest exchanges completed, ended %v after", honestDone.Sub(attackStart), time.Since(honestDone))
	if got := honest.Version()[wire.ReplicaFor(mustPeer(t, 1), 1)]; got != 50 {
		t.Fatalf("the honest peer holds %d of the victim's deltas, want 50", got)
	}
	end := stats()
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("victim: %v", err)
	}
	exited = true
	growth := end.HWM - base.RSS
	t.Logf("victim RSS %d MiB before the attack, peak %d MiB (growth %d MiB); errors %v, refused streams %v, ok exchanges %v",
		base.RSS>>20, end.HWM>>20, growth>>20, end.Errors, end.Drops, end.OK)
	if growth >= 100<<20 {
		t.Errorf("the victim grew by %d MiB under attack, want < 100 MiB", growth>>20)
	}
	// Which reason a stream ends with depends on which streams got a slot
	// first; TestSyncErrorReasons checks each reason.
	var errs float64
	for _, n := range end.Errors {
		errs += n
	}
	if errs == 0 || end.Drops == 0 {
		t.Errorf("hostile streams not counted: errors %v, refused %v", end.Errors, end.Drops)
	}
}

func mustPeer(t testing.TB, keyByte byte) peer.ID {
	_, id := testKey(t, keyByte)
	return id
}
