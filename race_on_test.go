//go:build race

package concord

// raceEnabled: the race detector slows nodes several times over; tests
// with many nodes run fewer.
const raceEnabled = true
