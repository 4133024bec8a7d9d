package store

import (
	"io"
	"log/slog"
)

// Options configures a Store. The zero value is valid; see DefaultOptions for
// the defaults applied to zero fields.
type Options struct {
	// NoSync skips the fsync after each group commit. Writes then survive a
	// process crash only by luck and never a machine crash. Benchmarks only.
	NoSync bool
	// MaxBatchBytes bounds the Data bytes Missing returns per call (it
	// always returns at least one entry if any remains). Default 256 KiB.
	MaxBatchBytes int
	// QueueLength bounds the group-commit queue, in write requests. When it
	// is full, writers block (until there is room or their context ends);
	// nothing is dropped. Default 1024.
	QueueLength int
	// CompactChunk is the number of log deletions per batch while
	// compacting. Default 8192.
	CompactChunk int
	// Logger receives recovery and failure reports. Default: discard.
	Logger *slog.Logger
}

// DefaultOptions returns the options used for zero fields.
func DefaultOptions() Options {
	return Options{
		MaxBatchBytes: 256 << 10,
		QueueLength:   1024,
		CompactChunk:  8192,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = d.MaxBatchBytes
	}
	if o.QueueLength <= 0 {
		o.QueueLength = d.QueueLength
	}
	if o.CompactChunk <= 0 {
		o.CompactChunk = d.CompactChunk
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	return o
}
