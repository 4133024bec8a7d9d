package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-p2p/concord/crdt"
)

const (
	crashChildEnv = "CONCORD_CRASH_CHILD" // set in the re-executed child: data dir
	crashKillsEnv = "CONCORD_CRASH_KILLS" // number of kills (default 60)
	crashSeedEnv  = "CONCORD_CRASH_SEED"  // replay a seed
	crashDoc      = "crash/doc"
	crashWriters  = 4
)

// crashChild runs in the re-executed test binary: concurrent writers append
// deltas to a Pebble store in dir and print "ack <replica> <lo> <hi>" after
// each Append returns; writer 0 also acks its outbox and compacts. It runs
// until killed (or 20 s, so an orphan cannot live forever).
func crashChild(dir string) int {
	s, err := OpenPebble(dir, Options{CompactChunk: 16})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			r := crdt.ReplicaID(fmt.Sprint("w", w))
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			next := s.MaxSeq(crashDoc, r) + 1
			for i := 0; ctx.Err() == nil; i++ {
				n := 1 + rng.Uint64N(3)
				es := ents(r, seqRange(next, next+n-1)...)
				if err := s.Append(ctx, crashDoc, "w0", es); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					return
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d %d\n", r, next, next+n-1)
				out.Unlock()
				next += n
				if w == 0 && i%10 == 9 {
					vv := s.Contiguous(crashDoc)
					if err := s.Ack(ctx, crashDoc, next-3); err != nil {
						fmt.Fprintln(os.Stderr, "ack:", err)
						return
					}
					if err := s.Compact(ctx, crashDoc, Snapshot{State: []byte(fmt.Sprint(vv)), VV: vv}); err != nil {
						fmt.Fprintln(os.Stderr, "compact:", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	_ = s.Close()
	return 1
}

// TestCrashKill re-executes the test binary as a child that appends deltas
// and prints each acknowledged seq, SIGKILLs it after a random number of
// acknowledgements (0 = during open/recovery), reopens the same directory
// and checks every acknowledged seq is there and the store opens cleanly.
func TestCrashKill(t *testing.T) {
	kills := 60
	if v := os.Getenv(crashKillsEnv); v != "" {
		var err error
		if kills, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashSeedEnv); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (replay with %s=%d)", seed, crashSeedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	acked := map[crdt.ReplicaID]map[uint64]bool{}
	start := time.Now()
	totalAcks := 0
	for i := range kills {
		wait := 0
		if rng.IntN(8) != 0 {
			wait = rng.IntN(80)
		}
		totalAcks += crashOnce(t, dir, wait, acked)
		crashVerify(t, dir, acked, i)
	}
	t.Logf("%d kills, %d acknowledged appends, %v", kills, totalAcks, time.Since(start))
}

func crashOnce(t *testing.T, dir string, wait int, acked map[crdt.ReplicaID]map[uint64]bool) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(stdout)
	n := 0
	killed := false
	if wait == 0 {
		_ = cmd.Process.Kill()
		killed = true
	}
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF || err != nil {
			break // a partial last line is not an acknowledgement
		}
		var r string
		var lo, hi uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "ack %s %d %d", &r, &lo, &hi); err != nil {
			t.Fatalf("bad child line %q", line)
		}
		rid := crdt.ReplicaID(r)
		if acked[rid] == nil {
			acked[rid] = map[uint64]bool{}
		}
		for seq := lo; seq <= hi; seq++ {
			if acked[rid][seq] {
				t.Fatalf("child re-acknowledged %s/%d: a sequence number was reused", r, seq)
			}
			acked[rid][seq] = true
		}
		n++
		if !killed && n >= wait {
			_ = cmd.Process.Kill() // SIGKILL; lines already written still count
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before the kill: %v\n%s", err, stderr.String())
	}
	return n
}

func crashVerify(t *testing.T, dir string, acked map[crdt.ReplicaID]map[uint64]bool, i int) {
	t.Helper()
	ctx := context.Background()
	s, err := OpenPebble(dir, Options{})
	if err != nil {
		t.Fatalf("kill %d: reopen: %v", i, err)
	}
	defer mustClose(t, s)
	if err := s.Problems(); err != nil {
		t.Fatalf("kill %d: %v", i, err)
	}
	snap, _, err := s.Snapshot(ctx, crashDoc)
	if err != nil {
		t.Fatalf("kill %d: snapshot: %v", i, err)
	}
	if snap.VV != nil && string(snap.State) != fmt.Sprint(snap.VV) {
		t.Fatalf("kill %d: snapshot state %q does not match its vv %v", i, snap.State, snap.VV)
	}
	inLog := map[crdt.ReplicaID]map[uint64]bool{}
	err = s.Entries(ctx, crashDoc, func(e Entry) error {
		if !bytes.Equal(e.Data, data(e.Replica, e.Seq)) {
			return fmt.Errorf("%s/%d: wrong data", e.Replica, e.Seq)
		}
		if inLog[e.Replica] == nil {
			inLog[e.Replica] = map[uint64]bool{}
		}
		inLog[e.Replica][e.Seq] = true
		return nil
	})
	if err != nil {
		t.Fatalf("kill %d: entries: %v", i, err)
	}
	contig := s.Contiguous(crashDoc)
	for r, seqs := range acked {
		for seq := range seqs {
			if seq > snap.VV[r] && !inLog[r][seq] {
				t.Fatalf("kill %d: acknowledged %s/%d lost (snapshot %v)", i, r, seq, snap.VV)
			}
			// Each writer appends 1, 2, 3, ... so nothing acknowledged
			// may sit above a gap.
			if seq > contig[r] {
				t.Fatalf("kill %d: acknowledged %s/%d above contiguous %d", i, r, seq, contig[r])
			}
		}
	}
}
