package store

import "errors"

// Sentinel errors. Every error returned by this package that matches one of
// these wraps it with %w, so callers test with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")
	// ErrNotFound is returned by Get when the requested record is absent.
	ErrNotFound = errors.New("store: not found")
	// ErrSchemaTooNew is returned by Open when the datastore was written by
	// a newer version of this package. Nothing is written in that case.
	ErrSchemaTooNew = errors.New("store: schema version too new")
	// ErrCorrupt wraps every report of a record that cannot be decoded; the
	// message names the key.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrInvalid is returned for arguments the store refuses (empty replica
	// ID, sequence number 0, a snapshot whose version vector goes backwards).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrFailed wraps every write error once a commit or sync has failed:
	// after a failed fsync the state of the disk is unknown, so the store
	// refuses further writes (reads still work). Close and reopen to recover.
	ErrFailed = errors.New("store: failed after write error")
)
