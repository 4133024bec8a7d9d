package workpool

import (
	"sync"
	"sync/atomic"
	"testing"
)

// counter is a runner that counts its runs and reschedules itself until
// it has run want times, like a queue draining in turns.
type counter struct {
	p    *Pool
	runs atomic.Int64
	want int64
	busy atomic.Bool
	done *sync.WaitGroup
}

func (c *counter) Run() {
	if !c.busy.CompareAndSwap(false, true) {
		panic("a runner ran on two workers at once")
	}
	n := c.runs.Add(1)
	c.busy.Store(false)
	if n < c.want {
		c.p.Schedule(c)
		return
	}
	c.done.Done()
}

// Many runners, each rescheduling itself, all run to the end on a few
// workers, never two at once for one runner.
func TestPoolRunsEveryRunner(t *testing.T) {
	p := New(3)
	var done sync.WaitGroup
	cs := make([]*counter, 100)
	for i := range cs {
		cs[i] = &counter{p: p, want: 50, done: &done}
		done.Add(1)
		p.Schedule(cs[i])
	}
	done.Wait()
	p.Close()
	for i, c := range cs {
		if got := c.runs.Load(); got != 50 {
			t.Fatalf("runner %d ran %d times, want 50", i, got)
		}
	}
}

type once struct{ ran chan struct{} }

func (o once) Run() { close(o.ran) }

// Work scheduled after Close still runs.
func TestPoolRunsLateWork(t *testing.T) {
	p := New(1)
	p.Close()
	o := once{ran: make(chan struct{})}
	p.Schedule(o)
	<-o.ran
}
