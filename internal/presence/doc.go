// Package presence holds the rules of presence: a Table per document of
// the ephemeral entries (who is here, their cursor) this node sees, its
// own included, keyed by "<peer id>" or "<peer id>/<client>". It decides
// which messages to keep (the latest stamp per key wins; replays, clock
// skew and overflow are refused with a reason), when entries expire, and
// which stamps the node's own messages carry.
//
// It is pure: no goroutines, no I/O, no locks, no clock (time is passed
// in). The caller — the root package's driver — verifies messages first
// (wire.Presence.Verify), checks the writer allowlist, serialises calls,
// publishes and runs the timers.
//
// # Ownership and imports
//
// The package owns the presence bounds (MaxEntries, MaxClients, MaxTTL,
// MaxSkew) and the drop reasons. It imports the standard library,
// libp2p's core/peer, golang-lru and wire; never net, store or the root
// package.
//
// # Usage
//
//	t := presence.New(self)
//	if err := t.Check(msg, now); err != nil { /* refuse: presence.ReasonOf(err) */ }
//	ev, changed, err := t.Apply(msg, now) // a verified message
//	ev, changed, err = t.Set("tab-1", state, now) // an own entry
//	stamp := t.NextStamp("tab-1", now)           // for the message that says so
//	for _, ev := range t.Expire(now) { /* gone */ }
//	at, ok := t.Next()                           // when to call Expire again
package presence
