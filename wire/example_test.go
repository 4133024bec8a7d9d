package wire_test

import (
	"bytes"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/concord-p2p/concord/wire"
)

func ExampleSignEnvelope() {
	priv, _, _ := crypto.GenerateEd25519Key(bytes.NewReader(make([]byte, 64)))
	id, _ := peer.IDFromPrivateKey(priv)
	e := &wire.Envelope{Doc: "todo", Origin: wire.ReplicaFor(id, 1), Seq: 1, HLC: 1, Payload: []byte("delta")}
	if err := wire.SignEnvelope(priv, e); err != nil {
		panic(err)
	}
	b, _ := wire.EncodeEnvelope(e)
	got, err := wire.DecodeEnvelope(b, wire.DefaultLimits())
	if err != nil {
		panic(err)
	}
	fmt.Println(got.Verify() == nil, got.Seq, string(got.Payload))
	// Output: true 1 delta
}
