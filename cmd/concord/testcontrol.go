package main

// Test control: a test-only way to partition real peer processes.
//
// When the environment variable CONCORD_TEST_CONTROL is "1", "concord peer"
// installs a libp2p connection gater and its HTTP server (--http) also
// answers these routes, which are NOT part of the peer's contract and are
// off by default:
//
//	POST /test/block     {"peers": ["<id>", ...]}  refuse connections to and from these peers and close the open ones
//	POST /test/unblock   {"peers": ["<id>", ...]}  allow them again
//	GET  /test/peers     {"connected": [...], "blocked": [...]}
//
// The chaos test (chaos_test.go) uses them to cut the network between peer
// processes. The document routes are unchanged, but these sit in front of
// the HTTP access rules (no --http-token, Host or Origin check), and anyone
// who reaches the HTTP port could isolate the peer with them: never set the
// variable outside tests.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord"
	cnet "github.com/concord-p2p/concord/net"
)

// testControlEnv names the environment variable that turns test control on.
const testControlEnv = "CONCORD_TEST_CONTROL"

// maxTestControlBody bounds the body of a /test/ request.
const maxTestControlBody = 64 << 10

// testControlGater returns the gater to install in the node when test
// control is on, else nil.
func testControlGater() *cnet.Gater {
	if os.Getenv(testControlEnv) != "1" {
		return nil
	}
	return cnet.NewGater()
}

// testControl serves the /test/ routes of one node.
type testControl struct {
	node  *concord.Node
	gater *cnet.Gater

	mu      sync.Mutex
	blocked map[peer.ID]bool // what the gater blocks (it has no list of its own)
}

// withTestControl returns h with the /test/ routes in front of it when g is
// non-nil (test control is on), else h itself.
func withTestControl(h http.Handler, node *concord.Node, g *cnet.Gater) http.Handler {
	if g == nil {
		return h
	}
	tc := &testControl{node: node, gater: g, blocked: map[peer.ID]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /test/block", tc.block)
	mux.HandleFunc("POST /test/unblock", tc.unblock)
	mux.HandleFunc("GET /test/peers", tc.peers)
	mux.Handle("/", h)
	return mux
}

// testPeersBody is the body of /test/block and /test/unblock.
type testPeersBody struct {
	Peers []string `json:"peers"`
}

func (tc *testControl) decodePeers(w http.ResponseWriter, r *http.Request) ([]peer.ID, bool) {
	var b testPeersBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTestControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		testControlError(w, http.StatusBadRequest, "body: "+err.Error())
		return nil, false
	}
	ids := make([]peer.ID, 0, len(b.Peers))
	for _, s := range b.Peers {
		id, err := peer.Decode(s)
		if err != nil {
			testControlError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a peer ID: %v", s, err))
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

// block blocks the peers in the gater, then closes the open connections to
// them: from then on the two sides stay apart until unblock.
func (tc *testControl) block(w http.ResponseWriter, r *http.Request) {
	ids, ok := tc.decodePeers(w, r)
	if !ok {
		return
	}
	tc.mu.Lock()
	for _, id := range ids {
		tc.blocked[id] = true
	}
	tc.mu.Unlock()
	for _, id := range ids {
		if err := cnet.Partition(tc.node.Host(), tc.gater, id); err != nil {
			testControlError(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	tc.peers(w, r)
}

func (tc *testControl) unblock(w http.ResponseWriter, r *http.Request) {
	ids, ok := tc.decodePeers(w, r)
	if !ok {
		return
	}
	tc.mu.Lock()
	for _, id := range ids {
		delete(tc.blocked, id)
		tc.gater.Unblock(id)
	}
	tc.mu.Unlock()
	tc.peers(w, r)
}

// peers answers the peers connected now and the peers blocked.
func (tc *testControl) peers(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Connected []string `json:"connected"`
		Blocked   []string `json:"blocked"`
	}{Connected: []string{}, Blocked: []string{}}
	nw := tc.node.Host().Network()
	for _, id := range nw.Peers() {
		if nw.Connectedness(id) == network.Connected {
			out.Connected = append(out.Connected, id.String())
		}
	}
	tc.mu.Lock()
	for id := range tc.blocked {
		out.Blocked = append(out.Blocked, id.String())
	}
	tc.mu.Unlock()
	slices.Sort(out.Connected)
	slices.Sort(out.Blocked)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func testControlError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
