package bench

import (
	"context"
	"fmt"

	"github.com/concord-p2p/concord/internal/meshsim"
)

// Mesh runs the gossip layer of peers peers over mocknet (see package
// meshsim): writes from random peers into 3 documents, 5 ms links.
// idontwant is GossipSub's IDONTWANT threshold in bytes (0: its 1 KiB).
func Mesh(ctx context.Context, o Options, peers, writes int, flood bool, idontwant int) (Result, error) {
	r, err := meshsim.Run(ctx, meshsim.Config{Peers: peers, Writes: writes, MeshDegree: o.MeshDegree, NoFloodPublish: !flood, IDontWant: idontwant, Progress: o.Progress})
	if err != nil {
		return Result{}, err
	}
	c := r.Config
	return Result{
		Scenario: "gossip layer over mocknet", Name: "mesh",
		Params: fmt.Sprintf("%d GossipSub peers in one process (mocknet, %v links, each dialling %d earlier peers), %d documents, %d writes every %v from random peers, mesh degree %s, flood publishing %v, IDONTWANT from %d bytes",
			c.Peers, c.Latency, c.Dials, c.Docs, c.Writes, c.Interval, degree(o), flood, idontwantN(idontwant)),
		ParamMap: map[string]any{"peers": c.Peers, "docs": c.Docs, "writes": c.Writes, "link_latency_ms": c.Latency.Milliseconds(), "dials_per_peer": c.Dials, "mesh_degree": degreeN(o), "flood_publish": flood, "idontwant_bytes": idontwantN(idontwant)},
		Metrics: []Metric{
			{Key: "converged_after_last_write_s", Name: "last write → every peer holds all", Value: r.ConvergedAfterLastWrite.Seconds(), Unit: "s"},
			{Key: "spread_p50_ms", Name: "p50 write → last peer", Value: float64(r.P50.Microseconds()) / 1000, Unit: "ms"},
			{Key: "spread_p99_ms", Name: "p99 write → last peer", Value: float64(r.P99.Microseconds()) / 1000, Unit: "ms"},
			{Key: "messages_per_peer_per_write", Name: "messages sent per peer per write", Value: r.MessagesPerPeerPerWrite, Unit: "messages"},
			{Key: "sent_per_peer_per_write_bytes", Name: "bytes sent per peer per write", Value: r.BytesPerPeerPerWrite, Unit: "bytes"},
			{Key: "setup_s", Name: "swarm up, meshes grafted", Value: r.Setup.Seconds(), Unit: "s"},
		},
	}, nil
}

// idontwantN is the IDONTWANT threshold in effect.
func idontwantN(b int) int {
	if b > 0 {
		return b
	}
	return 1024
}
