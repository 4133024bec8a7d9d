package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/concord-p2p/concord"
)

// Watcher turns a document's changes into a stream of valid configurations.
type Watcher struct {
	doc *concord.Doc
	log *slog.Logger
}

// NewWatcher watches doc.
func NewWatcher(doc *concord.Doc, log *slog.Logger) *Watcher {
	return &Watcher{doc: doc, log: log}
}

// Watch sends the current configuration, then each new valid one, until ctx
// ends; then it closes the channel. Invalid configurations are logged and
// skipped. Only the latest configuration matters, so a slow reader sees
// intermediate ones skipped, never a stale one last.
func (w *Watcher) Watch(ctx context.Context) <-chan Config {
	out := make(chan Config, 1)
	sub := w.doc.Subscribe(16)
	go func() {
		defer close(out)
		defer sub.Close()
		var last Config
		first := true
		publish := func() {
			c, err := ParseConfig(w.doc.JSON())
			if err != nil {
				w.log.Error("configuration refused; keeping the last good one", "err", err)
				return
			}
			if !first && c.Equal(last) {
				return
			}
			first, last = false, c
			select { // replace an unread older configuration
			case <-out:
			default:
			}
			out <- c
		}
		publish()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-sub.C:
				if !ok {
					return
				}
				publish()
			}
		}
	}()
	return out
}

// Service is the work being configured: it greets on every tick.
type Service struct {
	Log *slog.Logger
	// OnApply, if set, is called with each configuration once applied.
	OnApply func(Config)
}

// Run works with the configurations from cfgs until the channel closes or
// ctx ends. It waits for the first configuration before starting.
func (s *Service) Run(ctx context.Context, cfgs <-chan Config) {
	var cfg Config
	var ok bool
	select {
	case <-ctx.Done():
		return
	case cfg, ok = <-cfgs:
		if !ok {
			return
		}
	}
	s.apply(cfg)
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case next, ok := <-cfgs:
			if !ok {
				return
			}
			if next.Interval != cfg.Interval {
				tick.Reset(next.Interval)
			}
			s.Log.Info("configuration changed", "interval", next.Interval, "greeting", next.Greeting, "features", next.Features,
				"was_interval", cfg.Interval, "was_greeting", cfg.Greeting)
			cfg = next
			s.apply(cfg)
		case <-tick.C:
			s.Log.Info(cfg.Greeting, "features", cfg.Features)
		}
	}
}

func (s *Service) apply(c Config) {
	if s.OnApply != nil {
		s.OnApply(c)
	}
}
