package store

import (
	"context"
	"slices"
)

// Outbox returns the own sequence numbers of doc not yet acknowledged, in
// ascending order (from the in-memory index).
func (s *Store) Outbox(doc string) []uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if d := s.docs[doc]; d != nil {
		return slices.Clone(d.outbox)
	}
	return nil
}

// OutboxDepth returns len(Outbox(doc)) without copying.
func (s *Store) OutboxDepth(doc string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if d := s.docs[doc]; d != nil {
		return len(d.outbox)
	}
	return 0
}

// Ack durably removes the outbox entries of doc with seq <= upTo, and records
// upTo as the acknowledged floor so an own entry at or below it is never
// re-added to the outbox. Acknowledging less than a previous Ack is a no-op.
func (s *Store) Ack(ctx context.Context, doc string, upTo uint64) error {
	done, err := s.ack(ctx, doc, upTo, nil)
	if err != nil {
		return err
	}
	return wait(ctx, done)
}

// AckNotify is Ack without the wait: notify is called with the outcome once
// the acknowledgment is durable (on the store's commit goroutine: it must
// not block), or at once when there is nothing to write. An error returned
// means notify will not be called.
func (s *Store) AckNotify(ctx context.Context, doc string, upTo uint64, notify func(error)) error {
	_, err := s.ack(ctx, doc, upTo, notify)
	return err
}

func (s *Store) ack(ctx context.Context, doc string, upTo uint64, notify func(error)) (<-chan error, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	s.mu.RLock()
	var ops []op
	if d := s.docs[doc]; upTo > 0 && (d == nil || upTo > d.ackFloor) {
		if d != nil {
			for _, seq := range d.outbox {
				if seq > upTo {
					break
				}
				ops = append(ops, op{key: outboxKey(doc, seq), del: true})
			}
		}
		ops = append(ops, op{key: ackedKey(doc), value: s.codec.marshal(ackRecord{UpTo: upTo})})
	}
	s.mu.RUnlock()
	return s.enqueueNotify(ctx, ops, func() {
		d := s.doc(doc)
		if upTo <= d.ackFloor {
			return
		}
		d.ackFloor = upTo
		i, found := slices.BinarySearch(d.outbox, upTo)
		if found {
			i++
		}
		d.outbox = slices.Delete(d.outbox, 0, i)
	}, notify)
}
