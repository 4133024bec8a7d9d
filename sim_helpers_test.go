package concord

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/crdt"
	cnet "github.com/concord-p2p/concord/net"
)

// simFailure is the panic value of a failed simulation invariant; runSim
// recovers it so the seed can be reported and every replica closed.
type simFailure struct{ msg string }

// simKey derives replica i's Ed25519 key from the run's seed, so peer IDs
// (and with them replica IDs, sort orders and signatures) are a function
// of the seed.
func simKey(seed uint64, i int) (crypto.PrivKey, peer.ID, error) {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], uint64(i))
	h := sha256.Sum256(append([]byte("concord/sim-key\x00"), b[:]...))
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(h[:]))
	if err != nil {
		return nil, "", err
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, "", err
	}
	return priv, id, nil
}

// waitCompaction waits for a compaction that Observed may have started on
// its own goroutine (replica.maybeCompact), so that the simulation's next
// step sees a settled store and replays are exact.
func waitCompaction(r *replica) {
	for {
		r.mu.Lock()
		on := r.compactOn
		r.mu.Unlock()
		if !on {
			return
		}
		runtime.Gosched()
	}
}

// simView is the replica as the sim's sync sessions see it: Observed waits
// for the compaction it may trigger.
type simView struct{ *replica }

func (v simView) Observed(p peer.ID, vv crdt.VersionVector) {
	v.replica.Observed(p, vv)
	waitCompaction(v.replica)
}

var _ cnet.Replica = simView{}

// marks returns the acknowledgment markers held at simAckKey.
func (r *replica) simMarks() (map[string]bool, error) {
	r.mu.Lock()
	raw, ok := r.state.Get([]string{simAckKey})
	r.mu.Unlock()
	out := map[string]bool{}
	if !ok {
		return out, nil
	}
	var elems []string
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("marker set %s: %w", raw, err)
	}
	for _, e := range elems {
		out[e] = true
	}
	return out, nil
}

// simSeedsFromEnv returns the seeds to run: CONCORD_SIM_SEED=S replays one
// seed verbosely; CONCORD_SIM_SEEDS=N runs seeds 1..N; otherwise def.
func simSeedsFromEnv(t *testing.T, def int) (first uint64, n int, verbose bool) {
	if s := os.Getenv("CONCORD_SIM_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CONCORD_SIM_SEED=%q: %v", s, err)
		}
		return seed, 1, true
	}
	n = def
	if s := os.Getenv("CONCORD_SIM_SEEDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("CONCORD_SIM_SEEDS=%q: want a positive integer", s)
		}
		n = v
	}
	return 1, n, false
}
