//go:build !race

package concord

const raceEnabled = false
