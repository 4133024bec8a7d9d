// Command concord is the Concord demo peer.
//
//	concord peer [--data DIR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]...
//	             [--doc NAME]... [--http HOST:PORT] [--mdns] [--psk FILE] [--writers FILE]
//	concord id [--data DIR]
//
// "concord peer" runs a node and prints, one per line: "peer <id>",
// "listen <multiaddr>/p2p/<id>" for each address, "http <url>" when --http is
// set, then "ready". It serves the HTTP+SSE API of package httpapi on --http
// and, when stdin is a terminal, a small REPL (type "help"). SIGINT or
// SIGTERM shut it down cleanly.
//
// "concord id" prints the peer ID kept in a data directory, creating the key
// when there is none.
//
// Exit codes: 0 after a clean shutdown, 1 for a runtime error (store, network),
// 2 for a usage error: an unknown command or flag, a bad flag value, or a
// --psk / --writers file that cannot be read or parsed.
//
// Logs go to stderr; CONCORD_LOG_LEVEL=debug|info|warn|error sets their level
// (default warn). CONCORD_TEST_FAST_GOSSIP=1 shortens gossip heartbeats and
// summary intervals, for tests.
//
// # Ownership and imports
//
// The command owns the CLI: flags and their parsing (PSK and writer files
// included), process start-up and shutdown, the printed start-up lines and
// exit codes, the REPL, the HTTP server around package httpapi, `concord
// bench` (the scenarios are internal/bench's) and the test-control hooks
// of its process tests. Replication and storage rules stay in the library.
// It may import the root package concord, cmd/concord/httpapi and
// internal/bench; beyond those, net only for parsing a PSK file and the
// connection gater of the test-control hooks, and store only for `concord
// id`, which reads the node key without starting a node.
package main
