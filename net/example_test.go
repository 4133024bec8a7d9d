package net_test

import (
	"fmt"
	"strings"

	cnet "github.com/concord-p2p/concord/net"
)

func ExampleParsePSK() {
	key := "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("ab", 32) + "\n"
	psk, err := cnet.ParsePSK(strings.NewReader(key))
	fmt.Println(len(psk), err)
	// Output: 32 <nil>
}
