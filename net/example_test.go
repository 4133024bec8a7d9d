package net_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	cnet "github.com/concord-p2p/concord/net"
)

func ExampleSignEnvelope() {
	priv, _, _ := crypto.GenerateEd25519Key(bytes.NewReader(make([]byte, 64)))
	id, _ := peer.IDFromPrivateKey(priv)
	e := &cnet.Envelope{Doc: "todo", Origin: cnet.ReplicaFor(id, 1), Seq: 1, HLC: 1, Payload: []byte("delta")}
	if err := cnet.SignEnvelope(priv, e); err != nil {
		panic(err)
	}
	b, _ := cnet.EncodeEnvelope(e)
	got, err := cnet.DecodeEnvelope(b, cnet.DefaultLimits())
	if err != nil {
		panic(err)
	}
	fmt.Println(got.Verify() == nil, got.Seq, string(got.Payload))
	// Output: true 1 delta
}

func ExampleParsePSK() {
	key := "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("ab", 32) + "\n"
	psk, err := cnet.ParsePSK(strings.NewReader(key))
	fmt.Println(len(psk), err)
	// Output: 32 <nil>
}
