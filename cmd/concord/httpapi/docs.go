package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/concord-p2p/concord"
	"github.com/concord-p2p/concord/crdt"
)

// MaxDocName bounds a document name in a URL.
const MaxDocName = 200

// statusView is the body of GET /v1/status.
type statusView struct {
	PeerID string     `json:"peer_id"`
	Addrs  []string   `json:"addrs"`
	Peers  []peerView `json:"peers"`
	Docs   []string   `json:"docs"`
}

type peerView struct {
	ID    string    `json:"id"`
	State string    `json:"state"`
	Since time.Time `json:"since"`
}

// docView is the body of GET /v1/docs/{doc} and of a successful POST of ops.
type docView struct {
	Value   json.RawMessage    `json:"value"`
	Version crdt.VersionVector `json:"version"`
	Outbox  int                `json:"outbox"`
	// N is, for GET, the number of the change the view follows: the base
	// of a splice made on that view. For a POST of ops it is the number of
	// the change that holds the batch (how a client knows its own change
	// in the events), not a base: the answer's value may be later.
	N uint64 `json:"n"`
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	v := statusView{
		PeerID: a.node.ID().String(),
		Addrs:  nonNil(a.node.Addrs()),
		Peers:  []peerView{},
		Docs:   nonNil(a.node.Docs()),
	}
	for _, p := range a.node.Peers() {
		v.Peers = append(v.Peers, peerView{ID: p.ID.String(), State: p.State, Since: p.Since.UTC()})
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *API) getDoc(w http.ResponseWriter, r *http.Request) {
	d, ok := a.doc(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, viewOf(d))
}

// doc opens the document named in the URL, or writes the error and
// returns false.
func (a *API) doc(w http.ResponseWriter, r *http.Request) (*concord.Doc, bool) {
	name := r.PathValue("doc")
	if name == "" || len(name) > MaxDocName || !utf8.ValidString(name) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("document name must be 1 to %d bytes of UTF-8", MaxDocName))
		return nil, false
	}
	d, err := a.node.Doc(r.Context(), name)
	if err != nil {
		writeError(w, statusOf(err), fmt.Sprintf("open document %q: %v", name, err))
		return nil, false
	}
	return d, true
}

func viewOf(d *concord.Doc) docView {
	st := d.Status()
	vv := st.Version
	if vv == nil {
		vv = crdt.VersionVector{}
	}
	v, n := d.JSONAt()
	return docView{Value: v, Version: vv, Outbox: st.Outbox, N: n}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
