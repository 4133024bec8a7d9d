package store

import (
	"context"
	"fmt"

	"github.com/ipfs/go-datastore"
)

// op is one Put (value != nil) or Delete (del) in a write batch.
type op struct {
	key   datastore.Key
	value []byte
	del   bool
}

// writeReq is one caller's atomic batch. apply, if set, runs under s.mu after
// the group holding the batch is durable, so the in-memory index changes in
// commit order and only ever reflects synced data.
type writeReq struct {
	ops    []op
	apply  func()
	done   chan error  // buffered, capacity 1
	notify func(error) // optional, called after done is sent
}

// Group commit: callers enqueue writeReqs on s.reqs (a bounded queue of
// Options.QueueLength requests; when it is full the caller blocks until there
// is room or its context ends — nothing is ever dropped). One goroutine,
// owned by the Store and joined by Close, takes every request queued at that
// moment (up to maxGroupOps operations), writes them as ONE datastore batch,
// calls Sync once, then applies and answers all of them. While it syncs, new
// requests pile up and form the next group, so N concurrent writers share one
// fsync instead of paying N.
const maxGroupOps = 16384

func (s *Store) commitLoop() {
	defer close(s.loopDone)
	var group []*writeReq
	for first := range s.reqs {
		group = append(group[:0], first)
		n := len(first.ops)
	drain:
		for n < maxGroupOps {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
				n += len(r.ops)
			default:
				break drain
			}
		}
		s.commitGroup(group)
		clear(group)
	}
}

func (s *Store) commitGroup(group []*writeReq) {
	err := s.failure()
	if err == nil {
		var ops []op
		if len(group) == 1 {
			ops = group[0].ops
		} else {
			for _, r := range group {
				ops = append(ops, r.ops...)
			}
		}
		err = s.writeOps(context.Background(), ops, !s.opts.NoSync)
		if err != nil {
			s.fail(err)
		}
	}
	if err == nil {
		s.mu.Lock()
		for _, r := range group {
			if r.apply != nil {
				r.apply()
			}
		}
		s.mu.Unlock()
		s.groups.Add(1)
	}
	for _, r := range group {
		r.done <- err
		if r.notify != nil {
			r.notify(err)
		}
	}
}

// writeOps writes ops as one batch and, if sync, syncs the datastore. Errors
// name the first key involved.
func (s *Store) writeOps(ctx context.Context, ops []op, sync bool) error {
	if len(ops) == 0 {
		return nil
	}
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("store: new batch for %s: %w", ops[0].key, err)
	}
	for _, o := range ops {
		if o.del {
			err = b.Delete(ctx, o.key)
		} else {
			err = b.Put(ctx, o.key, o.value)
		}
		if err != nil {
			return fmt.Errorf("store: batch write %s: %w", o.key, err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("store: commit batch of %d ops (first key %s): %w", len(ops), ops[0].key, err)
	}
	if sync {
		if err := s.ds.Sync(ctx, datastore.NewKey("/")); err != nil {
			return fmt.Errorf("store: sync after batch of %d ops (first key %s): %w", len(ops), ops[0].key, err)
		}
	}
	return nil
}

func (s *Store) failure() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failErr
}

func (s *Store) fail(err error) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failErr == nil {
		s.failErr = fmt.Errorf("%w: %w", ErrFailed, err)
		s.opts.Logger.Error("store: write failed; refusing further writes until reopened", "err", err)
	}
}

// submit enqueues ops and waits until they are durable (or failed). When ctx
// ends first, submit returns ctx.Err(); the batch may still be committed
// later, but the caller was not told it succeeded.
func (s *Store) submit(ctx context.Context, ops []op, apply func()) error {
	done, err := s.enqueue(ctx, ops, apply)
	if err != nil {
		return err
	}
	return wait(ctx, done)
}

// wait returns the outcome of a queued write, or ctx.Err() if the caller
// stops waiting first (the write may still become durable).
func wait(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue puts ops in the commit queue and returns a channel that receives
// the outcome once the group holding them is durable (or failed). Requests
// are committed in the order they were enqueued.
func (s *Store) enqueue(ctx context.Context, ops []op, apply func()) (<-chan error, error) {
	return s.enqueueNotify(ctx, ops, apply, nil)
}

// enqueueNotify is enqueue that also calls notify with the outcome.
func (s *Store) enqueueNotify(ctx context.Context, ops []op, apply func(), notify func(error)) (<-chan error, error) {
	done := make(chan error, 1)
	if len(ops) == 0 {
		if apply != nil {
			s.mu.Lock()
			apply()
			s.mu.Unlock()
		}
		done <- nil
		if notify != nil {
			notify(nil)
		}
		return done, nil
	}
	if err := s.failure(); err != nil {
		return nil, err
	}
	r := &writeReq{ops: ops, apply: apply, done: done, notify: notify}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	select {
	case s.reqs <- r:
		return done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
