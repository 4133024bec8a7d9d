package engine

import (
	"fmt"
	"testing"

	"github.com/concord-p2p/concord/internal/specdoc"
)

// TestWireSpecEngineConstants checks the constants of WIRE.md named
// engine.*: the bounds a receiver applies beyond the decoders'.
func TestWireSpecEngineConstants(t *testing.T) {
	spec, err := specdoc.Load()
	if err != nil {
		t.Fatal(err)
	}
	actual := map[string]string{
		"engine.MaxTxnBytes":                  fmt.Sprint(MaxTxnBytes),
		"engine.MaxPayload":                   fmt.Sprint(MaxPayload),
		"engine.StoredLimits.MaxMessageBytes": fmt.Sprint(StoredLimits.MaxMessageBytes),
		"engine.StoredLimits.MaxEnvelopes":    fmt.Sprint(StoredLimits.MaxEnvelopes),
		"engine.StoredLimits.MaxVVEntries":    fmt.Sprint(StoredLimits.MaxVVEntries),
		"engine.StoredLimits.MaxPayloadBytes": fmt.Sprint(StoredLimits.MaxPayloadBytes),
		"engine.payloadLimits.MaxBytes":       fmt.Sprint(payloadLimits.MaxBytes),
		"engine.payloadLimits.MaxElements":    fmt.Sprint(payloadLimits.MaxElements),
		"engine.MaxForkProofsPerAuthor":       fmt.Sprint(MaxForkProofsPerAuthor),
		"engine.GapGrace":                     GapGrace.String(),
		"engine.maxClockLead":                 maxClockLead.String(),
		"engine.maxHeads":                     fmt.Sprint(maxHeads),
		"engine.maxForkBytes":                 fmt.Sprint(maxForkBytes),
		"engine.maxSummaryOrigins":            fmt.Sprint(maxSummaryOrigins),
		"engine.summaryStale":                 summaryStale.String(),
		"engine.maxPeersPerDoc":               fmt.Sprint(maxPeersPerDoc),
		"engine.maxGaps":                      fmt.Sprint(maxGaps),
	}
	for _, err := range spec.CompareConstants("engine.", actual) {
		t.Error(err)
	}
}
