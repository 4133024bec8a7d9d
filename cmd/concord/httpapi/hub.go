package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/concord-p2p/concord"
)

// Fan-out of a document's changes to its event streams. Every document with
// at least one open stream has one hub: one Subscription to the document,
// one goroutine that takes its changes, computes the document's JSON view
// once for them and hands each change to every stream of the document. The
// streams own the hub: the first one starts it, the last one to leave stops
// it and waits for its goroutine; a hub whose document closes ends every
// stream.
//
// Queues and their overflow policy, as with a Subscription per stream:
//
//   - the hub's Subscription buffers Options.EventBuffer changes; when the
//     hub is too slow, the document drops a change and counts it (Missed
//     and the node's dropped metric), and the hub adds it to the missed
//     count of every stream it would have gone to;
//   - each stream buffers Options.EventBuffer changes; a stream whose
//     client reads too slowly drops the change, counted in that stream's
//     missed count and in concord_dropped_total{queue="subscription",
//     reason="full"}, as the document counts a full Subscription.
//
// Either way an event's value is the latest view the hub computed when the
// stream writes it, so it is still current after a drop.

// hubs holds the hub of every document that has event streams.
type hubs struct {
	view  func(*concord.Doc) json.RawMessage
	buf   int
	drops prometheus.Counter // nil: not counted beyond the streams' own counts

	mu sync.Mutex
	m  map[*concord.Doc]*hub
}

// hub fans one document's changes out to its streams.
type hub struct {
	hubs *hubs
	doc  *concord.Doc
	sub  *concord.Subscription
	done chan struct{} // closed when run returns

	latest atomic.Pointer[encodedView] // set before the changes it covers are handed out

	mu        sync.Mutex // guards what follows; taken after hubs.mu
	streams   map[*stream]struct{}
	seen      uint64 // changes taken from sub.C
	subMissed uint64 // sub.Missed() already added to the streams' counts
	dead      bool   // stopped or ended: joins start a new hub
}

// encodedView is the encoded JSON view of a document, ready to embed in an event.
type encodedView struct {
	b   []byte
	err error
}

// change is one change, as every stream of the document gets it.
type change struct {
	n    uint64 // its rank among the changes the hub took
	head []byte // the event's JSON up to, not including, the value (see encodeHead)
}

// stream is one event stream's queue.
type stream struct {
	c      chan *change // closed when the hub ends
	after  uint64       // changes taken or queued by the hub before the stream joined
	missed atomic.Uint64
}

func newHubs(node *concord.Node, buf int, view func(*concord.Doc) json.RawMessage) *hubs {
	return &hubs{view: view, buf: buf, drops: subscriptionDrops(node.Registry()), m: map[*concord.Doc]*hub{}}
}

// subscriptionDrops returns the node's counter of changes dropped from full
// subscriptions, taken from reg (nil if the node registers its metrics
// elsewhere or the counter cannot be found).
func subscriptionDrops(reg *prometheus.Registry) prometheus.Counter {
	if reg == nil {
		return nil
	}
	// The node's collector, as net.NewMetrics registers it: registering an
	// identical one returns it.
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "concord_dropped_total",
		Help: "Items dropped from bounded queues, by queue and reason.",
	}, []string{"queue", "reason"})
	var are prometheus.AlreadyRegisteredError
	err := reg.Register(cv)
	if err == nil {
		reg.Unregister(cv) // the node has no such counter: add none
		return nil
	}
	if !errors.As(err, &are) {
		return nil
	}
	existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
	if !ok {
		return nil
	}
	return existing.WithLabelValues("subscription", "full")
}

func (hs *hubs) countDrops(n uint64) {
	if hs.drops != nil && n > 0 {
		hs.drops.Add(float64(n))
	}
}

// join adds a stream to d's hub, starting the hub if d has none. The
// stream gets the changes the document makes from about now on: not those
// the hub already took or had queued (a change racing the join may go
// either way, as with a new Subscription).
func (hs *hubs) join(d *concord.Doc) (*hub, *stream) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h := hs.m[d]
	if h == nil {
		h = &hub{hubs: hs, doc: d, sub: d.Subscribe(hs.buf), done: make(chan struct{}), streams: map[*stream]struct{}{}}
		hs.m[d] = h
		go h.run()
	}
	// A hub in hs.m is not dead: it is removed under hs.mu when it stops or
	// ends. If its document has closed, run ends the stream soon.
	s := &stream{c: make(chan *change, hs.buf)}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.after = h.seen + uint64(len(h.sub.C))
	h.streams[s] = struct{}{}
	return h, s
}

// leave removes s from h; the last stream to leave stops the hub. It
// returns once h's goroutine has exited if h is stopped.
func (hs *hubs) leave(h *hub, s *stream) {
	hs.mu.Lock()
	h.mu.Lock()
	stop := false
	if _, ok := h.streams[s]; ok {
		delete(h.streams, s)
		if len(h.streams) == 0 && !h.dead {
			h.dead, stop = true, true
			delete(hs.m, h.doc)
		}
	}
	dead := h.dead
	h.mu.Unlock()
	hs.mu.Unlock()
	if stop {
		h.sub.Close() // run sees C closed and returns
	}
	if dead {
		<-h.done
	}
}

// run takes the document's changes until the subscription closes: for each
// burst of queued changes it computes the view once, then hands the
// changes out. When the document closes, it ends every stream.
func (h *hub) run() {
	defer close(h.done)
	var burst []concord.Change
	for first := range h.sub.C {
		burst = append(burst[:0], first)
		for range len(h.sub.C) {
			burst = append(burst, <-h.sub.C)
		}
		h.mu.Lock()
		n := h.seen
		h.seen += uint64(len(burst))
		h.mu.Unlock()
		h.latest.Store(encodeView(h.hubs.view(h.doc)))
		for i, ch := range burst {
			h.broadcast(&change{n: n + uint64(i) + 1, head: encodeHead(ch)})
		}
	}
	h.hubs.mu.Lock()
	if h.hubs.m[h.doc] == h {
		delete(h.hubs.m, h.doc)
	}
	h.mu.Lock()
	h.dead = true
	for s := range h.streams {
		close(s.c)
		delete(h.streams, s)
	}
	h.mu.Unlock()
	h.hubs.mu.Unlock()
}

// broadcast hands ch to every stream that joined before it, dropping it for
// a stream whose queue is full; changes the hub's own subscription dropped
// since the last broadcast count as missed by those streams too.
func (h *hub) broadcast(ch *change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	missed := h.sub.Missed()
	lost := missed - h.subMissed
	h.subMissed = missed
	var receivers uint64
	for s := range h.streams {
		if ch.n <= s.after {
			continue
		}
		receivers++
		s.missed.Add(lost)
		select {
		case s.c <- ch:
		default:
			s.missed.Add(1)
			h.hubs.countDrops(1)
		}
	}
	if lost > 0 && receivers > 1 {
		// The document counted each lost change once; each stream would
		// have counted it.
		h.hubs.countDrops(lost * (receivers - 1))
	}
}

// encodeView encodes a JSON view as json.Marshal embeds a RawMessage:
// compacted, with <, > and & escaped.
func encodeView(v json.RawMessage) *encodedView {
	b, err := json.Marshal(v)
	if err != nil {
		return &encodedView{err: fmt.Errorf("encode change: %w", err)}
	}
	return &encodedView{b: b}
}
