package concord

import "sync"

// workPool runs documents' work on a fixed number of goroutines: a
// document with work waits in the queue (at most once) until a worker
// takes it and drains its work. Goroutines are per node, not per document.
type workPool struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []*driver
	closed bool
	wg     sync.WaitGroup
}

func newWorkPool(n int) *workPool {
	p := &workPool{}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(n)
	for range n {
		go p.loop()
	}
	return p
}

// schedule queues d to run (its caller ensures once at a time).
func (p *workPool) schedule(d *driver) {
	p.mu.Lock()
	if p.closed {
		// Work arriving after close (a document closing late) still runs.
		p.mu.Unlock()
		go d.run()
		return
	}
	p.q = append(p.q, d)
	p.cond.Signal()
	p.mu.Unlock()
}

func (p *workPool) loop() {
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
		d := p.q[0]
		p.q[0] = nil
		p.q = p.q[1:]
		p.mu.Unlock()
		d.run()
	}
}

// close stops the workers once the queue is empty and waits for them.
func (p *workPool) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
