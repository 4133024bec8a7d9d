package net

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

func newTestHost(t *testing.T, cfg HostConfig) host.Host {
	t.Helper()
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// addrsOnly returns h's address info restricted to addresses using quic or
// not.
func addrsOnly(h host.Host, quic bool) peer.AddrInfo {
	ai := peer.AddrInfo{ID: h.ID()}
	for _, a := range h.Addrs() {
		if isQUIC(a) == quic {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	return ai
}

func connectVia(t *testing.T, a, b host.Host, quic bool) error {
	t.Helper()
	return connectWithin(t, a, b, quic, 5*time.Second)
}

// connectWithin is connectVia with a deadline; dials expected to fail use a
// short one (a PSK mismatch can stall the handshake instead of failing it).
func connectWithin(t *testing.T, a, b host.Host, quic bool, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ai := addrsOnly(b, quic)
	if len(ai.Addrs) == 0 {
		t.Fatalf("host has no quic=%v address: %v", quic, b.Addrs())
	}
	return a.Connect(ctx, ai)
}

func TestHostsConnectTCPAndQUIC(t *testing.T) {
	for _, quic := range []bool{false, true} {
		name := map[bool]string{false: "tcp", true: "quic"}[quic]
		t.Run(name, func(t *testing.T) {
			a := newTestHost(t, LoopbackHostConfig())
			b := newTestHost(t, LoopbackHostConfig())
			if err := connectVia(t, a, b, quic); err != nil {
				t.Fatal(err)
			}
			conns := a.Network().ConnsToPeer(b.ID())
			if len(conns) == 0 {
				t.Fatal("no connection")
			}
			if got := isQUIC(conns[0].RemoteMultiaddr()); got != quic {
				t.Fatalf("connection over %v, want quic=%v", conns[0].RemoteMultiaddr(), quic)
			}
			for _, a := range a.Addrs() {
				if ip, err := a.ValueForProtocol(multiaddr.P_IP4); err != nil || ip != "127.0.0.1" {
					t.Fatalf("listening on non-loopback %v", a)
				}
			}
		})
	}
}

func TestHostPrivateNetwork(t *testing.T) {
	psk := make([]byte, 32)
	for i := range psk {
		psk[i] = byte(i)
	}
	pcfg := LoopbackHostConfig()
	pcfg.PSK = psk
	pcfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	a := newTestHost(t, pcfg)
	b := newTestHost(t, pcfg)
	open := newTestHost(t, LoopbackHostConfig())

	if err := connectVia(t, a, b, false); err != nil {
		t.Fatalf("PSK hosts failed to connect: %v", err)
	}
	if err := connectWithin(t, a, open, false, time.Second); err == nil {
		t.Fatal("PSK host connected to a host without the PSK")
	}
	if err := connectWithin(t, open, b, false, time.Second); err == nil {
		t.Fatal("host without PSK connected to a PSK host")
	}
	other := pcfg
	other.PSK = make([]byte, 32)
	c := newTestHost(t, other)
	if err := connectWithin(t, c, a, false, time.Second); err == nil {
		t.Fatal("hosts with different PSKs connected")
	}
	for _, h := range []host.Host{a, b} {
		if h.Network().Connectedness(open.ID()) == network.Connected || h.Network().Connectedness(c.ID()) == network.Connected {
			t.Fatal("PSK host holds a connection to an outsider")
		}
	}
}

func TestHostConfigErrors(t *testing.T) {
	cfg := LoopbackHostConfig()
	cfg.PSK = make([]byte, 32)
	if _, err := NewHost(cfg); !errors.Is(err, ErrPSKWithQUIC) {
		t.Fatalf("PSK+QUIC: %v", err)
	}
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.PSK = make([]byte, 31)
	if _, err := NewHost(cfg); !errors.Is(err, ErrHostConfig) {
		t.Fatalf("short PSK: %v", err)
	}
	cfg = LoopbackHostConfig()
	cfg.ListenAddrs = []string{"not a multiaddr"}
	if _, err := NewHost(cfg); !errors.Is(err, ErrHostConfig) {
		t.Fatalf("bad addr: %v", err)
	}
}

func TestGaterPartition(t *testing.T) {
	g := NewGater()
	cfg := LoopbackHostConfig()
	cfg.Gater = g
	a := newTestHost(t, cfg)
	b := newTestHost(t, LoopbackHostConfig())
	if err := connectVia(t, a, b, false); err != nil {
		t.Fatal(err)
	}
	if err := Partition(a, g, b.ID()); err != nil {
		t.Fatal(err)
	}
	if a.Network().Connectedness(b.ID()) == network.Connected {
		t.Fatal("still connected after Partition")
	}
	if err := connectVia(t, a, b, false); err == nil {
		t.Fatal("outbound dial to blocked peer succeeded")
	}
	if err := connectVia(t, b, a, false); err == nil {
		// The dialer may see the handshake succeed before a's gater closes
		// the connection; it must not stay connected.
		waitFor(t, 5*time.Second, "inbound connection from blocked peer dropped", func() bool {
			return a.Network().Connectedness(b.ID()) != network.Connected
		})
	}
	g.Unblock(b.ID())
	if err := connectVia(t, a, b, true); err != nil {
		t.Fatalf("after Unblock: %v", err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
