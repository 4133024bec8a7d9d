// Package workpool runs many small queues of work on a fixed number of
// goroutines: a queue with work is scheduled (at most once at a time) and
// a worker takes it and runs it. Goroutines are per pool, not per queue,
// so a node holding a thousand documents runs a handful of them.
package workpool

import "sync"

// Runner is a queue of work. Run drains some of it; the pool calls it on
// one worker at a time for each Schedule.
type Runner interface {
	Run()
}

// Pool is a fixed set of workers and the queue of runners waiting for one.
type Pool struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []Runner
	closed bool
	wg     sync.WaitGroup
}

// New starts a pool of n workers (at least one).
func New(n int) *Pool {
	p := &Pool{}
	p.cond = sync.NewCond(&p.mu)
	n = max(n, 1)
	p.wg.Add(n)
	for range n {
		go p.loop()
	}
	return p
}

// Schedule queues r to run once. The caller ensures r is not queued
// twice at once (a runner keeps a "scheduled" flag and clears it when it
// finds nothing left to do). After Close, r runs on a goroutine of its
// own, so late work (a queue closing after the pool) still finishes.
func (p *Pool) Schedule(r Runner) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		go r.Run()
		return
	}
	p.q = append(p.q, r)
	p.cond.Signal()
	p.mu.Unlock()
}

func (p *Pool) loop() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for len(p.q) == 0 && !p.closed {
			p.cond.Wait()
		}
		if len(p.q) == 0 {
			p.mu.Unlock()
			return
		}
		r := p.q[0]
		p.q[0] = nil
		p.q = p.q[1:]
		p.mu.Unlock()
		r.Run()
	}
}

// Close stops the workers once the queue is empty and waits for them.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
