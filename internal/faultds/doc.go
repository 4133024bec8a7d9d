// Package faultds holds fault-injecting wrappers over a go-datastore
// Batching datastore, for tests of code that must survive a failing or
// crashing disk. Each wrapper is itself a datastore.Batching, so they stack:
//
//   - Fail returns errors where an Injector says so (the Nth write, every
//     write under a key prefix, whatever a test switches on), optionally
//     after applying the write (it reached the medium; the caller cannot
//     know).
//   - Count counts Puts, Deletes, batch Commits and Syncs.
//   - Gate holds matching operations (a Sync, a batch Commit) until the test
//     releases them, and tells the test when one is waiting.
//   - Crash is an in-memory datastore that keeps only what was synced: Crash
//     loses every change since the last Sync.
//
// Every wrapper buffers a Batch itself and hands it to the datastore below
// as one batch at Commit, so the layer below sees one Commit per batch, as
// Pebble applies it. Injectors compose the way pebble's vfs/errorfs does:
// OnIndex and FromIndex count operations, If restricts an injector to
// operations a Predicate matches (Kinds, KeyPrefix), Sticky turns the first
// fault into a dead disk, AfterApply lets the faulty operation land first,
// and a Switch is changed while the test runs.
//
// # Ownership and imports
//
// The package owns these wrappers and nothing else: no Concord type appears
// in it. It imports only the standard library and go-datastore, and is meant
// to be imported by tests (it is an ordinary package so that tests of every
// package can share it).
//
// # Usage
//
//	// A disk whose third write fails, and every write after it:
//	ds := faultds.NewFail(inner, faultds.Sticky(faultds.OnIndex(3)))
//
//	// A disk that loses unsynced writes on a crash, whose syncs fail (and
//	// lose what they should have made durable) once the test says so:
//	c := faultds.NewCrash()
//	sw := new(faultds.Switch)
//	ds := faultds.NewFail(c, c.CrashOn(faultds.If(faultds.Kinds(faultds.OpSync), sw)))
//	...
//	sw.Set(faultds.FromIndex(1)) // from now on every Sync fails
//	lost, err := c.Crash(ctx)    // or simulate a power cut at any time
//
//	// Hold the next Sync until the test has queued more work:
//	g := faultds.NewGate(inner, faultds.Kinds(faultds.OpSync))
//	waiting := g.Hold()
//	... start a write ...
//	<-waiting // a Sync is held
//	g.Release()
package faultds
